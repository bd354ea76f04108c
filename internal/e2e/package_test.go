package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/databricks-sample/go-apps-api/emulator/browser"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// Databricks Apps refuses to deploy a source folder holding any file larger than this.
const platformMaxFileBytes = 10 * 1024 * 1024

// Every file of every deployable folder fits the platform's limit, and each folder holds just app.yaml and the parts of
// its binary.
func TestPackagedFilesFitThePlatformLimit(t *testing.T) {
	packageRoot := packagedApps(t)
	want := map[string]string{"app": "app.part-", "caller": "caller.part-"} // and app.yaml in each
	folders, err := os.ReadDir(packageRoot)
	require.NoError(t, err)
	for _, folder := range folders {
		entries, err := os.ReadDir(filepath.Join(packageRoot, folder.Name()))
		require.NoError(t, err)
		parts := 0
		for _, e := range entries {
			info, err := e.Info()
			require.NoError(t, err)
			assert.LessOrEqual(t, info.Size(), int64(platformMaxFileBytes), "%s/%s is %d bytes", folder.Name(), e.Name(), info.Size())
			switch {
			case e.Name() == "app.yaml":
			case strings.HasPrefix(e.Name(), want[folder.Name()]):
				parts++
			default:
				t.Errorf("%s/%s: make package put an unexpected file in a deployable folder", folder.Name(), e.Name())
			}
		}
		assert.FileExists(t, filepath.Join(packageRoot, folder.Name(), "app.yaml"))
		assert.GreaterOrEqual(t, parts, 2, "%s: a binary over 10 MB needs at least two parts", folder.Name())
		delete(want, folder.Name())
	}
	assert.Empty(t, want, "make package did not build these folders")
}

// The packaged app.yaml's command, run as the platform runs it, starts the app, which answers /api/health and stops
// cleanly on SIGTERM: the shell's exec hands the signal to the Go process.
func TestPackagedLauncher(t *testing.T) {
	src := packagedApp(t)
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644))
	}
	var manifest struct {
		Command []string `yaml:"command"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "app.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &manifest))
	require.NotEmpty(t, manifest.Command)

	ws, _ := emulated.Start(t, workspace.Options{})
	port := strconv.Itoa(testkit.FreePort(t))
	tmp := t.TempDir() // where the launcher joins the binary
	env := []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + tmp, "DATABRICKS_APP_PORT=" + port,
		// As the emulator's runner does: the app listens on loopback only, not on every interface of the machine.
		"APP_LISTEN_ADDR=127.0.0.1:" + port, "APP_WORKSPACE_TIMEOUT=2s"}
	for k, v := range emulated.AppEnv(ws, "api-app") {
		env = append(env, k+"="+v)
	}
	args := make([]string, len(manifest.Command))
	for i, a := range manifest.Command { // the platform substitutes this one variable in command
		args[i] = strings.ReplaceAll(a, "$DATABRICKS_APP_PORT", port)
	}
	app := &testkit.App{Process: testkit.StartProcess(t, args, dir, env), URL: "http://127.0.0.1:" + port}
	app.WaitHealthy(t)
	require.NoError(t, ws.SetUpstream("api-app", app.URL))

	// A signed-in user's call through the proxy: the app calls the workspace with the user's forwarded token.
	client, _ := browserClient(t)
	resp, err := browser.SignIn(t.Context(), client, ws.AppURL("api-app")+"/", "dev@example.com")
	require.NoError(t, err)
	resp.Body.Close()
	resp, body := getBody(t, client, ws.AppURL("api-app")+"/api/genie/spaces")
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Contains(t, body, `"title":"Sales orders"`)
	if _, err := os.Stat("/proc/self/fd"); err == nil {
		left, err := os.ReadDir(tmp)
		require.NoError(t, err)
		assert.Empty(t, left, "the running app left its joined binary in TMPDIR") // a 17 MB copy at every start
	}

	assert.NoError(t, app.Stop(t), "exit status after SIGTERM")
	assert.Contains(t, app.Stdout.String(), `"msg":"stopped"`)
	if _, err := os.Stat("/proc/self/fd"); err == nil {
		left, err := os.ReadDir(tmp)
		require.NoError(t, err)
		assert.Empty(t, left, "the stopped app left files in TMPDIR")
	}
	testkit.AssertNoSecrets(t, app.Stdout.String()+app.Stderr.String(), emulated.AppEnv(ws, "api-app")["DATABRICKS_CLIENT_SECRET"])
}
