package runner

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lockedBuffer is a bytes.Buffer safe to write from a job's output and read from the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A job stopped by its context gets SIGTERM first, as its doc says, so an installer can end cleanly; it does not wait
// for StopGrace's SIGKILL.
func TestRunJobStoppedGetsSIGTERM(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- RunJob(ctx, Job{Name: "installer", Dir: t.TempDir(), Env: []string{"PATH=" + os.Getenv("PATH")},
			Command: []string{"sh", "-c", `trap 'echo got TERM; exit 143' TERM; echo ready; while :; do sleep 0.05; done`},
			Stdout:  out, Stderr: out})
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "ready") }, patience, 5*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		assert.ErrorContains(t, err, "installer: stopped")
	case <-time.After(patience):
		t.Fatal("the job did not stop")
	}
	assert.Contains(t, out.String(), "got TERM")
}
