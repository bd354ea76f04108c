package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// TestRunStartsApps runs the command as a user would: two apps (one from an app.yaml), the state file, the
// platform environment, then a clean stop on cancellation.
func TestRunStartsApps(t *testing.T) {
	testkit.CleanEnv(t)
	t.Setenv(echoAppRole, "1") // the apps are this test binary, serving echoes
	self, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	appYAML := filepath.Join(dir, "caller", "app.yaml")
	require.NoError(t, os.MkdirAll(filepath.Dir(appYAML), 0o700))
	require.NoError(t, os.WriteFile(appYAML, []byte(`command: ["`+self+`", "--port", "$DATABRICKS_APP_PORT"]
env:
  - name: FROM_APP_YAML
    value: "yes"
  - name: TARGET_APP
    valueFrom: target-app
`), 0o600))
	stateFile := filepath.Join(dir, "state.json")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout, stderr := &testkit.Buffer{}, &testkit.Buffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"emulator", "run", "--fresh", "--state", stateFile, "--profile-dir", filepath.Join(dir, "profile"),
			"--app", "caller-app", "--app-yaml", appYAML, "--app", "api-app", "--", self}, os.Getenv, stdout, stderr)
	}()
	raw := waitForFile(t, stateFile, errc)

	info, err := os.Stat(stateFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	var state workspace.State
	require.NoError(t, json.Unmarshal(raw, &state))
	assert.Equal(t, "1234567890123456", state.WorkspaceID)
	assert.Equal(t, "emulator", state.Profile)
	assert.FileExists(t, state.ConfigFile)
	assert.FileExists(t, state.CLIPath)
	assert.Equal(t, []string{"api-app", "caller-app"}, state.Users["dev@example.com"].CanUse)
	// Only those who may use api-app may use caller-app, which calls api-app as itself.
	assert.Empty(t, state.Users["outsider@example.com"].CanUse)
	assert.Empty(t, state.ServicePrincipals["no-access-service"].CanUse)
	for _, name := range []string{"api-app", "caller-app"} {
		assert.NotEmpty(t, state.Apps[name].Upstream, name)
	}

	sp := state.ServicePrincipals["external-service"]
	token := testkit.ClientCredentials(t, state.WorkspaceHost+workspace.PathToken, sp.ClientID, sp.ClientSecret, "all-apis")
	status, seen := callApp(t, state.Apps["api-app"].URL+"/api/whoami", token)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "2001@1234567890123456", seen.Headers.Get(identity.HeaderUser))
	assert.Equal(t, "api-app", seen.Env["DATABRICKS_APP_NAME"])
	assert.Equal(t, state.WorkspaceHost, seen.Env["DATABRICKS_HOST"])
	assert.Equal(t, "1234567890123456", seen.Env["DATABRICKS_WORKSPACE_ID"])
	assert.Equal(t, state.Apps["api-app"].ServicePrincipalClientID, seen.Env["DATABRICKS_CLIENT_ID"])
	assert.Equal(t, "true", seen.Env["DATABRICKS_CLIENT_SECRET_SET"])
	assert.Equal(t, strings.TrimPrefix(state.Apps["api-app"].Upstream, "http://127.0.0.1:"), seen.Env["DATABRICKS_APP_PORT"])

	status, seen = callApp(t, state.Apps["caller-app"].URL+"/api/whoami", token)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "caller-app", seen.Env["DATABRICKS_APP_NAME"])
	assert.Equal(t, "yes", seen.Env["FROM_APP_YAML"])
	assert.Equal(t, "api-app", seen.Env["TARGET_APP"], "an app resource yields the app's name")
	assert.Equal(t, "--port "+seen.Env["DATABRICKS_APP_PORT"], seen.Env["ARGS"], "$DATABRICKS_APP_PORT is substituted")
	status, _ = callApp(t, state.Apps["api-app"].URL+"/api/refused", "")
	require.Equal(t, http.StatusUnauthorized, status)

	stopRun(t, cancel, errc)
	assert.NoFileExists(t, stateFile, "the state file goes with the emulator")
	for _, sp := range state.ServicePrincipals {
		if sp.ClientSecret != "" { // federated-service has none
			assert.NotContains(t, stdout.String()+stderr.String(), sp.ClientSecret)
		}
	}
	assert.NotContains(t, stdout.String()+stderr.String(), token)
	assert.Contains(t, stdout.String(), state.Apps["api-app"].URL)
	// Without --verbose the proxy logs what it answers itself, not what it forwards (the app logs those).
	assert.Contains(t, stderr.String(), `msg="proxy request" app=api-app method=GET path=/api/refused status=401`)
	assert.NotContains(t, stderr.String(), "path=/api/whoami")
}

