package testkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

func TestBufferIsSafeToReadWhileWritten(t *testing.T) {
	t.Parallel()
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				fmt.Fprintf(&b, "%d.%d\n", i, j)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	assert.Len(t, b.String(), 8*100*len("0.00\n")-8*10) // j < 10 prints one digit fewer
}

func TestCleanEnvHidesAndRestores(t *testing.T) { // not parallel: it sets the process environment
	t.Setenv("DATABRICKS_HOST", "https://developer.cloud.databricks.com")
	t.Setenv("ARM_CLIENT_ID", "x")
	home := os.Getenv("HOME")
	t.Run("inside", func(t *testing.T) {
		CleanEnv(t)
		_, set := os.LookupEnv("DATABRICKS_HOST")
		assert.False(t, set)
		_, set = os.LookupEnv("ARM_CLIENT_ID")
		assert.False(t, set)
		assert.NotEqual(t, home, os.Getenv("HOME"))
	})
	assert.Equal(t, "https://developer.cloud.databricks.com", os.Getenv("DATABRICKS_HOST"))
	assert.Equal(t, home, os.Getenv("HOME"))
}

func TestBuildOncePerTestBinary(t *testing.T) {
	t.Parallel()
	bin := Build(t, "app")
	info, err := os.Stat(bin)
	require.NoError(t, err)
	assert.NotZero(t, info.Mode()&0o100, "executable")
	assert.Equal(t, bin, Build(t, "app"), "built once")
	assert.NotEqual(t, bin, Build(t, "app", "-ldflags=-s -w"), "other flags, another build")
}

func TestJWTPatternFindsTokensOnly(t *testing.T) {
	t.Parallel()
	require.Len(t, JWT.FindAllString("a eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.sig b", -1), 1)
	assert.Empty(t, JWT.FindAllString("eyJ alone, and a.b.c", -1))
}

// A process that exits while a child of its own still holds its output: the test learns of the exit within the
// wait delay, and Stop kills the child.
func TestStopEndsWhatTheProcessLeftBehind(t *testing.T) {
	t.Parallel()
	p := StartProcess(t, []string{"/bin/sh", "-c", "sleep 30 & echo $!; exec sleep 0.1"}, "", nil)
	select {
	case <-p.Exited():
	case <-time.After(Patience):
		t.Fatal("the exit was not seen while the child holds the output")
	}
	child, err := strconv.Atoi(strings.TrimSpace(p.Stdout.String()))
	require.NoError(t, err, "the child's pid: %q", p.Stdout.String())
	_ = p.Stop(t)
	require.Eventually(t, func() bool { return syscall.Kill(child, 0) != nil }, Patience, 20*time.Millisecond,
		"the child %d outlived Stop", child)
}
