package testkit

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Patience bounds every wait of a test for something that takes milliseconds or seconds (a log line, an answer, a
// process that stops): long enough that only a hang reaches it, on a machine however loaded, so that no verdict
// depends on the machine's speed.
const Patience = 2 * time.Minute

// Process is a program a test started, with its output captured.
type Process struct {
	cmd    *exec.Cmd
	Stdout *Buffer
	Stderr *Buffer
	exited chan struct{} // closed once the process has exited
	err    error         // how it exited, once exited is closed
}

// StartProcess runs argv in dir with env as its whole environment (none of the test's), and stops it when the test
// ends, failing the test if the race detector reported a race in it.
func StartProcess(t testing.TB, argv []string, dir string, env []string) *Process {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append([]string{}, env...) // never nil: a nil Env would give the child this process's environment
	if RaceEnabled {
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0") // a race-built child would otherwise linger 1 s at exit
	}
	// Its own process group, so that Stop reaches what it started too (a launcher's shell, a child of the app), and
	// Wait stops waiting for output a leftover child keeps open 2 s after the process has exited.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	p := &Process{cmd: cmd, Stdout: &Buffer{}, Stderr: &Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	require.NoError(t, cmd.Start())
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.Stop(t)
		assert.NotContains(t, p.Stderr.String(), "DATA RACE", "the race detector found a race in %s", argv[0])
	})
	return p
}

// PID is the process's id, for reading its /proc entries.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited; Err then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process exited, once Exited is closed.
func (p *Process) Err() error {
	<-p.exited
	return p.err
}

// Stop sends SIGTERM to the process, as the platform does, and returns its exit status; then it kills what is left of
// its process group. It kills the whole group of a process that has not exited within Patience and fails the test:
// the platform's grace is 15 s, but a loaded machine must not fail a test that a quiet one passes.
func (p *Process) Stop(t testing.TB) error {
	t.Helper()
	select {
	case <-p.exited:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // what it left behind in its group
		return p.err
	case <-time.After(Patience):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		t.Error("the process did not stop after SIGTERM")
		return p.err
	}
}

// App is app/ (or any program that logs the app's "listening" line) running as a process on a loopback port.
type App struct {
	*Process
	URL string
}

// StartApp starts the app's binary bin on a free loopback port with env as its whole environment, and returns once
// /api/health answers 200.
func StartApp(t testing.TB, bin string, env map[string]string) *App {
	t.Helper()
	return StartAppAt(t, bin, "127.0.0.1:0", env)
}

// StartAppAt is StartApp on a given address, for a test that restarts the app where it was.
func StartAppAt(t testing.TB, bin, addr string, env map[string]string) *App {
	t.Helper()
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	p := StartProcess(t, []string{bin, "--addr", addr}, "", kv)
	a := &App{Process: p}
	deadline := time.After(Patience)
	for a.URL == "" {
		select {
		case <-p.exited:
			t.Fatalf("the app exited early: %v\n%s%s", p.err, p.Stdout, p.Stderr)
		case <-deadline:
			t.Fatalf("the app never logged its address; stdout:\n%s", p.Stdout)
		case <-time.After(10 * time.Millisecond):
		}
		a.URL = listeningURL(p.Stdout.String())
	}
	a.WaitHealthy(t)
	return a
}

// listeningURL finds the app's "listening" log line and returns its base URL.
func listeningURL(logs string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
			return "http://" + line.Addr
		}
	}
	return ""
}

// WaitHealthy waits until the app's /api/health answers 200, failing early if the process exits.
func (a *App) WaitHealthy(t testing.TB) {
	t.Helper()
	require.Eventually(t, func() bool {
		select {
		case <-a.exited:
			return true
		default:
		}
		resp, err := http.Get(a.URL + "/api/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, Patience, 20*time.Millisecond, "no 200 from %s/api/health", a.URL)
	select {
	case <-a.exited:
		t.Fatalf("the app exited: %v\n%s%s", a.err, a.Stdout, a.Stderr)
	default:
	}
}