// TestRunCreatesAnAppTheModelLacks: `run --app NAME` for an app the model does not have creates it, as the signed-in
// user creating it with the Apps API would, so a new app runs under its own name with no model to write: its own
// service principal, the signed-in user its manager and user, nobody else.
func TestRunCreatesAnAppTheModelLacks(t *testing.T) {
	testkit.CleanEnv(t)
	t.Setenv(echoAppRole, "1")
	self, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	stateFile := filepath.Join(dir, "state.json")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr := &testkit.Buffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"emulator", "run", "--fresh", "--state", stateFile,
			"--profile-dir", filepath.Join(dir, "profile"), "--app", "my-new-app", "--", self}, os.Getenv, io.Discard, stderr)
	}()
	var state workspace.State
	require.NoError(t, json.Unmarshal(waitForFile(t, stateFile, errc), &state))

	app, ok := state.Apps["my-new-app"]
	require.True(t, ok, "the state file lists the new app")
	assert.NotEmpty(t, app.Upstream, "and it runs")
	assert.Contains(t, state.Users["dev@example.com"].CanUse, "my-new-app")
	assert.NotContains(t, state.ServicePrincipals["external-service"].CanUse, "my-new-app")

	cmd := exec.CommandContext(t.Context(), state.CLIPath, "auth", "token", "--profile", state.Profile)
	cmd.Env = append(os.Environ(), "DATABRICKS_CONFIG_FILE="+state.ConfigFile)
	out, err := cmd.Output()
	require.NoError(t, err)
	var userToken struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal(out, &userToken))
	status, seen := callApp(t, app.URL+"/api/whoami", userToken.AccessToken)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "1001@1234567890123456", seen.Headers.Get(identity.HeaderUser), "the signed-in user may use it")
	assert.Equal(t, "my-new-app", seen.Env["DATABRICKS_APP_NAME"])
	assert.Equal(t, app.ServicePrincipalClientID, seen.Env["DATABRICKS_CLIENT_ID"], "its own service principal")
	assert.Empty(t, seen.Headers.Get(identity.HeaderAccessToken), "no user authorization scopes")

	sp := state.ServicePrincipals["external-service"]
	token := testkit.ClientCredentials(t, state.WorkspaceHost+workspace.PathToken, sp.ClientID, sp.ClientSecret, "all-apis")
	status, _ = callApp(t, app.URL+"/api/whoami", token)
	assert.Equal(t, http.StatusForbidden, status, "nobody else was granted CAN USE")

	stopRun(t, cancel, errc) // its log is batched (logbuffer): stopping flushes it
	assert.Contains(t, stderr.String(), "created an app the model does not have")
}

