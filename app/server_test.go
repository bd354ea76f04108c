package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// asUser is what the proxy forwards for a user of an app with user authorization.
func asUser(token string) http.Header {
	h := http.Header{}
	h.Set(identity.HeaderUser, "1001@1234567890123456")
	h.Set(identity.HeaderEmail, "dev@example.com")
	h.Set(identity.HeaderPreferredUsername, "dev@example.com")
	h.Set(identity.HeaderHost, "api-app-1234567890123456.aws.databricksapps.com")
	h.Set(identity.HeaderRealIP, "203.0.113.7")
	h.Set(identity.HeaderRequestID, "5b0f3f2e-8a53-4c1e-9d0e-6a1c2b3d4e5f")
	if token != "" {
		h.Set(identity.HeaderAccessToken, token)
	}
	return h
}

// asServicePrincipal is what the proxy forwards for a service principal (M2M or another app).
func asServicePrincipal() http.Header {
	h := http.Header{}
	h.Set(identity.HeaderUser, "2001@1234567890123456")
	h.Set(identity.HeaderPreferredUsername, "3f8a1c0e-7d2b-4e6f-9a1b-2c3d4e5f6a7b")
	h.Set(identity.HeaderRequestID, "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")
	return h
}

// fakeJWT is an unsigned JWT with the given claims: the app reads claims, it does not verify tokens (the proxy did).
func fakeJWT(claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString([]byte(claims)) + ".c2lnbmF0dXJl"
}

