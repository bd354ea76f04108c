package runner

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// patience bounds every wait of these tests for something that takes milliseconds (testkit.Patience).
const patience = testkit.Patience

func TestStopSendsSIGTERMThenKills(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		grace  time.Duration // how long Stop waits after SIGTERM: for the app that ignores it, the test's length
		killed bool
	}{
		{"app that exits on SIGTERM", `trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done`, patience, false},
		{"app that ignores SIGTERM", `trap '' TERM; echo ready; while :; do sleep 0.05; done`, 300 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready := &readyWriter{ready: make(chan struct{})}
			a, err := Start(Spec{Name: "test", Command: []string{"sh", "-c", tt.script}, Stdout: ready})
			require.NoError(t, err)
			select { // the shell says when its trap is installed
			case <-ready.ready:
			case <-time.After(patience):
				t.Fatal("the shell never said ready")
			}
			err = a.Stop(tt.grace)
			if tt.killed {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "killed")
			} else {
				assert.NoError(t, err)
			}
			<-a.Done()
		})
	}
}

// readyWriter closes ready once "ready" has been written to it.
type readyWriter struct {
	mu    sync.Mutex
	seen  strings.Builder
	ready chan struct{}
}

func (r *readyWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	wasReady := strings.Contains(r.seen.String(), "ready")
	r.seen.Write(p)
	if !wasReady && strings.Contains(r.seen.String(), "ready") {
		close(r.ready)
	}
	return len(p), nil
}

// An app's output is a pipe (a writer, not a file), so a process the app leaves behind holding its stdout must not
// keep the emulator waiting for it.
func TestOutputHeldOpenDoesNotBlock(t *testing.T) {
	t.Parallel()
	t.Run("the app exits while its child keeps stdout", func(t *testing.T) {
		a, err := Start(Spec{Name: "leaver", Command: []string{"sh", "-c", "sleep 60 & exit 3"}, Stdout: &strings.Builder{}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL) }) // the sleep, still in the group
		select {
		case <-a.Done():
			assert.ErrorContains(t, a.Err(), "exit status 3")
		case <-time.After(patience):
			t.Fatal("Done not closed after the app exited")
		}
	})
	t.Run("Stop while a child outside the group keeps stdout", func(t *testing.T) {
		if _, err := exec.LookPath("setsid"); err != nil {
			t.Skip("needs setsid(1) to start a child outside the app's process group")
		}
		pidFile := filepath.Join(t.TempDir(), "escaped.pid")
		a, err := Start(Spec{Name: "escaper", Stdout: &strings.Builder{},
			Command: []string{"sh", "-c", `setsid sleep 60 & echo $! > "$0"; exec sleep 60`, pidFile}})
		require.NoError(t, err)
		t.Cleanup(func() {
			if pid, err := os.ReadFile(pidFile); err == nil {
				if n, err := strconv.Atoi(strings.TrimSpace(string(pid))); err == nil {
					_ = syscall.Kill(n, syscall.SIGKILL)
				}
			}
		})
		require.Eventually(t, func() bool { _, err := os.Stat(pidFile); return err == nil }, patience, 10*time.Millisecond)
		stopped := make(chan error, 1)
		go func() { stopped <- a.Stop(patience) }() // it exits on SIGTERM: the grace is only a bound
		select {
		case err := <-stopped:
			assert.NoError(t, err, "the app itself exited on SIGTERM")
		case <-time.After(patience):
			t.Fatal("Stop did not return")
		}
	})
}

// A packaged app's launcher writes its binary under mktemp -d and execs it; the platform throws the container away,
// the runner the app's own TMPDIR.
func TestStopRemovesTheAppsTMPDIR(t *testing.T) {
	t.Parallel()
	seen := filepath.Join(t.TempDir(), "seen")
	a, err := Start(Spec{Name: "packaged", Command: []string{"sh", "-c",
		`d="$(mktemp -d)" && echo x > "$d/app" && echo "$TMPDIR|$d" > "$0" && exec sleep 60`, seen}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Stop(0) })
	var tmpDir, launcherDir string
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(seen)
		tmpDir, launcherDir, _ = strings.Cut(strings.TrimSpace(string(b)), "|")
		return err == nil && launcherDir != ""
	}, patience, 10*time.Millisecond)
	require.NotEmpty(t, tmpDir, "the app has a TMPDIR")
	assert.NotEqual(t, os.TempDir(), tmpDir, "the app has a TMPDIR of its own")
	assert.True(t, strings.HasPrefix(launcherDir, tmpDir+string(filepath.Separator)), "mktemp -d writes under it")

	require.NoError(t, a.Stop(patience)) // it exits on SIGTERM: the grace is only a bound
	assert.NoDirExists(t, tmpDir)
}

func TestStartGivesThePlatformEnvironment(t *testing.T) {
	t.Setenv("DATABRICKS_TOKEN", "developer-token-must-not-leak")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	out := &strings.Builder{}
	a, err := Start(Spec{Name: "env", Port: port, Env: []string{"DATABRICKS_APP_NAME=api-app"}, Stdout: out,
		Command: []string{"sh", "-c", `echo "$0 $DATABRICKS_APP_NAME $DATABRICKS_APP_PORT $APP_LISTEN_ADDR token=$DATABRICKS_TOKEN"`, "$DATABRICKS_APP_PORT"}})
	require.NoError(t, err)
	<-a.Done()
	require.NoError(t, a.Err())
	p := strconv.Itoa(port)
	assert.Equal(t, p+" api-app "+p+" 127.0.0.1:"+p+" token=\n", out.String())
}

func TestWaitListeningReportsAnEarlyExit(t *testing.T) {
	t.Parallel()
	a, err := Start(Spec{Name: "quitter", Command: []string{"sh", "-c", "exit 3"}, Stderr: os.Stderr})
	require.NoError(t, err)
	err = a.WaitListening(t.Context(), "127.0.0.1:1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited before listening")

	_, err = Start(Spec{Name: "empty"})
	assert.Error(t, err)
}
