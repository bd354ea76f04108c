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

// ReadAppYAML reads an app.yaml into a Launch for the named app. A valueFrom naming one of the app's app resources
// yields the name of the app it points at, as on the platform; other resource types are not emulated.
func (w *Workspace) ReadAppYAML(app, path string) (Launch, error) {
	s := w.settingsOf(app)
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
			v, err := w.resourceValue(s, e.ValueFrom)
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

// StartApp starts an app's process as the platform does (its own service principal's credentials and the
// platform's variables in its environment, a port of its own), waits until it listens, attaches it to the app's
// proxy and stops the instance it replaces. Deployments and `emulator run` both start apps through it.
func (w *Workspace) StartApp(ctx context.Context, app string, l Launch) (*Instance, error) {
	w.mu.Lock()
	rec, ok := w.apps[app]
	var gen uint64
	if ok {
		rec.generation++
		gen = rec.generation
	}
	w.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no app %q in the workspace", app)
	}
	inst, err := w.startInstance(ctx, rec, gen, l)
	if err == nil {
		w.mu.Lock()
		if rec.instance == inst {
			run := l
			rec.runLaunch = &run // what apps start runs again after an apps stop
		}
		w.mu.Unlock()
	}
	return inst, err
}

// startInstance is StartApp for a start that has taken generation gen: it attaches only if no later start or stop
// came meanwhile, so a slow start never replaces a newer deployment.
func (w *Workspace) startInstance(ctx context.Context, rec *appRecord, gen uint64, l Launch) (*Instance, error) {
	s := rec.settings()
	if len(l.Command) == 0 {
		return nil, fmt.Errorf("app %s: no command to run (app.yaml needs a command)", s.name)
	}
	sp := s.servicePrincipal
	env := append(slices.Clone(l.Env),
		"DATABRICKS_APP_NAME="+s.name,
		"DATABRICKS_HOST="+w.url,
		"DATABRICKS_WORKSPACE_ID="+w.cfg.Workspace.ID,
		"DATABRICKS_CLIENT_ID="+sp.ApplicationID,
		"DATABRICKS_CLIENT_SECRET="+sp.Secret,
	)
	w.mu.Lock()
	refused := w.closing || rec.deleted
	w.mu.Unlock()
	if refused {
		return nil, errClosing
	}
	// The port is the app's until its process has exited: no other start in this process is given it (ports.go).
	port, err := w.ports.reserve()
	if err != nil {
		return nil, err
	}
	tail := &tailBuffer{max: 20}
	stdout, stderr := w.appOutput(s.name, tail)
	w.appSystemLog(s.name, "Starting app with command: "+strings.Join(l.Command, " "))
	proc, err := runner.Start(runner.Spec{Name: s.name, Command: l.Command, Dir: l.Dir, Port: port, Env: env,
		Stdout: stdout, Stderr: stderr, Sandbox: l.sandbox})
	if err != nil {
		w.ports.release(port)
		w.appSystemLog(s.name, "App failed to start: "+err.Error())
		return nil, err
	}
	go func() {
		<-proc.Done()
		w.ports.release(port)
	}()
	inst := &Instance{app: s.name, proc: proc, port: port, tail: tail}
	waitCtx, cancel := w.startWait(ctx)
	stopWaiting := context.AfterFunc(w.ctx, cancel) // Close ends the wait too, whoever asked for the start
	err = proc.WaitListening(waitCtx, "127.0.0.1:"+strconv.Itoa(port))
	stopWaiting()
	cancel()
	if err != nil {
		_ = inst.stop(w.stopGrace)
		err = fmt.Errorf("%w%s", err, tail.lastLines())
		w.appSystemLog(s.name, "App failed to start: "+err.Error())
		return nil, err
	}

	// Beside the start rather than before the app serves: the kernel's TCP table, which the check reads, takes
	// tens of milliseconds to list on a machine with many connections.
	go w.warnIfExposed(s.name, proc, port)
	w.mu.Lock()
	if rec.generation != gen || w.closing || rec.deleted {
		w.mu.Unlock()
		_ = inst.stop(w.stopGrace)
		return nil, errors.New("a later deployment or stop of the app replaced this start")
	}
	old := rec.instance
	rec.instance, rec.crash = inst, appCrash{}
	if err := rec.proxy.setUpstream("http://127.0.0.1:" + strconv.Itoa(port)); err != nil {
		w.mu.Unlock()
		return nil, err
	}
	w.mu.Unlock()
	w.appSystemLog(s.name, "App listens on $DATABRICKS_APP_PORT ("+strconv.Itoa(port)+")")
	go w.watchInstance(rec, inst)
	if old != nil {
		w.appSystemLog(s.name, "Stopping the previous instance")
		if err := old.stop(w.stopGrace); err != nil {
			w.logger.Warn("stop the previous instance", "app", s.name, "err", err)
		}
	}
	w.stateChanged()
	return inst, nil
}

