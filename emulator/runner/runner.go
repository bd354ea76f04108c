// Package runner starts an app the way the Databricks Apps platform does: with the platform's environment, a port
// to listen on, and on shutdown SIGTERM followed by SIGKILL 15 seconds later. The platform throws an app's container
// away when it stops; the runner's stand-in for that is a TMPDIR of the app's own, removed once the app has exited.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StopGrace is how long the platform waits between SIGTERM and SIGKILL.
const StopGrace = 15 * time.Second

// pipeDelay is how long an app's output is still read after the app has exited. Stdout and Stderr are writers, not
// files, so os/exec copies through pipes and Wait waits for them to close too: without a bound, a child the app left
// behind holding its stdout (a daemon, a process that escaped the group) would keep Done and Stop from ever returning.
const pipeDelay = time.Second

// Spec describes one app process.
type Spec struct {
	Name    string   // for messages
	Command []string // argv; "$DATABRICKS_APP_PORT" in it is replaced, as app.yaml does, and nothing else
	Dir     string   // working directory; empty is the current one
	Port    int      // DATABRICKS_APP_PORT, and APP_LISTEN_ADDR=127.0.0.1:Port
	// Env is the platform's variables (DATABRICKS_APP_PORT and APP_LISTEN_ADDR are added from Port, last). Without a
	// Sandbox they are added to this process's environment minus every DATABRICKS_* variable, so a developer's own
	// credentials never leak into the app, and after TMPDIR, which is a fresh directory unless Env sets it: what
	// `emulator run` gives the developer's own command. With a Sandbox, Env is the whole environment but for HOME
	// and TMPDIR, which the sandbox sets.
	Env            []string
	Stdout, Stderr io.Writer
	// Sandbox, when set, runs the app as the platform's container would: a deployed app (see Sandbox).
	Sandbox *Sandbox
}

// App is a started app process.
type App struct {
	name string
	port int
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs the app in its own process group, so SIGTERM reaches a wrapper's children too (`go run`, `sh -c`).
func Start(spec Spec) (*App, error) {
	if len(spec.Command) == 0 {
		return nil, fmt.Errorf("app %s: no command to run", spec.Name)
	}
	port := strconv.Itoa(spec.Port)
	argv := make([]string, len(spec.Command))
	for i, a := range spec.Command {
		argv[i] = strings.NewReplacer("${DATABRICKS_APP_PORT}", port, "$DATABRICKS_APP_PORT", port).Replace(a)
	}
	// Without a TMPDIR of its own, every start of a packaged app (its launcher writes the binary under mktemp -d and
	// execs it, so nothing removes it) would leave a copy in the developer's temp directory.
	var env []string
	var tmpDir string
	var err error
	if spec.Sandbox != nil {
		env, tmpDir, err = sandboxEnv(spec.Sandbox, spec.Env)
	} else if tmpDir, err = os.MkdirTemp("", "databricks-app-"+spec.Name+"-tmp-"); err == nil {
		env = append(append(inheritedEnv(), "TMPDIR="+tmpDir), spec.Env...)
	}
	if err != nil {
		return nil, fmt.Errorf("start app %s: TMPDIR: %w", spec.Name, err)
	}
	// On the platform an app listens on 0.0.0.0 and only the proxy can reach it; on a laptop 0.0.0.0 is the
	// network around it. The app and the caller listen on APP_LISTEN_ADDR when it is set; ExposedListeners finds
	// apps that do not.
	env = append(env, "DATABRICKS_APP_PORT="+port, "APP_LISTEN_ADDR="+net.JoinHostPort("127.0.0.1", port))
	cmd, err := command(argv, spec.Dir, env, spec.Sandbox)
	if err != nil {
		_ = os.RemoveAll(tmpDir)
		return nil, fmt.Errorf("start app %s: %w", spec.Name, err)
	}
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.WaitDelay = pipeDelay
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(tmpDir)
		return nil, fmt.Errorf("start app %s: %w", spec.Name, err)
	}
	a := &App{name: spec.Name, port: spec.Port, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if errors.Is(err, exec.ErrWaitDelay) {
			err = fmt.Errorf("exited, but something it started kept its output open %s later: %w", pipeDelay, err)
		}
		if rmErr := os.RemoveAll(tmpDir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove its TMPDIR: %w", rmErr))
		}
		a.err = err
		close(a.done)
	}()
	return a, nil
}

// sandboxEnv is env with the sandbox's HOME and a fresh TMPDIR inside it, which the caller removes.
func sandboxEnv(sb *Sandbox, env []string) ([]string, string, error) {
	if err := os.MkdirAll(sb.Home, 0o700); err != nil {
		return nil, "", err
	}
	tmpDir, err := os.MkdirTemp(sb.Home, ".tmp-")
	if err != nil {
		return nil, "", err
	}
	return append(slices.Clone(env), "HOME="+sb.Home, "TMPDIR="+tmpDir), tmpDir, nil
}

func inheritedEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABRICKS_") {
			env = append(env, kv)
		}
	}
	return env
}

// Done is closed when the process has exited and its TMPDIR is removed; Err then says how.
func (a *App) Done() <-chan struct{} { return a.done }

// Err is the process's exit error, once Done is closed.
func (a *App) Err() error {
	select {
	case <-a.done:
		return a.err
	default:
		return nil
	}
}

// WaitListening polls addr until it accepts a connection, the process exits, or ctx ends.
//
// The polls start a millisecond apart and space out by a quarter each time, up to 10 ms: an app is found within a
// quarter of its start time or 10 ms of listening, and a refused dial on loopback costs microseconds. A fixed 50 ms
// tick made `emulator run` wait up to 50 ms for an app that was already listening.
func (a *App) WaitListening(ctx context.Context, addr string) error {
	wait := time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		timer.Reset(wait)
		wait = min(wait*5/4, maxListenPoll)
		select {
		case <-a.done:
			return fmt.Errorf("app %s exited before listening on %s: %v", a.name, addr, a.err)
		case <-ctx.Done():
			return fmt.Errorf("app %s did not listen on %s: %w", a.name, addr, context.Cause(ctx))
		case <-timer.C:
		}
	}
}

// maxListenPoll is the longest WaitListening waits between two polls.
const maxListenPoll = 10 * time.Millisecond

// Stop sends SIGTERM to the app's process group and SIGKILL after grace, as the platform does, and then SIGKILL to
// whatever is left in the group. It returns once the process has exited and its output is closed, which pipeDelay
// bounds.
func (a *App) Stop(grace time.Duration) error {
	pgid := -a.cmd.Process.Pid
	// Whatever the app started and left behind in its group (a daemon, `cmd &`) goes with it, as with the platform's
	// container: it would otherwise keep the port and the app's secret after the emulator has gone.
	defer func() { _ = syscall.Kill(pgid, syscall.SIGKILL) }()
	select {
	case <-a.done:
		return nil
	default:
	}
	if err := syscall.Kill(pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop app %s: %w", a.name, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-a.done:
		return nil
	case <-timer.C:
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-a.done
		// The app may have exited on SIGTERM and only its output have outlived grace: that is no reason to blame it.
		if ws, ok := a.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return fmt.Errorf("app %s ignored SIGTERM for %s and was killed", a.name, grace)
		}
		return nil
	}
}
