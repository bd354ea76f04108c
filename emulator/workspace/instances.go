package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/databricks-sample/go-apps-api/emulator/runner"
)

// Launch is how to start an app: what `emulator run` takes from its flags or an app.yaml, and what a deployment
// reads from the app.yaml of its source folder.
type Launch struct {
	Command []string // argv; $DATABRICKS_APP_PORT in it is replaced
	Env     []string // KEY=VALUE, valueFrom already resolved; the platform's own variables win over these
	Dir     string   // where the command runs
	// sandbox is the container of a deployed app; nil for `emulator run`, which starts the developer's own command
	// in the developer's environment.
	sandbox *runner.Sandbox
}

// readAppYAML is [Workspace.ReadAppYAML].
func (m *appManager) readAppYAML(app, path string) (Launch, error) {
	s := m.settingsOf(app)
	if s == nil {
		return Launch{}, fmt.Errorf("no app %q in the workspace", app)
	}
	y, err := runner.ReadAppYAML(path)
	if err != nil {
		return Launch{}, err
	}
	l := Launch{Command: y.Command, Dir: y.Dir}
	for _, e := range y.Env {
		if e.Name == "" {
			return Launch{}, fmt.Errorf("%s: an env item has no name", path)
		}
		value := e.Value
		if e.ValueFrom != "" {
			v, err := m.resourceValue(s, e.ValueFrom)
			if err != nil {
				return Launch{}, fmt.Errorf("%s: env %s: valueFrom %q: %w", path, e.Name, e.ValueFrom, err)
			}
			value = v
		}
		l.Env = append(l.Env, e.Name+"="+value)
	}
	return l, nil
}

// Instance is an app process the workspace started and serves behind the app's proxy.
type Instance struct {
	app     string
	proc    *runner.App
	port    int
	tail    *tailBuffer
	stopped atomic.Bool // stopped by the workspace (a redeploy, apps stop, Close), not a crash
}

// Done is closed once the process has exited.
func (i *Instance) Done() <-chan struct{} { return i.proc.Done() }

// Err says how the process exited, once Done is closed.
func (i *Instance) Err() error { return i.proc.Err() }

// StoppedByWorkspace reports whether the workspace stopped the process (a new deployment, apps stop, Close): an
// exit that is not a crash.
func (i *Instance) StoppedByWorkspace() bool { return i.stopped.Load() }

// stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (i *Instance) stop(grace time.Duration) error {
	i.stopped.Store(true)
	return i.proc.Stop(grace)
}

// startApp is [Workspace.StartApp].
func (m *appManager) startApp(ctx context.Context, app string, l Launch) (*Instance, error) {
	m.mu.Lock()
	rec, ok := m.byName[app]
	var gen uint64
	if ok {
		rec.generation++
		gen = rec.generation
	}
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no app %q in the workspace", app)
	}
	inst, err := m.startInstance(ctx, rec, gen, l)
	if err == nil {
		m.mu.Lock()
		if rec.instance == inst {
			run := l
			rec.runLaunch = &run // what apps start runs again after an apps stop
		}
		m.mu.Unlock()
	}
	return inst, err
}

