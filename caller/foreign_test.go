package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/databricks/databricks-sdk-go/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// startForeignApp puts an app nobody here wrote behind api-app's proxy: its own JSON shape (a FastAPI app's, say),
// and FastAPI's 404 body.
func startForeignApp(t *testing.T, e *emulator) {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/api/whoami" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"detail":"Not Found"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"user": r.Header.Get(identity.HeaderUser),
			"email": r.Header.Get(identity.HeaderEmail), "access_token_present": r.Header.Get(identity.HeaderAccessToken) != ""})
	}))
	t.Cleanup(app.Close)
	require.NoError(t, e.ws.SetUpstream("api-app", app.URL))
}

// Any app, not just this project's: whoami prints what it answered, unchanged, --json carries its JSON as it was,
// and its own error body is shown.
func TestE2EAnotherAppsShapeIsShownAsItCame(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	startForeignApp(t, e)
	ws := e.state.WorkspaceID
	modes := []struct {
		name string
		env  map[string]string
		args []string
		user string
	}{
		{"local", e.env(), []string{"--mode", "local", "--profile", "emulator"}, "1001@" + ws},
		{"external", e.spEnv("external-service"), []string{"--mode", "external"}, "2001@" + ws},
		{"auto", e.spEnv("external-service"), nil, "2001@" + ws},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			args := append(append([]string{}, m.args...), "--app", "api-app")
			r := runCaller(t, m.env, append(args, "whoami")...)
			require.Equal(t, exitOK, r.code, r.String())
			var got map[string]any
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), "the app's JSON, indented: %s", r.stdout)
			assert.Equal(t, m.user, got["user"])
			assert.Len(t, got, 3, "the app's three fields and nothing else")
			assert.NotContains(t, r.stdout, "The app saw you as")
			assert.NotContains(t, r.stdout+r.stderr, "No token was forwarded")

			r = runCaller(t, m.env, append(args, "whoami", "--json")...)
			require.Equal(t, exitOK, r.code, r.String())
			var out struct {
				Status int                        `json:"status"`
				Body   map[string]json.RawMessage `json:"body"`
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
			assert.Equal(t, http.StatusOK, out.Status)
			assert.ElementsMatch(t, []string{"user", "email", "access_token_present"}, keys(out.Body))
			assert.NotContains(t, r.stdout, `"kind"`)
			assert.NotContains(t, r.stdout, `"access_token_forwarded"`)

			r = runCaller(t, m.env, append(args, "call", "/api/nope")...)
			assert.Equal(t, exitNotFound, r.code, r.String())
			assert.Contains(t, r.stderr, `the app answered: {"detail":"Not Found"}`)
			r = runCaller(t, m.env, append(args, "--json", "call", "/api/nope")...)
			assert.Equal(t, exitNotFound, r.code, r.String())
			var f struct {
				Body json.RawMessage `json:"response_body"`
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &f), r.stdout)
			assert.JSONEq(t, `{"detail":"Not Found"}`, string(f.Body))
		})
	}
	t.Run("doctor", func(t *testing.T) {
		r := runCaller(t, e.spEnv("external-service"), "--mode", "external", "--app", "api-app", "doctor")
		assert.Equal(t, exitNotFound, r.code, r.String())
		assert.Contains(t, r.stdout, "FAIL  health  404 Not Found")
	})
}

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// The Databricks CLI asks for custom scopes since v0.287.0; the emulator's stand-in does too. After
// `databricks auth login --profile P --scopes …`, local mode's plain profile token carries the app's scopes.
func TestE2ECLILoginWithScopes(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	login := exec.Command(e.state.CLIPath, "auth", "login", "--profile", "emulator", "--scopes", appScopes)
	login.Env = []string{"HOME=" + e.home, "DATABRICKS_CONFIG_FILE=" + e.state.ConfigFile}
	out, err := login.CombinedOutput()
	require.NoError(t, err, "%s", out)
	cfg, err := config.LoadFile(e.state.ConfigFile)
	require.NoError(t, err)
	assert.Equal(t, appScopes, cfg.Section("emulator").Key("scopes").String())

	// --url: a token holding only the app's scopes may not call the Apps API (that takes apps or all-apis).
	appURL := e.state.Apps["api-app"].URL
	who := whoAmIJSON(t, runCaller(t, e.env(), "--mode", "local", "--profile", "emulator", "--url", appURL, "whoami", "--json"))
	require.NotNil(t, who.AccessTokenClaims)
	assert.ElementsMatch(t, strings.Split(appScopes, ","), who.AccessTokenClaims.Scopes)
	r := runCaller(t, e.env(), "--mode", "local", "--profile", "emulator", "--app", "api-app", "whoami")
	assert.Equal(t, exitPermission, r.code, r.String())
	assert.Contains(t, r.stderr, "Provided OAuth token does not have required scopes: apps")
}
