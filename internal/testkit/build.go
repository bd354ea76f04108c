package testkit

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/internal/gotool"
)

// Module is this repository's module path.
const Module = "github.com/databricks-sample/go-apps-api"

var (
	// home is HOME when the test binary started, before any test moved it (CleanEnv): the developer's warm build
	// and module caches live under it.
	home = os.Getenv("HOME")
	// userCache is the user's cache folder, found as home is, where Build keeps the programs it builds.
	userCache, userCacheErr = os.UserCacheDir()

	builds struct {
		sync.Mutex
		dir  string            // this test binary's scratch files (what its tests package, …); Run removes it
		bins map[string]string // package and flags → binary
	}
)

// Run runs the tests and removes their scratch folder (ScratchDir): TestMain is `os.Exit(testkit.Run(m))`.
func Run(m *testing.M) int {
	code := m.Run()
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
	return code
}

// RepoRoot is the folder of this module's go.mod, found from the test's working folder (its package's folder).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the test's folder")
		dir = parent
	}
}

// GoCommand is a go (or make) command run in the repository with the developer's HOME, so a test that moved HOME
// still builds with the warm cache.
func GoCommand(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "HOME="+home)
	return cmd
}

// ScratchDir is this test binary's folder for what its tests build and package, made once; Run removes it.
func ScratchDir(t testing.TB) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "go-apps-api-test-builds-")
		require.NoError(t, err)
		builds.dir = dir
	}
	return builds.dir
}

// Build builds one of this module's packages ("app", "caller", "emulator", …) with flags, once per test binary,
// and returns the binary. The programs live in the folder the demo and the benchmark build into
// (gotool.CacheDirIn), where go build relinks one only when its sources changed: the test binaries of a run, and
// the runs after it, link each program at most once. Test binaries building at the same time take turns.
func Build(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	key := strings.Join(append([]string{pkg}, flags...), " ")
	if bin, ok := builds.bins[key]; ok {
		return bin
	}
	require.NoError(t, userCacheErr, "the user's cache folder, for the programs tests build")
	dir, err := gotool.CacheDirIn(userCache, RepoRoot(t))
	require.NoError(t, err)
	name := filepath.Base(pkg)
	if len(flags) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(flags, " ")))
		name += "-" + hex.EncodeToString(sum[:4])
	}
	bin := filepath.Join(dir, name)
	unlock, err := gotool.LockDir(dir)
	require.NoError(t, err)
	defer unlock()
	args := append(append([]string{"build", "-o", bin}, flags...), Module+"/"+pkg)
	out, err := GoCommand(t, "go", args...).CombinedOutput()
	require.NoError(t, err, "go build ./%s:\n%s", pkg, out)
	if builds.bins == nil {
		builds.bins = map[string]string{}
	}
	builds.bins[key] = bin
	return bin
}

// BuildRace is Build with the race detector when this test binary has it, so a child process's races are found too.
func BuildRace(t testing.TB, pkg string) string {
	t.Helper()
	if RaceEnabled {
		return Build(t, pkg, "-race")
	}
	return Build(t, pkg)
}