// startInstance is StartApp for a start that has taken generation gen: it attaches only if no later start or stop
// came meanwhile, so a slow start never replaces a newer deployment.
func (m *appManager) startInstance(ctx context.Context, rec *appRecord, gen uint64, l Launch) (*Instance, error) {
	s := rec.settings()
	if len(l.Command) == 0 {
		return nil, fmt.Errorf("app %s: no command to run (app.yaml needs a command)", s.name)
	}
	sp := s.servicePrincipal
	env := append(slices.Clone(l.Env),
		"DATABRICKS_APP_NAME="+s.name,
		"DATABRICKS_HOST="+m.url,
		"DATABRICKS_WORKSPACE_ID="+m.cfg.Workspace.ID,
		"DATABRICKS_CLIENT_ID="+sp.ApplicationID,
		"DATABRICKS_CLIENT_SECRET="+sp.Secret,
	)
	m.mu.Lock()
	refused := m.closing || rec.deleted
	m.mu.Unlock()
	if refused {
		return nil, errClosing
	}
	// The port is the app's until its process has exited: no other start in this process is given it (ports.go).
	port, err := m.ports.reserve()
	if err != nil {
		return nil, err
	}
	tail := &tailBuffer{max: 20}
	stdout, stderr := m.appOutput(s.name, tail)
	m.appSystemLog(s.name, "Starting app with command: "+strings.Join(l.Command, " "))
	proc, err := runner.Start(runner.Spec{Name: s.name, Command: l.Command, Dir: l.Dir, Port: port, Env: env,
		Stdout: stdout, Stderr: stderr, Sandbox: l.sandbox})
	if err != nil {
		m.ports.release(port)
		m.appSystemLog(s.name, "App failed to start: "+err.Error())
		return nil, err
	}
	go func() {
		<-proc.Done()
		m.ports.release(port)
	}()
	inst := &Instance{app: s.name, proc: proc, port: port, tail: tail}
	waitCtx, cancel := m.startWait(ctx)
	stopWaiting := context.AfterFunc(m.ctx, cancel) // Close ends the wait too, whoever asked for the start
	err = proc.WaitListening(waitCtx, "127.0.0.1:"+strconv.Itoa(port))
	stopWaiting()
	cancel()
	if err != nil {
		_ = inst.stop(m.stopGrace)
		err = fmt.Errorf("%w%s", err, tail.lastLines())
		m.appSystemLog(s.name, "App failed to start: "+err.Error())
		return nil, err
	}

	// Beside the start rather than before the app serves: the kernel's TCP table, which the check reads, takes
	// tens of milliseconds to list on a machine with many connections.
	go m.warnIfExposed(s.name, proc, port)
	m.mu.Lock()
	if rec.generation != gen || m.closing || rec.deleted {
		m.mu.Unlock()
		_ = inst.stop(m.stopGrace)
		return nil, errors.New("a later deployment or stop of the app replaced this start")
	}
	old := rec.instance
	rec.instance, rec.crash = inst, appCrash{}
	if err := rec.proxy.setUpstream("http://127.0.0.1:" + strconv.Itoa(port)); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	m.mu.Unlock()
	m.appSystemLog(s.name, "App listens on $DATABRICKS_APP_PORT ("+strconv.Itoa(port)+")")
	go m.watchInstance(rec, inst)
	if old != nil {
		m.appSystemLog(s.name, "Stopping the previous instance")
		if err := old.stop(m.stopGrace); err != nil {
			m.logger.Warn("stop the previous instance", "app", s.name, "err", err)
		}
	}
	m.stateChanged()
	return inst, nil
}

// warnIfExposed warns, in the emulator's log and the app's, about an app that listens on more than loopback.
func (m *appManager) warnIfExposed(app string, proc *runner.App, port int) {
	exposed := proc.ExposedListeners()
	if len(exposed) == 0 {
		m.logger.Debug("app listens on loopback only", "app", app)
		return
	}
	// The emulator told the app to listen on 127.0.0.1 (APP_LISTEN_ADDR); one that listens on every interface can be
	// called past the proxy by anyone on the network, with any X-Forwarded-User it likes.
	msg := fmt.Sprintf("Warning: the app listens on %s, not only on loopback: anyone who can reach this machine "+
		"can call it past the proxy and claim any identity. Listen on $APP_LISTEN_ADDR (127.0.0.1:%d).",
		strings.Join(exposed, ", "), port)
	m.appSystemLog(app, msg)
	m.logger.Warn("app reachable past the proxy", "app", app, "listeners", strings.Join(exposed, ", "))
}

// watchInstance notices an instance that exits on its own: the app has crashed, its proxy answers 502 and the
// Apps API says why.
func (m *appManager) watchInstance(rec *appRecord, inst *Instance) {
	<-inst.Done()
	if inst.StoppedByWorkspace() {
		return
	}
	msg := fmt.Sprintf("App crashed: %v", inst.Err())
	m.mu.Lock()
	if rec.instance == inst {
		rec.instance, rec.crash = nil, appCrash{message: msg + "; see databricks apps logs " + inst.app}
		_ = rec.proxy.setUpstream("")
	}
	m.mu.Unlock()
	m.appSystemLog(inst.app, msg+inst.tail.lastLines())
	m.logger.Warn("app exited on its own", "app", inst.app, "err", inst.Err())
	m.stateChanged()
}

// stopApp detaches and stops the app's instance, if the workspace started one. Callers do not hold m.mu.
func (m *appManager) stopApp(rec *appRecord) {
	m.mu.Lock()
	inst := m.detachLocked(rec)
	m.mu.Unlock()
	m.stopInstance(inst)
	m.stateChanged()
}

