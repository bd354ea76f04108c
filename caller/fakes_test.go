package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/caller/appclient"
)

// The fakes here stand in for a workspace and an app behind its proxy, for the unit tests of behaviour the
// emulator does not make easy to provoke (retries, resets, odd statuses). The end-to-end tests use the emulator.

const (
	fakeClientID = "3f8a1c0e-7d2b-4e6f-9a1b-2c3d4e5f6a7b" // Databricks client ids are UUIDs
	fakeSecret   = "fake-secret-must-never-print"
)

// fakeWorkspace issues M2M tokens (unsigned JWTs) and answers the Apps API.
type fakeWorkspace struct {
	*httptest.Server
	mu      sync.Mutex
	issued  []string
	revoked map[string]bool
	apps    map[string]appclient.AppInfo
	// onAppLookup, when set, runs at the start of each GET /api/2.0/apps/{name} (to count or slow lookups).
	onAppLookup func()
}

func newFakeWorkspace(t *testing.T) *fakeWorkspace {
	t.Helper()
	ws := &fakeWorkspace{revoked: map[string]bool{}, apps: map[string]appclient.AppInfo{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/databricks-config", func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.Write(w, 200, map[string]string{"oidc_endpoint": ws.URL + "/oidc", "workspace_id": "1234567890123456", "host_type": "workspace", "cloud": "AWS"})
	})
	mux.HandleFunc("GET /oidc/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.Write(w, 200, map[string]string{"issuer": ws.URL + "/oidc", "authorization_endpoint": ws.URL + "/oidc/v1/authorize", "token_endpoint": ws.URL + "/oidc/v1/token"})
	})
	mux.HandleFunc("POST /oidc/v1/token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != fakeClientID || secret != fakeSecret {
			jsonhttp.Write(w, 401, map[string]string{"error": "invalid_client"})
			return
		}
		tok := ws.issue(id, "all-apis", time.Hour)
		jsonhttp.Write(w, 200, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	})
	mux.HandleFunc("GET /api/2.0/apps/{name}", func(w http.ResponseWriter, r *http.Request) {
		ws.mu.Lock()
		hook := ws.onAppLookup
		ws.mu.Unlock()
		if hook != nil {
			hook()
		}
		if !ws.valid(r) {
			jsonhttp.WriteError(w, &jsonhttp.Error{Status: 401, Code: jsonhttp.CodeUnauthenticated, Message: "bad token"})
			return
		}
		ws.mu.Lock()
		app, ok := ws.apps[r.PathValue("name")]
		ws.mu.Unlock()
		if !ok {
			jsonhttp.WriteError(w, &jsonhttp.Error{Status: 404, Code: jsonhttp.CodeNotFound, Message: "App " + r.PathValue("name") + " does not exist."})
			return
		}
		jsonhttp.Write(w, 200, app)
	})
	mux.HandleFunc("GET /api/2.0/preview/scim/v2/Me", func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.Write(w, 200, map[string]any{"id": "2001", "userName": fakeClientID, "applicationId": fakeClientID})
	})
	ws.Server = httptest.NewServer(mux)
	t.Cleanup(ws.Close)
	return ws
}

func (ws *fakeWorkspace) issue(sub, scope string, life time.Duration) string {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	tok := fakeJWT(sub, scope, time.Now().Add(life), len(ws.issued))
	ws.issued = append(ws.issued, tok)
	return tok
}

// revokeAll makes every token issued so far invalid, as if they had been revoked.
func (ws *fakeWorkspace) revokeAll() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, t := range ws.issued {
		ws.revoked[t] = true
	}
}

func (ws *fakeWorkspace) tokens() []string {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return append([]string(nil), ws.issued...)
}

func (ws *fakeWorkspace) valid(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, t := range ws.issued {
		if ok && t == tok && !ws.revoked[t] {
			return true
		}
	}
	return false
}

func fakeJWT(sub, scope string, exp time.Time, n int) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	return enc(map[string]string{"alg": "none"}) + "." +
		enc(map[string]any{"sub": sub, "scope": scope, "exp": exp.Unix(), "iat": time.Now().Unix(), "jti": n}) + ".sig"
}

// fakeApp is an app behind a fake proxy: it checks the bearer with the workspace and answers per path.
type fakeApp struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int
}

