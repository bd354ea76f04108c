package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Run(m)) }

// offline makes the go command work on the module and build caches this sample already filled, never the network,
// as after make deps at a workshop. It reads where they are before CleanEnv moves HOME.
func offline(t *testing.T) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE", "GOCACHE").Output()
	require.NoError(t, err)
	caches := strings.Fields(string(out))
	require.Len(t, caches, 2)
	testkit.CleanEnv(t)
	t.Setenv("GOMODCACHE", caches[0])
	t.Setenv("GOCACHE", caches[1])
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOTOOLCHAIN", "local")
}

// TestNewAppBuildsTestsAndRunsUnderTheEmulator is what make new-app promises: a module of its own, with its own
// module path and app name, that builds, passes its own tests, and runs under the emulator under its own name with
// no model written by hand. Each step is bounded by the go command or the emulator it waits for, not by a sleep.
func TestNewAppBuildsTestsAndRunsUnderTheEmulator(t *testing.T) {
	emulator := testkit.Build(t, "emulator")
	offline(t)
	dir := filepath.Join(t.TempDir(), "my-app")
	t.Chdir(testkit.RepoRoot(t))
	var out, goOut strings.Builder
	require.NoError(t, run(t.Context(), []string{"--name", "my-app", "--module", "example.com/acme/my-app",
		"--emulator", emulator, dir}, &out, &goOut), "%s", &goOut)
	assert.Contains(t, out.String(), "module example.com/acme/my-app, app my-app")

	goMod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	require.NoError(t, err)
	assert.Contains(t, string(goMod), "module example.com/acme/my-app\n")
	assert.Contains(t, string(goMod), "go 1.25")
	assert.NotContains(t, string(goMod), "chromedp", "tidied: only what the app needs")
	assert.NotContains(t, string(goMod), "tool ")
	sample := testkit.Module
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if strings.HasSuffix(path, ".go") {
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.NotContains(t, string(data), sample, "%s imports the sample", path)
		}
		return nil
	})
	makefile, err := os.ReadFile(filepath.Join(dir, "Makefile"))
	require.NoError(t, err)
	assert.Contains(t, string(makefile), "EMULATOR ?= "+emulator)

	// Its own tests, as its make test runs them (without -race, which the sample's own make test already covers).
	for _, args := range [][]string{{"vet", "./..."}, {"test", "-count=1", "./..."}, {"build", "-o", "bin/my-app", "."}} {
		cmd := exec.CommandContext(t.Context(), "go", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s in the new module:\n%s", strings.Join(args, " "), out)
	}

	// make dev's command: the emulator creates the app it does not know and starts it under its own name, in a
	// throw-away workspace.
	state := filepath.Join(t.TempDir(), "state.json")
	emu := testkit.StartProcess(t, []string{emulator, "run", "--fresh", "--state", state, "--app", "my-app", "--",
		filepath.Join(dir, "bin", "my-app")}, dir, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()})
	for !strings.Contains(emu.Stdout.String(), "Press Ctrl+C to stop.") {
		select {
		case <-emu.Exited():
			t.Fatalf("the emulator exited: %v\n%s%s", emu.Err(), emu.Stdout, emu.Stderr)
		case <-time.After(10 * time.Millisecond): // the emulator bounds the wait: its --start-timeout
		}
	}
	var s workspace.State
	raw, err := os.ReadFile(state)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &s))
	require.Contains(t, s.Apps, "my-app")

	cli := exec.CommandContext(t.Context(), s.CLIPath, "auth", "token", "--profile", s.Profile)
	cli.Env = []string{"DATABRICKS_CONFIG_FILE=" + s.ConfigFile, "HOME=" + t.TempDir()}
	tokenJSON, err := cli.Output()
	require.NoError(t, err)
	var token struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal(tokenJSON, &token))

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.Apps["my-app"].URL+"/api/health", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var health struct{ Status, App string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&health))
	assert.Equal(t, "my-app", health.App, "the app runs under its own name")
	require.NoError(t, emu.Stop(t))
}

func TestNewAppRefusesBadInput(t *testing.T) {
	t.Chdir(testkit.RepoRoot(t))
	full := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(full, "x"), nil, 0o600))
	for _, tt := range []struct {
		name     string
		args     []string
		mentions string
	}{
		{"no folder", []string{"--name", "my-app"}, "want one folder"},
		{"a name the platform refuses", []string{"--name", "My_App", filepath.Join(t.TempDir(), "a")}, `App name "My_App" is invalid`},
		{"a bad module path", []string{"--name", "my-app", "--module", "bad path", filepath.Join(t.TempDir(), "a")}, "--module"},
		{"a folder in use", []string{"--name", "my-app", full}, "is not empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := run(t.Context(), tt.args, io.Discard, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.mentions)
		})
	}
	_, err := os.Stat(filepath.Join(full, "go.mod"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing written into a folder in use")
}
