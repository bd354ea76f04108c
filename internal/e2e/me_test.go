package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/browser"
	"github.com/databricks-sample/go-apps-api/emulator/sqlengine/duckdb"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// The app's /api/me asks the workspace's SQL warehouse who it runs as twice, as the user (with the token the proxy
// forwards) and as the app's own service principal. These tests run it behind the emulated workspace, which plays the workspace's bad days with
// its fault hooks: an error for the user's token only, a slow answer, the workspace down and back.

const user = "dev@example.com"

// meApp starts the workspace and the app behind api-app's proxy with the platform's environment changed by edit,
// and returns a browser signed in to the app as the model's user.
func meApp(t *testing.T, edit func(env map[string]string)) (*workspace.Workspace, *testkit.App, *http.Client) {
	t.Helper()
	ws, _ := emulated.Start(t, workspace.Options{SQLEngine: duckdb.Open})
	env := emulated.APIAppEnv(t, ws)
	env["APP_WORKSPACE_TIMEOUT"] = "2s"
	if edit != nil {
		edit(env)
	}
	app := testkit.StartApp(t, testkit.BuildRace(t, "app"), env)
	require.NoError(t, ws.SetUpstream("api-app", app.URL))
	client, _ := browserClient(t)
	resp, err := browser.SignIn(t.Context(), client, ws.AppURL("api-app")+"/", user)
	require.NoError(t, err)
	resp.Body.Close()
	return ws, app, client
}

// getMe is GET /api/me through the proxy, its status and JSON answer.
func getMe(t *testing.T, ws *workspace.Workspace, browser *http.Client) (int, map[string]any) {
	t.Helper()
	resp, body := getBody(t, browser, ws.AppURL("api-app")+"/api/me")
	var answer map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &answer), body)
	return resp.StatusCode, answer
}

func TestMeSideBySide(t *testing.T) {
	ws, _, browser := meApp(t, nil)
	status, body := getMe(t, ws, browser)
	require.Equal(t, http.StatusOK, status, "%v", body)
	onBehalf := body["on_behalf_of_user"].(map[string]any)
	assert.Equal(t, user, onBehalf["user_name"])
	sp := ws.State().ServicePrincipals["api-app"]
	assert.Equal(t, sp.ClientID, body["app_service_principal"].(map[string]any)["user_name"])
}

// Host metadata, OIDC discovery and the service principal's token are fetched once; after that every /api/me costs
// exactly one statement per identity, and nothing else.
func TestMeMakesOneWorkspaceCallPerIdentity(t *testing.T) {
	ws, _, browser := meApp(t, nil)
	status, _ := getMe(t, ws, browser)
	require.Equal(t, http.StatusOK, status)
	total := func() (n int64) {
		for _, c := range ws.RequestCounts() {
			n += c
		}
		return n
	}

	before, meBefore := total(), ws.RequestCount(workspace.PathStatements)
	const n = 20
	for range n {
		status, _ := getMe(t, ws, browser)
		require.Equal(t, http.StatusOK, status)
	}
	assert.Equal(t, int64(2*n), ws.RequestCount(workspace.PathStatements)-meBefore, "a statement, once per identity")
	assert.Equal(t, int64(2*n), total()-before, "workspace calls for %d /api/me: %v", n, ws.RequestCounts())
	assert.Equal(t, int64(1), ws.RequestCount(workspace.PathHostMetadata))
	assert.Equal(t, int64(1), ws.RequestCount(workspace.PathToken), "the app's M2M token, once")
}

// The workspace's 401 and 403 for the user's token are the caller's to fix, so they pass through; its 500 is the
// app's problem with the workspace, a 502.
func TestMeWorkspaceErrors(t *testing.T) {
	tests := []struct {
		name      string
		workspace int
		status    int
		code      string
	}{
		{"workspace 401 passes through", 401, 401, "UNAUTHENTICATED"},
		{"workspace 403 passes through", 403, 403, "PERMISSION_DENIED"},
		{"workspace 500 is a bad gateway", 500, 502, "BAD_GATEWAY"},
	}
	ws, _, browser := meApp(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fault, err := ws.InjectFault(workspace.Fault{Path: workspace.PathStatements, Principal: user, Status: tt.workspace})
			require.NoError(t, err)
			defer fault.Clear()
			status, body := getMe(t, ws, browser)
			assert.Equal(t, tt.status, status, "%v", body)
			assert.Equal(t, tt.code, body["error_code"])
			assert.Contains(t, body["message"], "on behalf of the user")
			assert.Equal(t, 1, fault.Hits(), "the user's statement only: the app's own passed")
		})
	}
}