func with(h http.Header, kv ...string) http.Header {
	h = h.Clone()
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestStatusMatrix(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	jsonBody := http.Header{"Content-Type": {"application/json"}}
	user := asUser("")
	tests := []struct {
		name   string
		method string
		path   string
		header http.Header
		body   string
		status int
		code   string
	}{
		{"health needs no identity", "GET", "/api/health", nil, "", 200, ""},
		{"openapi needs no identity", "GET", "/api/openapi.json", nil, "", 200, ""},
		{"whoami without the proxy", "GET", "/api/whoami", nil, "", 401, "UNAUTHENTICATED"},
		{"whoami with an email but no user", "GET", "/api/whoami", http.Header{identity.HeaderEmail: {"a@b.c"}}, "", 401, "UNAUTHENTICATED"},
		{"whoami as a user", "GET", "/api/whoami", user, "", 200, ""},
		{"whoami as a service principal", "GET", "/api/whoami", asServicePrincipal(), "", 200, ""},
		{"whoami with a malformed user", "GET", "/api/whoami", http.Header{identity.HeaderUser: {"nobody"}}, "", 400, "INVALID_PARAMETER_VALUE"},
		{"whoami with a repeated user", "GET", "/api/whoami", with(user, identity.HeaderUser, "2@3"), "", 400, "INVALID_PARAMETER_VALUE"},
		{"whoami with a too long header", "GET", "/api/whoami", with(asServicePrincipal(), identity.HeaderEmail, strings.Repeat("e", identity.MaxHeaderValueLen+1)), "", 400, "INVALID_PARAMETER_VALUE"},
		{"echo", "POST", "/api/echo", with(user, "Content-Type", "application/json"), `{"hello":["world"]}`, 200, ""},
		{"echo with a charset", "POST", "/api/echo", with(user, "Content-Type", "application/json; charset=utf-8"), `"text"`, 200, ""},
		{"echo without the proxy", "POST", "/api/echo", jsonBody, `{}`, 401, "UNAUTHENTICATED"},
		{"echo malformed JSON", "POST", "/api/echo", with(user, "Content-Type", "application/json"), `{"a":`, 400, "INVALID_PARAMETER_VALUE"},
		{"echo two JSON values", "POST", "/api/echo", with(user, "Content-Type", "application/json"), `{} {}`, 400, "INVALID_PARAMETER_VALUE"},
		{"echo empty body", "POST", "/api/echo", with(user, "Content-Type", "application/json"), ``, 400, "INVALID_PARAMETER_VALUE"},
		{"echo wrong content type", "POST", "/api/echo", with(user, "Content-Type", "text/plain"), `{}`, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"echo no content type", "POST", "/api/echo", user, `{}`, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"echo over 1 MiB", "POST", "/api/echo", with(user, "Content-Type", "application/json"), `"` + strings.Repeat("x", maxEchoBody) + `"`, 413, "REQUEST_TOO_LARGE"},
		{"me without a forwarded token", "GET", "/api/me", user, "", 403, "PERMISSION_DENIED"},
		{"me as a service principal", "GET", "/api/me", asServicePrincipal(), "", 403, "PERMISSION_DENIED"},
		{"me with a token but no workspace", "GET", "/api/me", asUser("t"), "", 503, "TEMPORARILY_UNAVAILABLE"},
		{"unknown api path", "GET", "/api/nope", user, "", 404, "ENDPOINT_NOT_FOUND"},
		{"unknown path outside api", "GET", "/reports", nil, "", 404, "ENDPOINT_NOT_FOUND"},
		{"wrong method", "DELETE", "/api/whoami", user, "", 405, "METHOD_NOT_ALLOWED"},
		{"GET on echo", "GET", "/api/echo", user, "", 405, "METHOD_NOT_ALLOWED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, tt.method, app.URL+tt.path, tt.header, tt.body)
			assert.Equal(t, tt.status, status, "body: %v", body)
			if tt.code != "" {
				assert.Equal(t, tt.code, body["error_code"])
				assert.NotEmpty(t, body["message"])
			}
		})
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	app := startApp(t, map[string]string{"DATABRICKS_APP_NAME": "my-api"})
	_, body := call(t, "GET", app.URL+"/api/health", nil, "")
	assert.Equal(t, map[string]any{"status": "ok", "app": "my-api", "version": version}, body)
}

func TestUnauthenticatedExplainsTheProxy(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	_, body := call(t, "GET", app.URL+"/api/whoami", nil, "")
	assert.Contains(t, body["message"], "did not come through the Databricks Apps proxy")
	assert.Contains(t, body["fix"], "go run ./emulator run")
}

func TestWhoAmI(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	token := fakeJWT(`{"sub":"1001","iss":"https://example.cloud.databricks.com/oidc","client_id":"databricks-cli",` +
		`"scope":"sql file.files dashboards.genie","iat":1795000000,"exp":1795003600}`)

	t.Run("user with a forwarded token", func(t *testing.T) {
		status, body := call(t, "GET", app.URL+"/api/whoami", asUser(token), "")
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, "1001@1234567890123456", body["user"])
		assert.Equal(t, "id@workspace", body["user_format"])
		assert.Equal(t, "1001", body["principal_id"])
		assert.Equal(t, "1234567890123456", body["workspace_id"])
		assert.Equal(t, "user", body["kind"])
		assert.Equal(t, "dev@example.com", body["email"])
		assert.Equal(t, "203.0.113.7", body["real_ip"])
		assert.Equal(t, "5b0f3f2e-8a53-4c1e-9d0e-6a1c2b3d4e5f", body["request_id"])
		assert.Equal(t, true, body["access_token_forwarded"])
		assert.Equal(t, map[string]any{
			"subject": "1001", "issuer": "https://example.cloud.databricks.com/oidc", "client_id": "databricks-cli",
			"scopes":     []any{"sql", "file.files", "dashboards.genie"},
			"issued_at":  time.Unix(1795000000, 0).UTC().Format(time.RFC3339),
			"expires_at": time.Unix(1795003600, 0).UTC().Format(time.RFC3339),
		}, body["access_token_claims"])
		raw, _ := json.Marshal(body)
		assert.NotContains(t, string(raw), token)
	})
	t.Run("user with an opaque token", func(t *testing.T) {
		_, body := call(t, "GET", app.URL+"/api/whoami", asUser("opaque-token-value"), "")
		assert.Equal(t, true, body["access_token_forwarded"])
		assert.Nil(t, body["access_token_claims"])
		assert.Contains(t, body["access_token_note"], "not a JWT")
	})
	t.Run("user without user authorization", func(t *testing.T) {
		_, body := call(t, "GET", app.URL+"/api/whoami", asUser(""), "")
		assert.Equal(t, false, body["access_token_forwarded"])
		assert.Contains(t, body["access_token_note"], "user authorization is not enabled")
	})
	t.Run("service principal", func(t *testing.T) {
		_, body := call(t, "GET", app.URL+"/api/whoami", asServicePrincipal(), "")
		assert.Equal(t, "service_principal", body["kind"])
		assert.Nil(t, body["email"])
		assert.Contains(t, body["access_token_note"], "never for service principals")
	})
	t.Run("run-local forwards the email", func(t *testing.T) {
		_, body := call(t, "GET", app.URL+"/api/whoami", http.Header{identity.HeaderUser: {"dev@example.com"}}, "")
		assert.Equal(t, "email", body["user_format"])
		assert.Equal(t, "user", body["kind"])
	})
}