// warnIfExposed warns, in the emulator's log and the app's, about an app that listens on more than loopback.
func (w *Workspace) warnIfExposed(app string, proc *runner.App, port int) {
	exposed := proc.ExposedListeners()
	if len(exposed) == 0 {
		w.logger.Debug("app listens on loopback only", "app", app)
		return
	}
	// The emulator told the app to listen on 127.0.0.1 (APP_LISTEN_ADDR); one that listens on every interface can be
	// called past the proxy by anyone on the network, with any X-Forwarded-User it likes.
	msg := fmt.Sprintf("Warning: the app listens on %s, not only on loopback: anyone who can reach this machine "+
		"can call it past the proxy and claim any identity. Listen on $APP_LISTEN_ADDR (127.0.0.1:%d).",
		strings.Join(exposed, ", "), port)
	w.appSystemLog(app, msg)
	w.logger.Warn("app reachable past the proxy", "app", app, "listeners", strings.Join(exposed, ", "))
}

// watchInstance notices an instance that exits on its own: the app has crashed, its proxy answers 502 and the
// Apps API says why.
func (w *Workspace) watchInstance(rec *appRecord, inst *Instance) {
	<-inst.Done()
	if inst.StoppedByWorkspace() {
		return
	}
	msg := fmt.Sprintf("App crashed: %v", inst.Err())
	w.mu.Lock()
	if rec.instance == inst {
		rec.instance, rec.crash = nil, appCrash{message: msg + "; see databricks apps logs " + inst.app}
		_ = rec.proxy.setUpstream("")
	}
	w.mu.Unlock()
	w.appSystemLog(inst.app, msg+inst.tail.lastLines())
	w.logger.Warn("app exited on its own", "app", inst.app, "err", inst.Err())
	w.stateChanged()
}

// stopApp detaches and stops the app's instance, if the workspace started one. Callers do not hold w.mu.
func (w *Workspace) stopApp(rec *appRecord) {
	w.mu.Lock()
	inst := w.detachLocked(rec)
	w.mu.Unlock()
	w.stopInstance(inst)
	w.stateChanged()
}

// detachLocked takes the app's instance off its proxy, which answers 502 from then on, and returns it (nil when the
// workspace started none). A start in progress does not attach after it. Callers hold w.mu.
func (w *Workspace) detachLocked(rec *appRecord) *Instance {
	rec.generation++
	inst := rec.instance
	rec.instance = nil
	_ = rec.proxy.setUpstream("")
	return inst
}

// stopInstance stops a detached instance: SIGTERM, then SIGKILL after the grace period. nil does nothing.
func (w *Workspace) stopInstance(inst *Instance) {
	if inst == nil {
		return
	}
	w.appSystemLog(inst.app, "Stopping the app")
	if err := inst.stop(w.stopGrace); err != nil {
		w.logger.Warn("stop app", "app", inst.app, "err", err)
	}
	w.appSystemLog(inst.app, "App stopped")
}

// stopAllInstances stops every app the workspace started, at once, each with the grace period.
func (w *Workspace) stopAllInstances() {
	w.mu.Lock()
	w.closing = true
	recs := make([]*appRecord, 0, len(w.apps))
	for _, rec := range w.apps {
		recs = append(recs, rec)
	}
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, rec := range recs {
		wg.Go(func() { w.stopApp(rec) })
	}
	wg.Wait()
	w.cancel()
	w.tasks.Wait()
}

// deploymentsDir is where deployments keep their copies of the source code.
func (w *Workspace) deploymentDir(app, id string) string {
	return filepath.Join(w.dataDir, "deployments", app, id)
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
func (w *Workspace) appOutput(app string, tail io.Writer) (stdout, stderr io.Writer) {
	prefix := []byte("[" + app + "] ")
	return io.MultiWriter(w.AppLogWriter(app), &prefixWriter{out: w.appStdout, prefix: prefix}, tail),
		io.MultiWriter(w.AppLogWriter(app), &prefixWriter{out: w.appStderr, prefix: prefix}, tail)
}

// appSystemLog records a lifecycle event of an app (deploying, started, stopped, crashed) in its log and the
// emulator's.
func (w *Workspace) appSystemLog(app, msg string) {
	w.AppLogSystem(app, msg)
	w.logger.Info(msg, "app", app)
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