func TestRunRejectsBadInput(t *testing.T) {
	testkit.CleanEnv(t)
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(badConfig, []byte("workspace: {id: abc}\n"), 0o600))
	exitsAtOnce := filepath.Join(dir, "app.yaml")
	require.NoError(t, os.WriteFile(exitsAtOnce, []byte(`command: ["false"]`), 0o600))
	unknownResource := filepath.Join(dir, "resource.yaml")
	require.NoError(t, os.WriteFile(unknownResource, []byte("command: [\"true\"]\nenv:\n  - name: T\n    valueFrom: nope\n"), 0o600))
	badResource := filepath.Join(dir, "bad-resource.yaml")
	require.NoError(t, os.WriteFile(badResource, []byte(`workspace: {id: "1"}
users: [{id: "1001", user_name: dev@example.com, signed_in: true}]
service_principals: [{id: "2001", name: sp, application_id: a, secret: s}]
apps: [{name: app, service_principal: sp, resources: [{name: target-app, app: missing}]}]
`), 0o600))

	tests := []struct {
		name     string
		args     []string
		mentions string
	}{
		{"unknown command", []string{"deploy"}, "unknown command"},
		{"unknown flag", []string{"serve", "--colour"}, "colour"},
		{"serve with arguments", []string{"serve", "extra"}, "no arguments"},
		{"run without a command", []string{"run"}, "app (default): give its command"},
		{"named app without a command", []string{"run", "--app", "caller-app", "--app", "api-app", "--", "true"}, "app caller-app: give its command"},
		{"bad duration", []string{"--token-lifetime", "10ms"}, "at least 1s"},
		{"bad config", []string{"--config", badConfig}, "workspace.id"},
		{"missing config", []string{"--config", filepath.Join(dir, "none.yaml")}, "no such file"},
		{"an app name the platform refuses", []string{"run", "--app", "My_App", "--", "true"}, `App name "My_App" is invalid`},
		{"bad upstream", []string{"--upstream", "api-app"}, "NAME=URL"},
		{"app exits before listening", []string{"run", "--app-yaml", exitsAtOnce}, "exited before listening"},
		{"valueFrom an unknown resource", []string{"run", "--app", "caller-app", "--app-yaml", unknownResource}, `has no resource with the key`},
		{"resource to an unknown app", []string{"--config", badResource}, `resource "target-app": app "missing" is not in the model`},
		{"listens where the emulator does not wait", []string{"run", "--start-timeout", "1s", "--", "sleep", "30"},
			"names no $DATABRICKS_APP_PORT, so it must listen on the port in its environment variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(t.Context(), append([]string{"emulator"}, fresh(tt.args)...), os.Getenv, io.Discard, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.mentions)
		})
	}

	var out strings.Builder
	require.NoError(t, run(t.Context(), []string{"emulator", "--help"}, os.Getenv, &out, io.Discard))
	assert.Contains(t, out.String(), "--request-timeout")
	assert.Contains(t, out.String(), "--verbose")
	for _, args := range [][]string{{"serve", "--verbose"}, {"run", "--verbose", "--", "app"}} {
		o, err := parseFlags(args[0], args[1:], os.Getenv, io.Discard)
		require.NoError(t, err, args[0])
		assert.True(t, o.verbose, args[0])
	}
}

// TestRunRefusesAPortTheShellExpanded: an unquoted $DATABRICKS_APP_PORT is gone before the emulator sees the command,
// so the app would listen on no port or another one. Each of these is refused before anything starts.
func TestRunRefusesAPortTheShellExpanded(t *testing.T) {
	t.Parallel()
	unset := func(string) string { return "" }
	leftOver := func(k string) string { return map[string]string{"DATABRICKS_APP_PORT": "8000"}[k] }
	tests := []struct {
		name     string
		getenv   func(string) string
		command  []string
		mentions string
	}{
		{"unquoted, unset: the option last", unset, []string{"uvicorn", "main:app", "--port"}, `"--port" with no port`},
		{"double-quoted, unset", unset, []string{"uvicorn", "main:app", "--port", "", "--reload"}, `"--port" with no port`},
		{"unquoted, unset, an option after it", unset, []string{"uvicorn", "main:app", "--port", "--reload"}, `"--port --reload" with no port`},
		{"after =", unset, []string{"streamlit", "run", "app.py", "--server.port="}, `"--server.port=" with no port`},
		{"an address with no port", unset, []string{"gunicorn", "-b", "0.0.0.0:", "app:app"}, `"0.0.0.0:" with no port`},
		{"in a double-quoted sh -c script", unset, []string{"sh", "-c", "exec node server.js -p "}, `"-p" with no port`},
		{"left over in the shell", leftOver, []string{"uvicorn", "main:app", "--port", "8000"}, "port 8000, the value of DATABRICKS_APP_PORT in your shell"},
		{"left over, in an address", leftOver, []string{"./app", "--listen=127.0.0.1:8000"}, "port 8000, the value of DATABRICKS_APP_PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"emulator", "run", "--fresh", "--"}, tt.command...)
			err := run(t.Context(), args, tt.getenv, io.Discard, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.mentions)
			assert.Contains(t, err.Error(), "'$DATABRICKS_APP_PORT'", "the fix: single quotes")
		})
	}

	for _, command := range [][]string{
		{"uvicorn", "main:app", "--port", "$DATABRICKS_APP_PORT"},
		{"uvicorn", "main:app", "--port=${DATABRICKS_APP_PORT}"},
		{"gunicorn", "-b", "0.0.0.0:$DATABRICKS_APP_PORT", "app:app"},
		{"sh", "-c", `mkdir -p -m 700 "$TMPDIR/x" && exec ./app --port "$DATABRICKS_APP_PORT"`},
		{"node", "server.js"}, // reads DATABRICKS_APP_PORT from its environment
		{"sh", "-c", "sleep 8000; exec ./app --port $DATABRICKS_APP_PORT"},
	} {
		assert.NoError(t, checkPortNotExpanded(command, "8000"), "%q", command)
	}
}

