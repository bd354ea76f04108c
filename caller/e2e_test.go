package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/emulator/browser"
	"github.com/databricks-sample/go-apps-api/emulator/runner"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// End-to-end: each mode and command as the README and docs/caller.md walk them, against the emulated workspace.

func whoAmIJSON(t *testing.T, r result) identity.WhoAmI {
	t.Helper()
	require.Equal(t, exitOK, r.code, r.String())
	var who identity.WhoAmI
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &who), r.stdout)
	return who
}

func TestE2EEachModeReachesTheAppAsItsPrincipal(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	ws := e.state.WorkspaceID

	t.Run("local: the CLI profile, whose host wins over a stray DATABRICKS_HOST", func(t *testing.T) {
		r := runCaller(t, e.env("DATABRICKS_HOST", "http://127.0.0.1:1"), "--mode", "local", "--profile", "emulator", "--app", "api-app", "whoami", "--json")
		who := whoAmIJSON(t, r)
		assert.Equal(t, "1001@"+ws, who.User)
		assert.Equal(t, identity.KindUser, who.Kind)
		assert.Equal(t, "dev@example.com", who.Email)
		assert.True(t, who.AccessTokenForwarded, "api-app has user authorization: the proxy forwards a user token")
		assert.Contains(t, r.stdout, `"auth_type": "databricks-cli"`)
		text := runCaller(t, e.env(), "--mode", "local", "--profile", "emulator", "--app", "api-app", "whoami")
		assert.Contains(t, text.stdout, "The app saw you as 1001@"+ws+" (user, email dev@example.com")
	})
	t.Run("external: a service principal's client id and secret", func(t *testing.T) {
		who := whoAmIJSON(t, runCaller(t, e.spEnv("external-service"), "--mode", "external", "--app", "api-app", "whoami", "--json"))
		assert.Equal(t, "2001@"+ws, who.User)
		assert.Equal(t, identity.KindServicePrincipal, who.Kind)
		assert.Empty(t, who.Email)
	})
	t.Run("external: one token per process, reused for every request", func(t *testing.T) {
		before := e.ws.RequestCount(workspace.PathToken)
		r := runCaller(t, e.spEnv("external-service"), "--mode", "external", "--app", "api-app", "doctor")
		require.Equal(t, exitOK, r.code, r.String())
		assert.Contains(t, r.stdout, "SKIP  scopes  a service principal")
		assert.Equal(t, before+1, e.ws.RequestCount(workspace.PathToken), "doctor's Apps API, health and whoami calls share one token")
	})
	t.Run("external: the secret from stdin", func(t *testing.T) {
		sp := e.state.ServicePrincipals["external-service"]
		env := e.env("DATABRICKS_CLIENT_ID", sp.ClientID)
		r := runCallerStdin(t, env, sp.ClientSecret+"\n", "--mode", "external", "--host", e.state.WorkspaceHost,
			"--client-secret-stdin", "--url", e.state.Apps["api-app"].URL, "whoami", "--json")
		assert.Equal(t, "2001@"+ws, whoAmIJSON(t, r).User)
	})
	t.Run("auto: reports the auth type the default chain picked", func(t *testing.T) {
		r := runCaller(t, e.spEnv("external-service"), "--app", "api-app", "whoami")
		require.Equal(t, exitOK, r.code, r.String())
		assert.Contains(t, r.stdout, "auto mode")
		assert.Contains(t, r.stdout, "auth type oauth-m2m")
		r = runCaller(t, e.env(), "--profile", "emulator", "--app", "api-app", "whoami")
		require.Equal(t, exitOK, r.code, r.String())
		assert.Contains(t, r.stdout, "auth type databricks-cli")
	})
	t.Run("app: caller serve as caller-app calls api-app with its own service principal", func(t *testing.T) {
		serveURL := startCallerApp(t, e)
		// The developer calls caller-app through its proxy; caller-app calls api-app through api-app's proxy.
		r := runCaller(t, e.env(), "--mode", "local", "--profile", "emulator", "--app", "caller-app", "--json",
			"call", "/api/call?path=/api/whoami")
		require.Equal(t, exitOK, r.code, r.String())
		var got struct {
			Body struct {
				Target struct{ App, URL, Path string } `json:"target"`
				Caller struct {
					Mode     Mode   `json:"mode"`
					AuthType string `json:"auth_type"`
					ClientID string `json:"client_id"`
				} `json:"caller_identity"`
				RequestedBy identity.Identity `json:"requested_by"`
				Response    identity.WhoAmI   `json:"response"`
			} `json:"body"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
		assert.Equal(t, "2003@"+ws, got.Body.Response.User, "api-app saw caller-app's service principal")
		assert.Equal(t, identity.KindServicePrincipal, got.Body.Response.Kind)
		assert.Equal(t, ModeApp, got.Body.Caller.Mode)
		assert.Equal(t, "oauth-m2m", got.Body.Caller.AuthType)
		assert.Equal(t, e.state.ServicePrincipals["caller-app"].ClientID, got.Body.Caller.ClientID)
		assert.Equal(t, "1001@"+ws, got.Body.RequestedBy.User, "caller-app's proxy says who asked")
		assert.Equal(t, "api-app", got.Body.Target.App)

		// The target is fixed: a request picks only an /api/ path on it (asked of serve directly, for speed).
		for _, p := range []string{"//evil.example/api/x", "/api/../logz", "http://evil.example/api/x", "/api/%2e%2e/x",
			"/logz", "/api/x\\..\\..\\logz", "/api/@evil.example:443/x/..", "https:/evil.example/api/"} {
			resp, err := http.Get(serveURL + "/api/call?path=" + url.QueryEscape(p))
			require.NoError(t, err)
			var e jsonhttp.Error
			assert.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, p)
			assert.Equal(t, jsonhttp.CodeInvalidParameter, e.Code, p)
		}
	})
}

// TestE2EPackagedCallerApp runs build/caller as the platform would: the folder `make package-caller` builds (app.yaml
// and the binary in parts), app.yaml's command (a /bin/sh that joins the parts and execs the binary) with the
// platform's environment, SIGTERM to stop.
func TestE2EPackagedCallerApp(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	build := t.TempDir()
	out, err := testkit.GoCommand(t, "make", "-s", "package-caller", "BUILD="+build,
		"PACKAGE_GOOS="+runtime.GOOS, "PACKAGE_GOARCH="+runtime.GOARCH).CombinedOutput() // this machine's, to run it here
	require.NoError(t, err, "make package-caller:\n%s", out)
	dir := filepath.Join(build, "caller")
	parts, err := filepath.Glob(filepath.Join(dir, "caller.part-*"))
	require.NoError(t, err)
	require.NotEmpty(t, parts)
	for _, part := range parts {
		info, err := os.Stat(part)
		require.NoError(t, err)
		assert.LessOrEqual(t, info.Size(), int64(10<<20), "within the platform's 10 MB per-file limit")
	}
	appYAML, err := os.ReadFile(filepath.Join(dir, "app.yaml"))
	require.NoError(t, err)
	var spec struct {
		Command []string `yaml:"command"`
	}
	require.NoError(t, yaml.Unmarshal(appYAML, &spec))

	port := testkit.FreePort(t)
	sp := e.state.ServicePrincipals["caller-app"]
	logs := &testkit.Buffer{}
	tmp := t.TempDir() // where app.yaml's command joins the parts (mktemp -d): removed after the app stops
	app, err := runner.Start(runner.Spec{Name: "caller-app", Command: spec.Command, Dir: dir, Port: port,
		Env: []string{"DATABRICKS_APP_NAME=caller-app", "DATABRICKS_HOST=" + e.state.WorkspaceHost,
			"DATABRICKS_WORKSPACE_ID=" + e.state.WorkspaceID, "DATABRICKS_CLIENT_ID=" + sp.ClientID,
			"DATABRICKS_CLIENT_SECRET=" + sp.ClientSecret, "TARGET_APP=api-app", "TMPDIR=" + tmp},
		Stdout: logs, Stderr: logs})
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = app.Stop(time.Second)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), testkit.Patience)
	defer cancel()
	require.NoError(t, app.WaitListening(ctx, fmt.Sprintf("127.0.0.1:%d", port)), "%s", logs)
	require.NoError(t, e.ws.SetUpstream("caller-app", fmt.Sprintf("http://127.0.0.1:%d", port)))

	r := runCaller(t, e.spEnv("external-service"), "--mode", "external", "--app", "caller-app", "--json", "call", "/api/call?path=/api/whoami")
	require.Equal(t, exitOK, r.code, r.String()+logs.String())
	assert.Contains(t, r.stdout, `"user": "2003@`+e.state.WorkspaceID+`"`, "api-app saw caller-app's service principal")

	stopped = true
	assert.NoError(t, app.Stop(runner.StopGrace), "SIGTERM reaches the Go process through sh's exec; it drains and exits")
	assert.Contains(t, logs.String(), "caller stopped")
}

func TestE2EFailures(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	short := startEmulator(t, 2*time.Second) // for a token that expires during the test
	closedPort := testkit.FreePort(t)

	expired := runCaller(t, short.spEnv("external-service"), "--mode", "external", "token")
	require.Equal(t, exitOK, expired.code)
	expiredToken := strings.TrimSpace(expired.stdout)
	time.Sleep(2100 * time.Millisecond)

	noAccess := e.state.ServicePrincipals["no-access-service"]
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		code     int
		contains []string
	}{
		{"401 garbage token", e.env("DATABRICKS_HOST", e.state.WorkspaceHost, "DATABRICKS_TOKEN", "not-a-token"),
			[]string{"--url", e.state.Apps["api-app"].URL, "whoami"}, exitAuth,
			[]string{"401 Unauthorized", "auth type pat", "even after a refresh", "the token is valid", "it is not a JWT"}},
		{"401 expired token", short.env("DATABRICKS_HOST", short.state.WorkspaceHost, "DATABRICKS_TOKEN", expiredToken),
			[]string{"--url", short.state.Apps["api-app"].URL, "whoami"}, exitAuth,
			[]string{"401 Unauthorized", "token expired", "the token has not expired: it EXPIRED at"}},
		{"403 no CAN_USE", e.spEnv("no-access-service"), []string{"--mode", "external", "--app", "api-app", "whoami"}, exitPermission,
			[]string{"403 Forbidden", "CAN USE", "databricks apps update-permissions api-app",
				`"service_principal_name":"` + noAccess.ClientID + `"`}},
		{"404 unknown app", e.spEnv("external-service"), []string{"--mode", "external", "--app", "ghost", "whoami"}, exitNotFound,
			[]string{`app "ghost" does not exist`, "databricks apps list"}},
		{"404 unknown path", e.spEnv("external-service"), []string{"--mode", "external", "--app", "api-app", "call", "/api/nope"}, exitNotFound,
			[]string{"404 Not Found", "the endpoint path exists in the app: /api/nope", "the Apps API says RUNNING"}},
		{"refused path", e.spEnv("external-service"), []string{"--mode", "external", "--app", "api-app", "call", "/logz"}, exitUsage,
			[]string{"does not start with /api/"}},
		{"nothing listening", e.spEnv("external-service"), []string{"--mode", "external", "--url", fmt.Sprintf("http://127.0.0.1:%d", closedPort), "whoami"},
			exitNetwork, []string{fmt.Sprintf("nothing is listening at 127.0.0.1:%d", closedPort), "outbound HTTPS", "HTTPS_PROXY"}},
		{"bad secret", e.env("DATABRICKS_HOST", e.state.WorkspaceHost, "DATABRICKS_CLIENT_ID", noAccess.ClientID, "DATABRICKS_CLIENT_SECRET", "wrong"),
			[]string{"--mode", "external", "--app", "api-app", "whoami"}, exitAuth, []string{"cannot get a token", "external mode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCaller(t, tt.env, tt.args...)
			assert.Equal(t, tt.code, r.code, r.String())
			for _, s := range tt.contains {
				assert.Contains(t, r.stdout+r.stderr, s)
			}
		})
	}

	t.Run("app not running", func(t *testing.T) {
		require.NoError(t, e.ws.SetUpstream("api-app", ""))
		r := runCaller(t, e.spEnv("external-service"), "--mode", "external", "--app", "api-app", "whoami")
		assert.Equal(t, exitNotFound, r.code)
		assert.Contains(t, r.stderr, `app "api-app" is UNAVAILABLE, not RUNNING`)
		r = runCaller(t, e.spEnv("external-service"), "--mode", "external", "--retries", "1", "--url", e.state.Apps["api-app"].URL, "whoami")
		assert.Equal(t, exitServer, r.code)
		assert.Contains(t, r.stderr, "502 Bad Gateway")
		assert.Contains(t, r.stderr, "retry 1/1")
	})
}

// authorizeURL is the workspace authorization URL that `callapp login --no-browser` prints.
var authorizeURL = regexp.MustCompile(`http://127\.0\.0\.1:\d+/oidc/v1/authorize\?\S+`)

func runLogin(t *testing.T, e *emulator, scopes string, extra ...string) result {
	t.Helper()
	port := testkit.FreePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Patience)
	defer cancel()
	// stderr "opens" the authorization URL once it appears, as the user's browser would, following the workspace's
	// redirect to the caller's loopback callback.
	open := browser.Headless(func(err error) { t.Errorf("browser: %v", err); cancel() })
	stderr := &watchWriter{pattern: authorizeURL, then: func(u string) { _ = open(u) }}
	var stdout bytes.Buffer
	args := append([]string{"--profile", "emulator", "login", "--scopes", scopes, "--no-browser", "--port", fmt.Sprint(port)}, extra...)
	env := e.env()
	err := run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, stderr)
	return ran(t, args, stdout.String(), stderr.String(), err)
}

// appScopes are the emulated api-app's user authorization scopes.
const appScopes = "sql,file.files,dashboards.genie"

func TestE2ELoginWithCustomScopes(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	ws := e.state.WorkspaceID

	// Too few scopes: the proxy refuses, and the caller names the missing ones and the login that fixes it.
	r := runLogin(t, e, "sql")
	require.Equal(t, exitOK, r.code, r.String())
	assert.Contains(t, r.stdout, "Logged in to "+e.state.WorkspaceHost+" with scopes sql")
	r = runCaller(t, e.env(), "--mode", "local", "--profile", "emulator", "--scopes", "sql", "--app", "api-app", "whoami")
	assert.Equal(t, exitPermission, r.code, r.String())
	assert.Contains(t, r.stderr, "missing [file.files dashboards.genie]")
	assert.Contains(t, r.stderr, "callapp login --profile emulator --scopes sql,file.files,dashboards.genie")

	// The app's scopes: the proxy forwards a user token with them.
	r = runLogin(t, e, appScopes)
	require.Equal(t, exitOK, r.code, r.String())
	r = runCaller(t, e.env(), "--mode", "local", "--profile", "emulator", "--scopes", "dashboards.genie,file.files,sql", "--app", "api-app", "whoami", "--json")
	who := whoAmIJSON(t, r)
	assert.Equal(t, "1001@"+ws, who.User)
	require.NotNil(t, who.AccessTokenClaims)
	assert.ElementsMatch(t, strings.Split(appScopes, ","), who.AccessTokenClaims.Scopes)
	assert.Contains(t, r.stdout, `"auth_type": "external-browser"`)

	cache := filepath.Join(e.home, ".databricks-caller", "token-cache.json")
	info, err := os.Stat(cache)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	body, err := os.ReadFile(cache)
	require.NoError(t, err)
	assert.Contains(t, string(body), `"emulator scopes=dashboards.genie,file.files,sql"`)

	// Scopes nobody logged in with: say which login to run.
	r = runCaller(t, e.env(), "--mode", "local", "--profile", "emulator", "--scopes", "sql,file.files", "--app", "api-app", "whoami")
	assert.Equal(t, exitAuth, r.code)
	assert.Contains(t, r.stderr, "callapp login --profile emulator --scopes file.files,sql")
}

// With --json and --no-browser the authorization URL still reaches stderr: it is the only way to log in.
func TestE2ELoginJSONPrintsTheURL(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	r := runLogin(t, e, "sql", "--json")
	require.Equal(t, exitOK, r.code, r.String())
	assert.Regexp(t, authorizeURL, r.stderr)
	var got struct {
		Host   string   `json:"host"`
		Scopes []string `json:"scopes"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
	assert.Equal(t, e.state.WorkspaceHost, got.Host)
	assert.Equal(t, []string{"sql"}, got.Scopes)
}

// TestE2ELoginTokenRefreshes: a cached login token that expired is refreshed with its refresh token, no new login.
func TestE2ELoginTokenRefreshes(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 2*time.Second)
	r := runLogin(t, e, appScopes)
	require.Equal(t, exitOK, r.code, r.String())
	// --app is looked up with the profile's own token (the scoped one may not call the Apps API): log the CLI in too.
	r = runCaller(t, e.env(), "--mode", "local", "--profile", "emulator", "--app", "api-app", "whoami")
	require.Equal(t, exitOK, r.code, r.String())
	time.Sleep(2100 * time.Millisecond)
	before := e.ws.RequestCount(workspace.PathAuthorize)
	r = runCaller(t, e.env(), "--mode", "local", "--profile", "emulator", "--scopes", appScopes, "--app", "api-app", "whoami")
	require.Equal(t, exitOK, r.code, r.String())
	assert.Contains(t, r.stdout, "The app saw you as 1001@")
	assert.Equal(t, before, e.ws.RequestCount(workspace.PathAuthorize), "refreshed, not logged in again")
}

func TestE2EDoctor(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	closedPort := testkit.FreePort(t)

	r := runCaller(t, e.env(), "--mode", "local", "--profile", "emulator", "--app", "api-app", "doctor")
	assert.Equal(t, exitOK, r.code, r.String())
	for _, line := range []string{"PASS  config", "PASS  token", "PASS  expiry", "PASS  app", "WARN  scopes", "PASS  dns", "PASS  tcp", "PASS  health", "PASS  whoami  the app saw you as 1001@"} {
		assert.Contains(t, r.stdout, line)
	}

	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		line string
	}{
		{"no CAN_USE", e.spEnv("no-access-service"), []string{"--mode", "external", "--app", "api-app"}, exitPermission, "FAIL  health  403 Forbidden"},
		{"unknown app", e.spEnv("external-service"), []string{"--mode", "external", "--app", "ghost"}, exitNotFound, "FAIL  app"},
		{"nothing listening", e.spEnv("external-service"), []string{"--mode", "external", "--url", fmt.Sprintf("http://127.0.0.1:%d", closedPort)}, exitNetwork, "FAIL  tcp"},
		{"bad secret", e.env("DATABRICKS_HOST", e.state.WorkspaceHost, "DATABRICKS_CLIENT_ID", "x", "DATABRICKS_CLIENT_SECRET", "y"),
			[]string{"--mode", "external", "--app", "api-app"}, exitAuth, "FAIL  token"},
		{"missing config", e.env(), []string{"--mode", "external", "--app", "api-app"}, exitUsage, "FAIL  config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCaller(t, tt.env, append(tt.args, "doctor")...)
			assert.Equal(t, tt.code, r.code, r.String())
			assert.Contains(t, r.stdout, tt.line)
			if tt.code != exitUsage {
				assert.Contains(t, r.stdout, "fix:")
			}
		})
	}
	r = runCaller(t, e.spEnv("no-access-service"), "--mode", "external", "--app", "api-app", "doctor", "--json")
	var report struct {
		OK     bool    `json:"ok"`
		Checks []check `json:"checks"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &report), r.stdout)
	assert.False(t, report.OK)
}