func newFakeApp(t *testing.T, ws *fakeWorkspace) *fakeApp {
	t.Helper()
	a := &fakeApp{calls: map[string]int{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.calls[r.URL.Path]++
		n := a.calls[r.URL.Path]
		a.mu.Unlock()
		if r.URL.Path == "/api/redirect" || r.Header.Get("Authorization") == "" {
			http.Redirect(w, r, ws.URL+"/login.html?next=x", http.StatusFound)
			return
		}
		if !ws.valid(r) {
			jsonhttp.WriteError(w, &jsonhttp.Error{Status: 401, Code: jsonhttp.CodeUnauthenticated, Message: "invalid or expired token"})
			return
		}
		switch r.URL.Path {
		case "/api/health":
			jsonhttp.Write(w, 200, map[string]string{"status": "ok"})
		case "/api/whoami":
			jsonhttp.Write(w, 200, identity.WhoAmI{Identity: identity.Identity{User: "2001@1234567890123456", UserFormat: identity.FormatWorkspaceID,
				PrincipalID: "2001", WorkspaceID: "1234567890123456", Kind: identity.KindServicePrincipal, PreferredUsername: fakeClientID}})
		case "/api/echo":
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(buf.Bytes())
		case "/api/forbidden":
			jsonhttp.WriteError(w, &jsonhttp.Error{Status: 403, Code: jsonhttp.CodePermissionDenied, Message: "no CAN_USE on api-app"})
		case "/api/scopes":
			jsonhttp.WriteError(w, &jsonhttp.Error{Status: 403, Code: jsonhttp.CodePermissionDenied, Message: "the token lacks the scopes sql file.files"})
		case "/api/flaky": // 503 twice, then fine
			if n <= 2 {
				w.Header().Set("Retry-After", "0")
				jsonhttp.WriteError(w, &jsonhttp.Error{Status: 503, Code: jsonhttp.CodeUnavailable, Message: "starting"})
				return
			}
			jsonhttp.Write(w, 200, map[string]int{"attempt": n})
		case "/api/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		case "/api/always401":
			jsonhttp.WriteError(w, &jsonhttp.Error{Status: 401, Code: jsonhttp.CodeUnauthenticated, Message: "token rejected"})
		case "/api/down":
			jsonhttp.WriteError(w, &jsonhttp.Error{Status: 502, Code: jsonhttp.CodeBadGateway, Message: "app not listening"})
		case "/api/boom":
			jsonhttp.WriteError(w, &jsonhttp.Error{Status: 500, Code: jsonhttp.CodeInternal, Message: "boom"})
		case "/api/huge": // 1 GiB, streamed: generated as it is sent, never held
			streamLarge(w, 1<<30)
		case "/api/huge-length": // the same with its Content-Length
			w.Header().Set("Content-Length", strconv.Itoa(1<<30))
			streamLarge(w, 1<<30)
		case "/api/reset": // drop the connection the first time
			if n == 1 {
				hj, _ := w.(http.Hijacker)
				conn, _, _ := hj.Hijack()
				conn.Close()
				return
			}
			jsonhttp.Write(w, 200, map[string]int{"attempt": n})
		default:
			jsonhttp.WriteError(w, &jsonhttp.Error{Status: 404, Code: jsonhttp.CodeEndpointNotFound, Message: "no route " + r.URL.Path})
		}
	}))
	t.Cleanup(a.Close)
	return a
}

// largeChunk is what streamLarge repeats: '<', which a JSON encoder escaping HTML writes as six bytes.
var largeChunk = bytes.Repeat([]byte{'<'}, 64<<10)

// streamLarge writes n bytes of '<' as a plain-text answer, stopping when the client stops reading.
func streamLarge(w http.ResponseWriter, n int64) {
	w.Header().Set("Content-Type", "text/plain")
	for sent := int64(0); sent < n; sent += int64(len(largeChunk)) {
		if _, err := w.Write(largeChunk); err != nil {
			return
		}
	}
}

func (a *fakeApp) count(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[path]
}

func externalEnv(ws *fakeWorkspace) map[string]string {
	return map[string]string{"DATABRICKS_HOST": ws.URL, "DATABRICKS_CLIENT_ID": fakeClientID, "DATABRICKS_CLIENT_SECRET": fakeSecret}
}
