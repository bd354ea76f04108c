package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	userToken    = "user-access-token-7d1f0c9e"
	spClientID   = "4c2b1a09-app-sp"
	spSecret     = "app-client-secret-5e8a2f"
	spToken      = "sp-access-token-0b3c6d"
	workspaceID  = "1234567890123456"
	userScimJSON = `{"id":"1001","userName":"dev@example.com","displayName":"Dev Eloper","emails":[{"value":"dev@example.com","primary":true}]}`
	spScimJSON   = `{"id":"2004","userName":"4c2b1a09-app-sp","displayName":"api-app"}`
)

// fakeWorkspace answers the few workspace endpoints the app's SDK clients call, and counts them.
type fakeWorkspace struct {
	*httptest.Server
	mu        sync.Mutex
	calls     map[string]int
	meStatus  int           // when set, SCIM Me answers the user's token with this status
	meDelay   time.Duration // when set, SCIM Me waits this long
	meStarted chan struct{} // when set, receives once per SCIM Me request
}

func newFakeWorkspace(t *testing.T) *fakeWorkspace {
	t.Helper()
	ws := &fakeWorkspace{calls: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/databricks-config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"oidc_endpoint": ws.URL + "/oidc", "workspace_id": workspaceID,
			"cloud": "AWS", "host_type": "workspace"})
	})
	mux.HandleFunc("GET /oidc/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"issuer": ws.URL + "/oidc",
			"authorization_endpoint": ws.URL + "/oidc/v1/authorize", "token_endpoint": ws.URL + "/oidc/v1/token"})
	})
	mux.HandleFunc("POST /oidc/v1/token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok {
			_ = r.ParseForm()
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if id != spClientID || secret != spSecret {
			writeJSON(w, 401, map[string]string{"error": "invalid_client"})
			return
		}
		writeJSON(w, 200, map[string]any{"access_token": spToken, "token_type": "Bearer", "expires_in": 3600})
	})
	mux.HandleFunc("GET /api/2.0/preview/scim/v2/Me", func(w http.ResponseWriter, r *http.Request) {
		ws.mu.Lock()
		status, delay, started := ws.meStatus, ws.meDelay, ws.meStarted
		ws.mu.Unlock()
		if started != nil {
			started <- struct{}{}
		}
		time.Sleep(delay)
		switch r.Header.Get("Authorization") {
		case "Bearer " + userToken:
			if status != 0 {
				writeJSON(w, status, map[string]string{"error_code": "PERMISSION_DENIED", "message": "the workspace says no"})
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(userScimJSON))
		case "Bearer " + spToken:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(spScimJSON))
		default:
			writeJSON(w, 401, map[string]string{"error_code": "UNAUTHENTICATED", "message": "invalid token"})
		}
	})
	// Set ws.Server before the server starts: its handlers read ws.URL.
	ws.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws.mu.Lock()
		ws.calls[r.Method+" "+r.URL.Path]++
		ws.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	ws.Start()
	t.Cleanup(ws.Close)
	return ws
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (ws *fakeWorkspace) count(key string) int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.calls[key]
}

func (ws *fakeWorkspace) total() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	n := 0
	for _, c := range ws.calls {
		n += c
	}
	return n
}

func (ws *fakeWorkspace) set(f func(*fakeWorkspace)) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	f(ws)
}

// platformEnv is the environment Databricks Apps gives the app, pointing at host.
func platformEnv(host string) map[string]string {
	return map[string]string{
		"DATABRICKS_APP_NAME":      "api-app",
		"DATABRICKS_HOST":          host,
		"DATABRICKS_WORKSPACE_ID":  workspaceID,
		"DATABRICKS_CLIENT_ID":     spClientID,
		"DATABRICKS_CLIENT_SECRET": spSecret,
		"APP_WORKSPACE_TIMEOUT":    "2s",
	}
}

func TestMeSideBySide(t *testing.T) {
	ws := newFakeWorkspace(t)
	app := startApp(t, platformEnv(ws.URL))

	status, body := call(t, "GET", app.URL+"/api/me", asUser(userToken), "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, map[string]any{"id": "1001", "user_name": "dev@example.com", "display_name": "Dev Eloper",
		"emails": []any{"dev@example.com"}}, body["on_behalf_of_user"])
	assert.Equal(t, map[string]any{"id": "2004", "user_name": spClientID, "display_name": "api-app"},
		body["app_service_principal"])
}

// Host metadata, OIDC discovery and the service principal's token are fetched once; after that every /api/me costs
// exactly one SCIM Me per identity.
func TestMeMakesOneWorkspaceCallPerIdentity(t *testing.T) {
	ws := newFakeWorkspace(t)
	app := startApp(t, platformEnv(ws.URL))
	status, _ := call(t, "GET", app.URL+"/api/me", asUser(userToken), "")
	require.Equal(t, http.StatusOK, status)

	before := ws.total()
	const n = 20
	for range n {
		status, _ := call(t, "GET", app.URL+"/api/me", asUser(userToken), "")
		require.Equal(t, http.StatusOK, status)
	}
	assert.Equal(t, 2*n, ws.total()-before, "workspace calls for %d /api/me requests: %v", n, ws.calls)
	assert.Equal(t, 1, ws.count("GET /.well-known/databricks-config"))
	assert.Equal(t, 1, ws.count("POST /oidc/v1/token"))
}