// When the app's own service principal fails, the caller is not at fault: 502, never the workspace's 401, which
// would send the caller off to refresh its own token.
func TestMeAppCredentialsRefused(t *testing.T) {
	ws, _, browser := meApp(t, func(env map[string]string) { env["DATABRICKS_CLIENT_SECRET"] = "wrong-secret" })
	status, body := getMe(t, ws, browser)
	assert.Equal(t, http.StatusBadGateway, status, "%v", body)
	assert.Equal(t, "BAD_GATEWAY", body["error_code"])
	assert.Contains(t, body["message"], "as the app's service principal")
	assert.Contains(t, body["fix"], "the app's own credentials")
}

// The workspace goes down and comes back: /api/me says it could not reach the workspace, then works again, with the
// app's cached host metadata and token.
func TestMeWorkspaceDownAndBack(t *testing.T) {
	ws, _, browser := meApp(t, func(env map[string]string) { env["APP_WORKSPACE_TIMEOUT"] = "1s" })
	status, _ := getMe(t, ws, browser)
	require.Equal(t, http.StatusOK, status)

	require.NoError(t, ws.Down())
	status, body := getMe(t, ws, browser)
	assert.Equal(t, http.StatusBadGateway, status, "%v", body)
	assert.Equal(t, "BAD_GATEWAY", body["error_code"])
	assert.Contains(t, body["message"], "could not reach the workspace")

	require.NoError(t, ws.Up())
	status, body = getMe(t, ws, browser)
	assert.Equal(t, http.StatusOK, status, "%v", body)
}

func TestMeWithoutServicePrincipal(t *testing.T) {
	ws, _, browser := meApp(t, func(env map[string]string) { delete(env, "DATABRICKS_CLIENT_SECRET") })
	status, body := getMe(t, ws, browser)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, user, body["on_behalf_of_user"].(map[string]any)["user_name"])
	assert.Nil(t, body["app_service_principal"])
	assert.Contains(t, body["app_service_principal_note"], "DATABRICKS_CLIENT_SECRET")
}

// Tokens and secrets never reach the app's logs, whatever the workspace answers.
func TestMeLogsNoSecrets(t *testing.T) {
	ws, app, browser := meApp(t, nil)
	getMe(t, ws, browser)
	fault, err := ws.InjectFault(workspace.Fault{Path: workspace.PathStatements, Principal: user, Status: 401})
	require.NoError(t, err)
	getMe(t, ws, browser)
	fault.Clear()
	require.NoError(t, ws.RevokeTokens(user))
	resp, _ := getBody(t, browser, ws.AppURL("api-app")+"/api/me")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the user's session and tokens are revoked")
	require.NoError(t, app.Stop(t))

	logs := app.Stdout.String() + app.Stderr.String()
	require.Contains(t, logs, `"msg":"request"`)
	testkit.AssertNoSecrets(t, logs, ws.State().ServicePrincipals["api-app"].ClientSecret)
}

// SIGTERM stops new connections but lets a request in flight finish: here one waiting on a workspace that holds it
// until the app has stopped accepting connections, however long that takes.
func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	ws, app, browser := meApp(t, nil)
	status, _ := getMe(t, ws, browser) // warm: the request below waits on its statement, nothing else
	require.Equal(t, http.StatusOK, status)
	slow, err := ws.InjectFault(workspace.Fault{Path: workspace.PathStatements, Stall: true})
	require.NoError(t, err)

	done := make(chan int, 1)
	go func() {
		resp, err := browser.Get(ws.AppURL("api-app") + "/api/me")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	require.Eventually(t, func() bool { return slow.Hits() > 0 }, testkit.Patience, 5*time.Millisecond,
		"the request never reached the workspace")

	stopped := make(chan error, 1)
	go func() { stopped <- app.Stop(t) }()
	require.Eventually(t, func() bool {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(app.URL, "http://"), 100*time.Millisecond)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	}, testkit.Patience, 20*time.Millisecond, "the app still accepts connections while shutting down")
	slow.Clear() // the workspace answers the request in flight now

	assert.Equal(t, http.StatusOK, <-done)
	assert.NoError(t, <-stopped)
	assert.Contains(t, app.Stdout.String(), `"msg":"stopped"`)
}
