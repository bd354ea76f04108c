package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// The messages a newcomer meets first: each says what is really missing and the exact fix.

// A new terminal without DATABRICKS_CONFIG_FILE reads ~/.databrickscfg, which has no emulator profile: the caller
// says which file it read and why, and how to point at the emulator's, instead of "host is required" and a login.
func TestNoConfigFileSaysWhichFileAndHowToPointAtTheEmulators(t *testing.T) {
	t.Parallel()
	home := t.TempDir() // no .databrickscfg in it
	for _, args := range [][]string{
		{"--profile", "emulator", "--app", "api-app", "whoami"},
		{"--mode", "local", "--profile", "emulator", "--app", "api-app", "whoami"},
		{"--mode", "local", "--app", "api-app", "whoami"},
		{"--app", "api-app", "whoami"},
		{"--profile", "emulator", "login", "--scopes", "sql"},
	} {
		r := runCaller(t, map[string]string{"HOME": home}, args...)
		assert.Equal(t, exitUsage, r.code, r.String())
		assert.Contains(t, r.stderr, "there is no config file "+filepath.Join(home, ".databrickscfg")+
			" (the default: DATABRICKS_CONFIG_FILE is not set)")
		assert.Contains(t, r.stderr, `export DATABRICKS_CONFIG_FILE="$(jq -r .config_file FILE)"`)
		assert.NotContains(t, r.stderr, "host is required")
		assert.NotContains(t, r.stderr, "cannot configure default credentials")
	}
}

// A mistyped profile gets the file's profiles, not advice to log in under the typo.
func TestMistypedProfileListsTheFilesProfiles(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), ".databrickscfg")
	require.NoError(t, os.WriteFile(cfg, []byte("[emulator]\nhost = http://127.0.0.1:1\n\n[prod]\nhost = https://w.example\n\n[nohost]\nauth_type = databricks-cli\n"), 0o600))
	env := map[string]string{"DATABRICKS_CONFIG_FILE": cfg}
	for _, mode := range []string{"local", "auto"} {
		r := runCaller(t, env, "--mode", mode, "--profile", "emulatr", "--app", "api-app", "whoami")
		assert.Equal(t, exitUsage, r.code, r.String())
		assert.Contains(t, r.stderr, "no profile emulatr in "+cfg+" (DATABRICKS_CONFIG_FILE); its profiles: emulator, nohost, prod")
		assert.Contains(t, r.stderr, "--profile emulator, --profile nohost, --profile prod")
		assert.NotContains(t, r.stderr, "auth login --profile emulatr")
		assert.NotContains(t, r.stderr, "jq", "DATABRICKS_CONFIG_FILE is set: the file read is the one named")
	}
	r := runCaller(t, env, "--mode", "local", "--profile", "nohost", "--app", "api-app", "whoami")
	assert.Equal(t, exitUsage, r.code, r.String())
	assert.Contains(t, r.stderr, "profile nohost in "+cfg+" (DATABRICKS_CONFIG_FILE) has no host")
}

// --url without a scheme is not Go's "first path segment in URL cannot contain colon".
func TestURLWithoutSchemeSaysTheFix(t *testing.T) {
	t.Parallel()
	r := runCaller(t, nil, "--url", "127.0.0.1:8000", "whoami")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, `--url "127.0.0.1:8000" has no scheme: give the whole URL, https://127.0.0.1:8000 (or http://127.0.0.1:8000`)
	assert.NotContains(t, r.stderr, "first path segment")
}

// login without a browser says at once what to do (the URL, on this machine, the port to forward over SSH), and
// how long it waits; at --timeout it says the browser never came back, not "context deadline exceeded".
func TestLoginWithoutABrowserSaysWhatToDo(t *testing.T) {
	t.Parallel()
	ws, _ := emulated.Start(t, workspace.Options{})
	// No DISPLAY: the caller does not try to open one. --timeout is what the test waits for: the emulated
	// workspace answers the login's discovery on loopback in milliseconds.
	env := map[string]string{"SSH_CONNECTION": "10.0.0.1 50000 10.0.0.2 22"}
	r := runCaller(t, env, "--host", ws.URL(), "login", "--scopes", "sql", "--port", "0", "--timeout", "3s")
	assert.Equal(t, exitAuth, r.code, r.String())
	assert.Contains(t, r.stderr, "No browser here: there is no display (DISPLAY and WAYLAND_DISPLAY are not set).")
	assert.Contains(t, r.stderr, "Open this URL in a browser on this machine to log in to "+ws.URL())
	assert.Regexp(t, `Over SSH, forward the redirect's port first: ssh -L (\d+):localhost:(\d+) <this machine>`, r.stderr)
	assert.Contains(t, r.stderr, "Waiting up to 3s (--timeout) for the browser to come back to http://localhost:")
	assert.Contains(t, r.stderr, "the browser did not come back to http://localhost:")
	assert.Contains(t, r.stderr, "a slower sign-in has the time it needs: --timeout 5m")
	assert.NotContains(t, r.stderr, "context deadline exceeded")

	for _, tt := range []struct {
		goos string
		env  map[string]string
		want string
	}{
		{"linux", nil, "there is no display (DISPLAY and WAYLAND_DISPLAY are not set)"},
		{"linux", map[string]string{"DISPLAY": ":0"}, ""},
		{"linux", map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, ""},
		{"freebsd", map[string]string{"BROWSER": "lynx"}, ""},
		{"darwin", nil, ""},
		{"windows", nil, ""},
	} {
		assert.Equal(t, tt.want, noBrowserReason(func(k string) string { return tt.env[k] }, tt.goos), "%s %v", tt.goos, tt.env)
	}
}