func TestMeWorkspaceErrors(t *testing.T) {
	tests := []struct {
		name     string
		meStatus int
		status   int
		code     string
	}{
		{"workspace 401 passes through", 401, 401, "UNAUTHENTICATED"},
		{"workspace 403 passes through", 403, 403, "PERMISSION_DENIED"},
		{"workspace 500 is a bad gateway", 500, 502, "BAD_GATEWAY"},
	}
	ws := newFakeWorkspace(t)
	app := startApp(t, platformEnv(ws.URL))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws.set(func(ws *fakeWorkspace) { ws.meStatus = tt.meStatus })
			status, body := call(t, "GET", app.URL+"/api/me", asUser(userToken), "")
			assert.Equal(t, tt.status, status, "%v", body)
			assert.Equal(t, tt.code, body["error_code"])
			assert.Contains(t, body["message"], "on behalf of the user")
		})
	}
}

// When the app's own service principal fails, the caller is not at fault: 502, never the workspace's 401, which
// would send the caller off to refresh its own token.
func TestMeAppCredentialsRefused(t *testing.T) {
	ws := newFakeWorkspace(t)
	env := platformEnv(ws.URL)
	env["DATABRICKS_CLIENT_SECRET"] = "wrong-secret"
	app := startApp(t, env)
	status, body := call(t, "GET", app.URL+"/api/me", asUser(userToken), "")
	assert.Equal(t, http.StatusBadGateway, status, "%v", body)
	assert.Equal(t, "BAD_GATEWAY", body["error_code"])
	assert.Contains(t, body["message"], "as the app's service principal")
	assert.Contains(t, body["fix"], "the app's own credentials")
}

func TestMeWorkspaceDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	env := platformEnv(down)
	env["APP_WORKSPACE_TIMEOUT"] = "1s"
	app := startApp(t, env)
	status, body := call(t, "GET", app.URL+"/api/me", asUser(userToken), "")
	assert.Equal(t, http.StatusBadGateway, status, "%v", body)
	assert.Equal(t, "BAD_GATEWAY", body["error_code"])
	assert.Contains(t, body["message"], "could not reach the workspace")
}

func TestMeWithoutServicePrincipal(t *testing.T) {
	ws := newFakeWorkspace(t)
	env := platformEnv(ws.URL)
	delete(env, "DATABRICKS_CLIENT_SECRET")
	app := startApp(t, env)
	status, body := call(t, "GET", app.URL+"/api/me", asUser(userToken), "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "1001", body["on_behalf_of_user"].(map[string]any)["id"])
	assert.Nil(t, body["app_service_principal"])
	assert.Contains(t, body["app_service_principal_note"], "DATABRICKS_CLIENT_SECRET")
}

// Tokens and secrets never reach the logs, whatever happens: success, workspace refusals, bad input.
func TestNoSecretsInLogs(t *testing.T) {
	ws := newFakeWorkspace(t)
	app := startApp(t, platformEnv(ws.URL))
	token := fakeJWT(`{"sub":"1001","scope":"sql"}`)
	call(t, "GET", app.URL+"/api/me", asUser(userToken), "")
	call(t, "GET", app.URL+"/api/whoami", asUser(token), "")
	call(t, "POST", app.URL+"/api/echo", with(asUser(token), "Content-Type", "application/json"), `{"a":1}`)
	call(t, "GET", app.URL+"/api/whoami", with(asUser(token), "X-Forwarded-User", "x"), "")
	ws.set(func(ws *fakeWorkspace) { ws.meStatus = 401 })
	call(t, "GET", app.URL+"/api/me", asUser(userToken), "")
	call(t, "GET", app.URL+"/api/me", asUser("wrong-"+userToken), "")
	require.NoError(t, app.Stop(t))

	logs := app.Stdout.String() + app.Stderr.String()
	require.Contains(t, logs, `"msg":"request"`)
	for _, secret := range []string{userToken, token, spSecret, spToken, strings.Split(token, ".")[1]} {
		assert.NotContains(t, logs, secret)
	}
}

// SIGTERM (here: the context run was given) stops new connections but lets a request in flight finish.
func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	ws := newFakeWorkspace(t)
	started := make(chan struct{}, 2)
	ws.set(func(ws *fakeWorkspace) { ws.meDelay, ws.meStarted = 700*time.Millisecond, started })
	app := startApp(t, platformEnv(ws.URL))

	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, app.URL+"/api/me", nil)
		req.Header = asUser(userToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	<-started // the request is inside the app, waiting on the workspace

	stopped := make(chan error, 1)
	go func() { stopped <- app.Stop(t) }()
	require.Eventually(t, func() bool {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(app.URL, "http://"), 100*time.Millisecond)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	}, 5*time.Second, 20*time.Millisecond, "the app still accepts connections while shutting down")

	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, http.StatusOK, r.status)
	assert.NoError(t, <-stopped)
	assert.Contains(t, app.Stdout.String(), `"msg":"stopped"`)
}