func TestEcho(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	status, body := call(t, "POST", app.URL+"/api/echo", with(asServicePrincipal(), "Content-Type", "application/json"), `{"n":1,"list":[true,null]}`)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, map[string]any{"n": 1.0, "list": []any{true, nil}}, body["received"])
	assert.Equal(t, "2001@1234567890123456", body["caller"].(map[string]any)["user"])
}

// rawStatus writes head (request line and headers, without the blank line) on a new connection and returns the
// status code of the answer. It reaches the server with bytes Go's client refuses to send.
func rawStatus(t *testing.T, baseURL, head string) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, head+"\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(patience)))
	status := make([]byte, 12)
	_, err = io.ReadFull(conn, status)
	require.NoError(t, err)
	return strings.TrimPrefix(string(status), "HTTP/1.1 ")
}

// A 10 MiB body is refused from its Content-Length, before the app reads it: the test never sends it.
func TestEchoRefusesLargeBodiesWithoutReadingThem(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	head := fmt.Sprintf("POST /api/echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-User: 1@2\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d", 10<<20)
	assert.Equal(t, "413", rawStatus(t, app.URL, head))
}

// Control characters and invalid UTF-8 in forwarded headers get 400, from Go's server or from the identity check.
func TestHostileHeaderBytes(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	for name, value := range map[string]string{
		"NUL":           "1@2\x00",
		"SOH":           "1@2\x01",
		"invalid UTF-8": "\xff\xfe@2",
		"DEL":           "1@2\x7f",
	} {
		t.Run(name, func(t *testing.T) {
			head := "GET /api/whoami HTTP/1.1\r\nHost: x\r\nX-Forwarded-User: " + value
			assert.Equal(t, "400", rawStatus(t, app.URL, head))
		})
	}
}

func TestMethodNotAllowedListsAllowedMethods(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	req, _ := http.NewRequest(http.MethodPut, app.URL+"/api/health", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Contains(t, resp.Header.Values("Allow"), "GET")
}

func TestServesH2C(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	client := &http.Client{Transport: &http.Transport{Protocols: h2cOnly()}}
	resp, err := client.Get(app.URL + "/api/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 2, resp.ProtoMajor)
}

func h2cOnly() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

func TestOversizedHeadersGet431(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	req, _ := http.NewRequest(http.MethodGet, app.URL+"/api/health", nil)
	req.Header.Set("X-Padding", strings.Repeat("p", 2*maxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
}

func TestPanicsBecome500WithoutInternals(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	handler := recoverPanics(slog.New(slog.NewJSONHandler(logs, nil)))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("database password is hunter2")
	}))
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/whoami", nil))
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.Contains(t, rec.Body.String(), `"error_code":"INTERNAL_ERROR"`)
	assert.NotContains(t, rec.Body.String(), "hunter2")
	assert.NotContains(t, logs.String(), "hunter2", "a panic value may hold request data: log its type only")
	assert.Contains(t, logs.String(), "goroutine")
}

// One line per request, with what matches it to the proxy's logs, and nothing of the forwarded token.
func TestRequestLogLine(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	h := NewServer(slog.New(slog.NewJSONHandler(logs, nil)), "api-app", newWorkspace(settings{}, nil))
	req := httptest.NewRequest(http.MethodGet, "/api/whoami", nil)
	req.Header = asUser(fakeJWT(`{"sub":"1001"}`))
	h.ServeHTTP(httptest.NewRecorder(), req)

	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(logs.String()), &line), "one JSON line: %s", logs)
	assert.Equal(t, "request", line["msg"])
	assert.Equal(t, "INFO", line["level"])
	assert.NotEmpty(t, line["time"])
	assert.Equal(t, "GET", line["method"])
	assert.Equal(t, "/api/whoami", line["path"])
	assert.Equal(t, float64(http.StatusOK), line["status"])
	assert.Positive(t, line["duration"])
	assert.Equal(t, "5b0f3f2e-8a53-4c1e-9d0e-6a1c2b3d4e5f", line["request_id"])
	assert.Equal(t, "1001@1234567890123456", line["caller"])
	assert.Len(t, line, 9, "no other field: %s", logs)
}

func TestListenAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"laptop default is loopback", nil, nil, "127.0.0.1:8000"},
		{"platform port on every interface", nil, map[string]string{"DATABRICKS_APP_PORT": "8000"}, "0.0.0.0:8000"},
		{"env override", nil, map[string]string{"DATABRICKS_APP_PORT": "8000", "APP_LISTEN_ADDR": "127.0.0.1:9"}, "127.0.0.1:9"},
		{"flag wins", []string{"--addr", "[::1]:7"}, map[string]string{"APP_LISTEN_ADDR": "127.0.0.1:9"}, "[::1]:7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := loadSettings(append([]string{"app"}, tt.args...), func(k string) string { return tt.env[k] }, io.Discard)
			require.NoError(t, err)
			assert.Equal(t, tt.want, s.addr)
		})
	}
}

func TestSettingsRejectBadInput(t *testing.T) {
	t.Parallel()
	_, err := loadSettings([]string{"app", "extra"}, func(string) string { return "" }, io.Discard)
	assert.ErrorContains(t, err, "unexpected arguments")
	_, err = loadSettings([]string{"app"}, func(k string) string {
		return map[string]string{"APP_WORKSPACE_TIMEOUT": "soon"}[k]
	}, io.Discard)
	assert.ErrorContains(t, err, "APP_WORKSPACE_TIMEOUT")
	err = run(t.Context(), []string{"app", "--addr", "256.0.0.1:1"}, func(string) string { return "" }, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "listen on 256.0.0.1:1")
}

// noWorkspace is the platform's environment with nothing listening at the workspace's address. The app's calls to
// the workspace are tested behind the emulated workspace, in internal/e2e (me_test.go).
var noWorkspace = map[string]string{"DATABRICKS_APP_NAME": "api-app", "DATABRICKS_HOST": "http://127.0.0.1:1",
	"DATABRICKS_CLIENT_ID": "4c2b1a09-app-sp", "DATABRICKS_CLIENT_SECRET": "app-client-secret-5e8a2f",
	"APP_WORKSPACE_TIMEOUT": "1s"}

// Tokens and secrets never reach the logs, whatever happens: success, a workspace out of reach, bad input.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	app := startApp(t, noWorkspace)
	token := fakeJWT(`{"sub":"1001","scope":"sql"}`)
	call(t, "GET", app.URL+"/api/me", asUser(token), "")
	call(t, "GET", app.URL+"/api/whoami", asUser(token), "")
	call(t, "POST", app.URL+"/api/echo", with(asUser(token), "Content-Type", "application/json"), `{"a":1}`)
	call(t, "GET", app.URL+"/api/whoami", with(asUser(token), "X-Forwarded-User", "x"), "")
	require.NoError(t, app.Stop(t))

	logs := app.Stdout.String() + app.Stderr.String()
	require.Contains(t, logs, `"msg":"request"`)
	for _, secret := range []string{token, noWorkspace["DATABRICKS_CLIENT_SECRET"], strings.Split(token, ".")[1]} {
		assert.NotContains(t, logs, secret)
	}
}

// HEAD answers as GET does on every GET route, without the body (RFC 9110: a server that answers GET answers HEAD).
func TestHeadOnEveryGetRoute(t *testing.T) {
	t.Parallel()
	app := startApp(t, noWorkspace) // /api/me answers 502 to GET and to HEAD alike
	router := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), "api-app", newWorkspace(settings{}, nil)).(chi.Routes)
	var getRoutes []string
	require.NoError(t, chi.Walk(router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if method == http.MethodGet {
			getRoutes = append(getRoutes, route)
		}
		return nil
	}))
	require.NotEmpty(t, getRoutes)
	do := func(method, path string) (*http.Response, []byte) {
		req, err := http.NewRequest(method, app.URL+path, nil)
		require.NoError(t, err)
		req.Header = asUser("user-access-token")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, body
	}
	for _, route := range getRoutes {
		t.Run(route, func(t *testing.T) {
			get, getBody := do(http.MethodGet, route)
			head, headBody := do(http.MethodHead, route)
			require.NotEmpty(t, getBody)
			assert.Equal(t, get.StatusCode, head.StatusCode)
			assert.Equal(t, get.Header.Get("Content-Type"), head.Header.Get("Content-Type"))
			assert.Empty(t, headBody)
		})
	}
	t.Run("405 lists HEAD with GET", func(t *testing.T) {
		resp, _ := do(http.MethodDelete, "/api/health")
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		assert.Equal(t, []string{"GET", "HEAD"}, resp.Header.Values("Allow"))
	})
}