// fresh adds --fresh to an emulator command line (after its command, if it names one): a test's workspace is thrown
// away, never the user's lasting one.
func fresh(args []string) []string {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return append([]string{args[0], "--fresh"}, args[1:]...)
	}
	return append([]string{"--fresh"}, args...)
}

// TestDataDirAndFresh: a lasting workspace is kept in the user's state directory unless --data-dir says where;
// --fresh is a throw-away one; the two exclude each other.
func TestDataDirAndFresh(t *testing.T) {
	t.Parallel()
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	o, err := parseFlags("serve", nil, env(map[string]string{"XDG_STATE_HOME": "/state", "HOME": "/home/u"}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "/state/databricks-apps-emulator", o.dataDir)
	if runtime.GOOS == "linux" {
		o, err = parseFlags("serve", nil, env(map[string]string{"HOME": "/home/u"}), io.Discard)
		require.NoError(t, err)
		assert.Equal(t, "/home/u/.local/state/databricks-apps-emulator", o.dataDir)
	}
	o, err = parseFlags("serve", []string{"--fresh"}, env(nil), io.Discard)
	require.NoError(t, err)
	assert.True(t, o.fresh)
	assert.Empty(t, o.dataDir, "a temp dir of its own")
	_, err = parseFlags("serve", nil, env(nil), io.Discard)
	assert.ErrorContains(t, err, "--fresh for a throw-away workspace")
	_, err = parseFlags("serve", []string{"--fresh", "--data-dir", "/x"}, env(nil), io.Discard)
	assert.ErrorContains(t, err, "exclude each other")
}

// TestSecondEmulatorOnTheSameStateFileOrDataDir: the second one is refused, naming the process of the first, and
// the first's state file is left alone.
func TestSecondEmulatorOnTheSameStateFileOrDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stateFile := filepath.Join(dir, "state.json")
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"emulator", "serve", "--state", stateFile, "--data-dir", data}, os.Getenv,
			io.Discard, io.Discard)
	}()
	first := waitForFile(t, stateFile, errc)

	err := run(t.Context(), []string{"emulator", "serve", "--state", stateFile, "--fresh"}, os.Getenv, io.Discard, io.Discard)
	require.ErrorIs(t, err, workspace.ErrLocked)
	assert.Contains(t, err.Error(), "state file "+stateFile)
	assert.Contains(t, err.Error(), fmt.Sprintf("held by process %d", os.Getpid()))
	again, readErr := os.ReadFile(stateFile)
	require.NoError(t, readErr)
	assert.Equal(t, first, again, "the first emulator's state file is left as it was")

	err = run(t.Context(), []string{"emulator", "serve", "--data-dir", data}, os.Getenv, io.Discard, io.Discard)
	require.ErrorIs(t, err, workspace.ErrLocked)
	assert.Contains(t, err.Error(), "workspace data folder "+data)

	cancel()
	require.NoError(t, <-errc)
	assert.NoFileExists(t, stateFile)
	assert.NoFileExists(t, stateLockPath(stateFile), "the lock beside it goes too")
}

// stopRun cancels a run, as Ctrl+C does, and waits for it to return cleanly.
func stopRun(t *testing.T, cancel context.CancelFunc, errc <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(testkit.Patience):
		t.Fatal("run did not return after cancellation")
	}
}
