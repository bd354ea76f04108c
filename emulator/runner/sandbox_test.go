package runner

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// TestSandboxHidesAndReveals runs a shell in a sandbox that hides a folder (but a folder inside it) and a file (but
// its neighbour), and prints what it can read, its environment and its processes.
func TestSandboxHidesAndReveals(t *testing.T) {
	t.Parallel()
	if err := SandboxProblem(); err != nil {
		t.Skipf("no sandbox on this machine: %v", err)
	}
	root := t.TempDir()
	data := filepath.Join(root, "data")
	mine := filepath.Join(data, "apps", "mine")
	require.NoError(t, os.MkdirAll(mine, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(mine, "code.txt"), []byte("my code"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(data, "secret.txt"), []byte("data secret"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(root, "state.json"), []byte("state secret"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(root, "neighbour.txt"), []byte("neighbour"), 0o644))
	home := filepath.Join(root, "home")

	seen := func(path string) string { return `if [ -e ` + path + ` ]; then echo seen; else echo hidden; fi` }
	script := strings.Join([]string{
		seen(filepath.Join(data, "secret.txt")),
		seen(filepath.Join(root, "state.json")),
		`cat code.txt; echo`,
		`cat ` + filepath.Join(root, "neighbour.txt") + `; echo`,
		`echo "home=$HOME tmp=${TMPDIR#$HOME/} user=${USER:-none}"`,
		seen("/proc/" + strconv.Itoa(os.Getpid())),
	}, "\n")
	var out strings.Builder
	err := RunJob(context.Background(), Job{Name: "probe", Command: []string{"sh", "-c", script}, Dir: mine,
		Env: []string{"PATH=" + os.Getenv("PATH")}, Stdout: &out, Stderr: &out,
		Sandbox: &Sandbox{Home: home, Hide: []string{data, filepath.Join(root, "state.json")}, Reveal: []string{mine}}})
	require.NoError(t, err, out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 6, out.String())
	assert.Equal(t, "hidden", lines[0], "the hidden folder's files")
	assert.Equal(t, "hidden", lines[1], "the hidden file")
	assert.Equal(t, "my code", lines[2], "the revealed folder, its working folder")
	assert.Equal(t, "neighbour", lines[3], "a hidden file's neighbours stay")
	assert.True(t, strings.HasPrefix(lines[4], "home="+home+" tmp=.tmp-"), lines[4])
	assert.Contains(t, lines[4], "user=none", "only the environment it was given")
	assert.Equal(t, "hidden", lines[5], "its /proc shows only its own PID namespace, not this process")
}

// TestSandboxedAppStopsGracefully: SIGTERM reaches a sandboxed app, which exits on it within the grace period.
func TestSandboxedAppStopsGracefully(t *testing.T) {
	t.Parallel()
	if err := SandboxProblem(); err != nil {
		t.Skipf("no sandbox on this machine: %v", err)
	}
	out := &testkit.Buffer{}
	a, err := Start(Spec{Name: "graceful", Command: []string{"sh", "-c", `trap 'echo got TERM; exit 0' TERM; echo up; while :; do sleep 0.05; done`},
		Env: []string{"PATH=" + os.Getenv("PATH")}, Stdout: out, Sandbox: &Sandbox{Home: t.TempDir()}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "up") }, patience, 10*time.Millisecond)
	require.NoError(t, a.Stop(patience), "it exits on SIGTERM: not killed")
	assert.Contains(t, out.String(), "got TERM")
}