// detachLocked takes the app's instance off its proxy, which answers 502 from then on, and returns it (nil when the
// workspace started none). A start in progress does not attach after it. Callers hold m.mu.
func (m *appManager) detachLocked(rec *appRecord) *Instance {
	rec.generation++
	inst := rec.instance
	rec.instance = nil
	_ = rec.proxy.setUpstream("")
	return inst
}

// stopInstance stops a detached instance: SIGTERM, then SIGKILL after the grace period. nil does nothing.
func (m *appManager) stopInstance(inst *Instance) {
	if inst == nil {
		return
	}
	m.appSystemLog(inst.app, "Stopping the app")
	if err := inst.stop(m.stopGrace); err != nil {
		m.logger.Warn("stop app", "app", inst.app, "err", err)
	}
	m.appSystemLog(inst.app, "App stopped")
}

// stopAll stops every app the workspace started, at once, each with the grace period.
func (m *appManager) stopAll() {
	m.mu.Lock()
	m.closing = true
	recs := make([]*appRecord, 0, len(m.byName))
	for _, rec := range m.byName {
		recs = append(recs, rec)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, rec := range recs {
		wg.Go(func() { m.stopApp(rec) })
	}
	wg.Wait()
}

// deploymentsDir is where deployments keep their copies of the source code.
func (m *appManager) deploymentDir(app, id string) string {
	return filepath.Join(m.dataDir, "deployments", app, id)
}

// removeDeploymentDir forgets a deployment's copy of the source, once nothing runs from it.
func removeDeploymentDir(dir string) {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

// tailBuffer keeps the last lines an app printed, for the message of a failed deployment or a crash.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	lines   []string
	partial []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.add(string(t.partial[:i]))
		t.partial = t.partial[i+1:]
	}
	if len(t.partial) > 4096 { // a line that never ends still shows
		t.add(string(t.partial))
		t.partial = t.partial[:0]
	}
	return len(p), nil
}

func (t *tailBuffer) add(line string) {
	if len(line) > 500 {
		line = line[:500] + "…"
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

// lastLines is "; last output:\n<lines>", or "" when the app printed nothing.
func (t *tailBuffer) lastLines() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.partial) > 0 {
		lines = append(slices.Clone(lines), string(t.partial))
	}
	if len(lines) == 0 {
		return ""
	}
	return lastOutputMarker + strings.Join(lines, "\n")
}

// lastOutputMarker starts the app's output in a message; what follows it is for the app's managers only.
const lastOutputMarker = "; last output:\n"

// appOutput is where an instance's stdout and stderr go: the app's log (what databricks apps logs shows), the
// emulator's own output (AppStdout/AppStderr) with each line labelled with the app's name, and tail.
func (m *appManager) appOutput(app string, tail io.Writer) (stdout, stderr io.Writer) {
	prefix := []byte("[" + app + "] ")
	return io.MultiWriter(m.logWriter(app), &prefixWriter{out: m.appStdout, prefix: prefix}, tail),
		io.MultiWriter(m.logWriter(app), &prefixWriter{out: m.appStderr, prefix: prefix}, tail)
}

// appSystemLog records a lifecycle event of an app (deploying, started, stopped, crashed) in its log and the
// emulator's.
func (m *appManager) appSystemLog(app, msg string) {
	m.logSystem(app, msg)
	m.logger.Info(msg, "app", app)
}

// prefixWriter labels each line an app prints, so several apps can share the emulator's terminal. Writers sharing
// one lockedWriter never interleave within a line.
type prefixWriter struct {
	out    *lockedWriter
	prefix []byte
	buf    []byte
}

// lockedWriter serialises whole lines from several prefixWriters.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.out.mu.Lock()
		_, err := p.out.w.Write(append(append([]byte{}, p.prefix...), p.buf[:i+1]...))
		p.out.mu.Unlock()
		if err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
	if len(p.buf) > maxPendingLine { // an app that never ends its line still shows, and never grows this buffer
		p.out.mu.Lock()
		_, err := p.out.w.Write(append(append(append([]byte{}, p.prefix...), p.buf...), '\n'))
		p.out.mu.Unlock()
		p.buf = p.buf[:0]
		return len(b), err
	}
	return len(b), nil
}

// maxPendingLine bounds the part of a line an app has written without its newline.
const maxPendingLine = 64 << 10
