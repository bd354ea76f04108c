package workspace

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

func TestProxyStatusMatrix(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	other, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app")

	devAllAPIs := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	devSQLOnly := pkceLogin(t, w, "offline_access sql")["access_token"].(string)
	devExactScopes := pkceLogin(t, w, "offline_access sql file.files dashboards.genie")["access_token"].(string)
	expired := issueAt(t, w, time.Now().Add(-2*time.Hour), "dev@example.com", "all-apis")
	otherIssuer := m2mToken(t, other, "external-service")
	outsider := issueAt(t, w, time.Now(), "outsider@example.com", "all-apis")

	tests := []struct {
		name      string
		path      string
		header    http.Header
		status    int
		code      string
		challenge bool   // expects WWW-Authenticate
		mentions  string // part of the message
	}{
		{"api without token", "/api/x", nil, http.StatusUnauthorized, jsonhttp.CodeUnauthenticated, true, "No access token"},
		{"api with garbage token", "/api/x", bearer("not-a-jwt"), http.StatusUnauthorized, jsonhttp.CodeUnauthenticated, true, "malformed"},
		{"api with basic auth", "/api/x", http.Header{"Authorization": {"Basic Zm9vOmJhcg=="}}, http.StatusUnauthorized, jsonhttp.CodeUnauthenticated, true, "Bearer"},
		{"api with expired token", "/api/x", bearer(expired), http.StatusUnauthorized, jsonhttp.CodeUnauthenticated, true, "expired"},
		{"api with other issuer's token", "/api/x", bearer(otherIssuer), http.StatusUnauthorized, jsonhttp.CodeUnauthenticated, true, "not issued by this workspace"},
		{"api with tampered signature", "/api/x", bearer(devAllAPIs[:len(devAllAPIs)-4] + "AAAA"), http.StatusUnauthorized, jsonhttp.CodeUnauthenticated, true, "not issued"},
		{"user without CAN_USE", "/api/x", bearer(outsider), http.StatusForbidden, jsonhttp.CodePermissionDenied, false, "CAN USE"},
		{"service principal without CAN_USE", "/api/x", bearer(m2mToken(t, w, "no-access-service")), http.StatusForbidden, jsonhttp.CodePermissionDenied, false, "CAN USE"},
		{"user missing scopes", "/api/x", bearer(devSQLOnly), http.StatusForbidden, jsonhttp.CodePermissionDenied, false, "file.files, dashboards.genie"},
		{"browser path without token", "/", nil, http.StatusFound, "", false, ""},
		{"user with all-apis", "/api/x", bearer(devAllAPIs), http.StatusOK, "", false, ""},
		{"user with exactly the app's scopes", "/api/x", bearer(devExactScopes), http.StatusOK, "", false, ""},
		{"service principal with CAN_USE", "/api/x", bearer(m2mToken(t, w, "external-service")), http.StatusOK, "", false, ""},
		{"browser path with a valid token", "/index.html", bearer(devAllAPIs), http.StatusFound, "", false, ""},
		{"browser path with a bad token", "/", bearer("not-a-jwt"), http.StatusFound, "", false, ""},
		{"a path that only starts like /api", "/apis/x", bearer(devAllAPIs), http.StatusFound, "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := call(t, http.MethodGet, api+tt.path, tt.header)
			assert.Equal(t, tt.status, resp.StatusCode, string(body))
			assert.Equal(t, tt.challenge, resp.Header.Get("WWW-Authenticate") != "")
			if tt.status == http.StatusFound {
				assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), w.URL()+PathLogin), resp.Header.Get("Location"))
			}
			if tt.code != "" {
				var e jsonhttp.Error
				require.NoError(t, json.Unmarshal(body, &e), string(body))
				assert.Equal(t, tt.code, e.Code)
				assert.Contains(t, e.Message, tt.mentions)
				assert.NotEmpty(t, e.Fix)
			}
		})
	}
}

// TestProxyGatewayTimeout has a workspace of its own: a short timeout elsewhere would make a loaded machine flaky.
func TestProxyGatewayTimeout(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{RequestTimeout: 250 * time.Millisecond})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/slow", bearer(m2mToken(t, w, "external-service")))
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
	var e jsonhttp.Error
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	assert.Equal(t, jsonhttp.CodeGatewayTimeout, e.Code)
	assert.Contains(t, e.Message, "did not answer within 250ms")
}

func TestProxyBadGateway(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	token := m2mToken(t, w, "external-service")

	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/x", bearer(token))
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode, "no upstream attached")
	assert.Contains(t, string(body), jsonhttp.CodeBadGateway)

	port, err := FreePort()
	require.NoError(t, err)
	require.NoError(t, w.SetUpstream("api-app", "http://127.0.0.1:"+strconv.Itoa(port)))
	resp, body = call(t, http.MethodGet, w.AppURL("api-app")+"/api/x", bearer(token))
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode, "nothing listens upstream")
	assert.Contains(t, string(body), jsonhttp.CodeBadGateway)

	assert.Error(t, w.SetUpstream("api-app", "ftp://example.com"))
	assert.Error(t, w.SetUpstream("no-such-app", "http://127.0.0.1:1"))
}

func TestProxyHeaders(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app")
	dev := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)

	spoofed := http.Header{
		"Authorization":                  {"Bearer " + dev},
		"X-Forwarded-User":               {"9999@1", "8888@1"},
		"x-forwarded-email":              {"ceo@example.com"},
		"X-FORWARDED-PREFERRED-USERNAME": {"ceo"},
		"X-Forwarded-Access-Token":       {"stolen"},
		"X-Forwarded-Host":               {"evil.example.com"},
		"X-Forwarded-For":                {"6.6.6.6"},
		"X-Forwarded-Anything":           {"x"},
		"X_Forwarded_User":               {"7777@1"},
		"X-Real-IP":                      {"6.6.6.6"},
		"x-request-id":                   {"fixed", "fixed"},
		"Forwarded":                      {"for=6.6.6.6"},
	}

	t.Run("user", func(t *testing.T) {
		resp, body := call(t, http.MethodGet, api+"/api/whoami", spoofed)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var seen echoed
		require.NoError(t, json.Unmarshal(body, &seen))
		h := seen.Headers
		assert.Equal(t, []string{"1001@1234567890123456"}, h.Values(identity.HeaderUser))
		assert.Equal(t, []string{"dev@example.com"}, h.Values(identity.HeaderEmail))
		assert.Equal(t, []string{"dev@example.com"}, h.Values(identity.HeaderPreferredUsername))
		assert.Equal(t, []string{strings.TrimPrefix(api, "http://")}, h.Values(identity.HeaderHost))
		assert.Equal(t, []string{"127.0.0.1"}, h.Values(identity.HeaderRealIP))
		assert.Len(t, h.Values(identity.HeaderRequestID), 1)
		assert.NotEqual(t, "fixed", h.Get(identity.HeaderRequestID))
		assert.Empty(t, h.Values("Authorization"), "the caller's token must not reach the app")
		assert.Empty(t, h.Values("X-Forwarded-For"))
		assert.Empty(t, h.Values("X-Forwarded-Anything"))
		assert.Empty(t, h.Values("X_forwarded_user"))
		assert.Empty(t, h.Values("Forwarded"))

		// The forwarded token is a fresh token for the same user holding exactly the app's scopes.
		forwarded := h.Get(identity.HeaderAccessToken)
		require.NotEmpty(t, forwarded)
		assert.NotEqual(t, dev, forwarded)
		claims, err := identity.DecodeClaims(forwarded)
		require.NoError(t, err)
		assert.Equal(t, "dev@example.com", claims.Subject)
		assert.Equal(t, []string{"sql", "file.files", "dashboards.genie"}, claims.Scopes)
		assert.Equal(t, w.URL()+"/oidc", claims.Issuer)

		// The app can use the data APIs its scopes name with it, as the user: the warehouses, with sql.
		resp, body = call(t, http.MethodGet, w.URL()+PathWarehouses, bearer(forwarded))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		assert.Contains(t, string(body), `"id":"5b3f9c1e7a2d4e60"`)
		assert.NotContains(t, logs.String(), forwarded)
		assert.NotContains(t, logs.String(), dev)
	})

	t.Run("service principal", func(t *testing.T) {
		sp := m2mToken(t, w, "external-service")
		h := spoofed.Clone()
		h["Authorization"] = []string{"Bearer " + sp}
		resp, body := call(t, http.MethodGet, api+"/api/whoami", h)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var seen echoed
		require.NoError(t, json.Unmarshal(body, &seen))
		assert.Equal(t, []string{"2001@1234567890123456"}, seen.Headers.Values(identity.HeaderUser))
		assert.Equal(t, []string{"7b0d3c52-5e1a-4f0e-9c1d-2a6b8e4f1001"}, seen.Headers.Values(identity.HeaderPreferredUsername))
		assert.Empty(t, seen.Headers.Values(identity.HeaderEmail), "service principals have no email")
		assert.Empty(t, seen.Headers.Values(identity.HeaderAccessToken), "service principals get no forwarded token")
	})

	t.Run("caller-app has no user scopes, so no forwarded token", func(t *testing.T) {
		require.NoError(t, w.SetUpstream("caller-app", echoApp(t).URL))
		resp, body := call(t, http.MethodGet, w.AppURL("caller-app")+"/api/x", bearer(dev))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var seen echoed
		require.NoError(t, json.Unmarshal(body, &seen))
		assert.Empty(t, seen.Headers.Values(identity.HeaderAccessToken))
		assert.Equal(t, "1001@1234567890123456", seen.Headers.Get(identity.HeaderUser))
	})

	t.Run("one access log line per request, matching the app's request id", func(t *testing.T) {
		resp, body := call(t, http.MethodGet, api+"/api/logged", bearer(dev))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var seen echoed
		require.NoError(t, json.Unmarshal(body, &seen))
		id := seen.Headers.Get(identity.HeaderRequestID)
		var lines []string
		require.Eventually(t, func() bool { // the line is written as the answer is sent
			lines = nil
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "request_id="+id) {
					lines = append(lines, line)
				}
			}
			return len(lines) > 0
		}, patience, 5*time.Millisecond)
		require.Len(t, lines, 1, logs.String())
		for _, want := range []string{"level=DEBUG", `msg="proxy request"`, "app=api-app", "method=GET", "path=/api/logged",
			"status=200", "user=1001@1234567890123456", "duration="} {
			assert.Contains(t, lines[0], want)
		}

		resp, _ = call(t, http.MethodGet, api+"/api/refused", http.Header{})
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Eventually(t, func() bool {
			return strings.Contains(logs.String(), `level=INFO msg="proxy request" app=api-app method=GET path=/api/refused status=401 user=""`)
		}, patience, 5*time.Millisecond)
		assert.NotContains(t, logs.String(), dev)
	})

	t.Run("every request id differs", func(t *testing.T) {
		ids := map[string]bool{}
		for range 20 {
			_, body := call(t, http.MethodGet, api+"/api/x", bearer(dev))
			var seen echoed
			require.NoError(t, json.Unmarshal(body, &seen))
			id := seen.Headers.Get(identity.HeaderRequestID)
			assert.Len(t, id, 36)
			assert.False(t, ids[id], "request id %s repeated", id)
			ids[id] = true
		}
	})
}

func TestProxyWebSocketUpgrade(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	dev := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)

	resp, conn, br := rawUpgrade(t, w.AppURL("api-app")+"/api/ws", http.Header{
		"Authorization": {"Bearer " + dev}, "X-Forwarded-User": {"9999@1"}})
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	raw, err := base64.StdEncoding.DecodeString(resp.Header.Get("X-Seen"))
	require.NoError(t, err)
	var seen http.Header
	require.NoError(t, json.Unmarshal(raw, &seen))
	assert.Equal(t, []string{"1001@1234567890123456"}, seen.Values(identity.HeaderUser))
	assert.NotEmpty(t, seen.Get(identity.HeaderRequestID))
	assert.NotEmpty(t, seen.Get(identity.HeaderAccessToken))
	assert.Empty(t, seen.Values("Authorization"))

	_, err = conn.Write([]byte("hello\n"))
	require.NoError(t, err)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "echo: hello\n", line)
	require.NoError(t, conn.Close())
	assert.Eventually(t, func() bool { // logged once the upgraded connection ends, with the app's 101
		return strings.Contains(logs.String(), `level=DEBUG msg="proxy request" app=api-app method=GET path=/api/ws status=101`)
	}, patience, 5*time.Millisecond, logs.String())

	resp, _, _ = rawUpgrade(t, w.AppURL("api-app")+"/api/ws", nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "upgrades are authenticated like any request")
}

// TestProxySpoofedHeadersInEverySpelling sends each header the emulator strips, one at a time, in every spelling a
// client might try (letter case, underscores as CGI-style servers read them, repeated), and over the raw wire in forms
// Go's client will not write. None of the spoofed values reaches the app; the app sees the proxy's identity.
func TestProxySpoofedHeadersInEverySpelling(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app")
	dev := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)

	mixed := func(s string) string { // x-FoRwArDeD-uSeR
		b := []byte(strings.ToLower(s))
		for i := 1; i < len(b); i += 2 {
			b[i] = strings.ToUpper(string(b[i]))[0]
		}
		return string(b)
	}
	spellings := map[string]func(string) string{
		"canonical":        func(s string) string { return s },
		"lower":            strings.ToLower,
		"upper":            strings.ToUpper,
		"mixed":            mixed,
		"underscores":      func(s string) string { return strings.ReplaceAll(s, "-", "_") },
		"lower underscore": func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "_")) },
		"upper underscore": func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) },
		"mixed underscore": func(s string) string { return mixed(strings.ReplaceAll(s, "-", "_")) },
	}
	owned := append(append([]string{}, identity.ForwardedHeaders...), "X-Forwarded-For", "X-Forwarded-Proto",
		"X-Forwarded-Port", "Forwarded")
	tried := 0
	for _, header := range owned {
		for name, spell := range spellings {
			for _, repeated := range []bool{false, true} {
				value := fmt.Sprintf("spoofed-%d", tried)
				h := bearer(dev)
				h[spell(header)] = []string{value}
				if repeated {
					h[spell(header)] = []string{value, value + "-again"}
				}
				tried++
				resp, body := call(t, http.MethodGet, api+"/api/whoami", h)
				require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
				assert.NotContains(t, string(body), "spoofed", "%s spelt %s (%s, repeated %v) reached the app", header, spell(header), name, repeated)
				var seen echoed
				require.NoError(t, json.Unmarshal(body, &seen))
				assert.Equal(t, []string{"1001@1234567890123456"}, seen.Headers.Values(identity.HeaderUser))
				assert.Len(t, seen.Headers.Values(identity.HeaderRequestID), 1)
			}
		}
	}

	// Over the raw wire: a space before the colon and an obsolete line folding are refused by the proxy's own server;
	// a header the request names as hop-by-hop is dropped and replaced.
	for _, line := range []string{
		"X-Forwarded-User : 9999@1",
		"X-Forwarded-User: 1001@1234567890123456\r\n spoofed-fold",
		"X-Forwarded-User:\tspoofed-tab",
		"Connection: X-Forwarded-User\r\nX-Forwarded-User: spoofed-hop",
	} {
		tried++
		status, answer := rawProxyRequest(t, api, "GET /api/whoami HTTP/1.1\r\nHost: "+strings.TrimPrefix(api, "http://")+
			"\r\nAuthorization: Bearer "+dev+"\r\n"+line)
		assert.Contains(t, []int{http.StatusOK, http.StatusBadRequest}, status, line)
		assert.NotContains(t, answer, "spoofed", line)
		assert.NotContains(t, answer, "9999@1", line)
		assert.NotContains(t, answer, dev, "the caller's token is not echoed")
	}
	t.Logf("spoofed forwarded headers tried: %d, reached the app: 0", tried)
}

// rawProxyRequest writes head on a new connection to baseURL and returns the status and the whole answer.
func rawProxyRequest(t *testing.T, baseURL, head string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, head+"\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(patience)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// SCIM Me needs iam.current-user:read (or all-apis), as on a real workspace: a user token with other scopes only is
// refused, so an app whose user authorization lacks it fails under the emulator as it would in production.
func TestSCIMMeNeedsTheCurrentUserScope(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	for _, tt := range []struct {
		scopes string
		status int
	}{
		{"offline_access sql", http.StatusForbidden},
		{"offline_access iam.current-user:read", http.StatusOK},
		{"offline_access all-apis", http.StatusOK},
	} {
		token := pkceLogin(t, w, tt.scopes)["access_token"].(string)
		resp, body := call(t, http.MethodGet, w.URL()+PathSCIMMe, bearer(token))
		assert.Equal(t, tt.status, resp.StatusCode, "%s: %s", tt.scopes, body)
		if tt.status == http.StatusForbidden {
			assert.Contains(t, string(body), ScopeCurrentUser)
		}
	}
}

// X-Forwarded-Host is the app's own host, whatever Host header or absolute-form request URI the client sends.
func TestProxyForwardedHostIsTheAppsHost(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app")
	host := strings.TrimPrefix(api, "http://")
	dev := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	auth := "\r\nAuthorization: Bearer " + dev
	for name, head := range map[string]string{
		"the proxy's host":       "GET /api/whoami HTTP/1.1\r\nHost: " + host + auth,
		"another Host header":    "GET /api/whoami HTTP/1.1\r\nHost: evil.example.com" + auth,
		"absolute-form URI":      "GET http://evil.example.com/api/whoami HTTP/1.1\r\nHost: " + host + auth,
		"absolute-form and Host": "GET http://evil.example.com:8443/api/whoami HTTP/1.1\r\nHost: evil.example.com" + auth,
		"HTTP/1.0 without Host":  "GET /api/whoami HTTP/1.0" + auth,
	} {
		t.Run(name, func(t *testing.T) {
			status, body := rawProxyRequest(t, api, head)
			require.Equal(t, http.StatusOK, status, body)
			var seen echoed
			require.NoError(t, json.Unmarshal([]byte(body), &seen))
			assert.Equal(t, []string{host}, seen.Headers.Values(identity.HeaderHost))
		})
	}
}

// A path with dot segments would pass the proxy's /api/ check and reach an app that resolves them as a browser-only
// route, with identity headers. The proxy answers 400 to any dot segment (decoded, %2e included, with an encoded
// slash or a backslash as separator, or a ;parameter after it) and to an /api/ prefix that is percent-encoded, and
// forwards every other path exactly as the client sent it.
func TestProxyDotSegments(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app")
	auth := "\r\nHost: " + strings.TrimPrefix(api, "http://") + "\r\nAuthorization: Bearer " +
		pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	refused := []string{
		"/api/../x", "/api/./x", "/api/x/..", "/api/..", "/api/.", "/api/x/./y",
		"/api/%2e%2e/x", "/api/%2E%2e/x", "/api/.%2e/x", "/api/%2e/x",
		"/api%2f..%2fx", "/api%2F..%2Fx", "/api/%2e%2e%2fx", "/api/x%2f..%2f..%2fy",
		"/api/..%5cx", "/api/x%5c..%5c..%5cy", "/api/..;/x", "/api/..;jsessionid=1/x",
		"/../api/x", "/x/../api/y", "/%2e%2e/api/x",
		"/api%2fx", "/%61pi/x", "/api%2Fx/y", "/api/files/a%2fb%2f..%2Fc",
	}
	for _, path := range refused {
		t.Run("refused "+path, func(t *testing.T) {
			status, body := rawProxyRequest(t, api, "GET "+path+" HTTP/1.1"+auth)
			assert.Equal(t, http.StatusBadRequest, status, body)
			var e jsonhttp.Error
			require.NoError(t, json.Unmarshal([]byte(body), &e), body)
			assert.Equal(t, jsonhttp.CodeInvalidParameter, e.Code)
			assert.NotEmpty(t, e.Fix)
		})
	}
	forwarded := []string{
		"/api", "/api/x", "/api/files/a%2Fb", "/api/..x", "/api/x..", "/api/...",
		"/api/.well-known", "/api/x?next=../y", "/api/%252e%252e/x", "/api/a%20b",
	}
	for _, uri := range forwarded {
		t.Run("forwarded "+uri, func(t *testing.T) {
			status, body := rawProxyRequest(t, api, "GET "+uri+" HTTP/1.1"+auth)
			require.Equal(t, http.StatusOK, status, body)
			var seen echoed
			require.NoError(t, json.Unmarshal([]byte(body), &seen))
			assert.Equal(t, uri, seen.URI, "the app receives the path exactly as sent")
		})
	}
}

// TestProxyLogsWhatTheAppNeverSees: at the emulator's default level (Info) the proxy logs the requests it answers
// itself, a refusal or an unreachable app, and not those whose answer comes from the app (a 500 included), which the
// app logs.
func TestProxyLogsWhatTheAppNeverSees(t *testing.T) {
	t.Parallel()
	logs := &testkit.Buffer{}
	w, err := Start(t.Context(), Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	app := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/app-error":
			rw.WriteHeader(http.StatusInternalServerError)
		case "/api/other-protocol": // switches to a protocol the client did not ask for: the proxy answers 502
			conn, brw, err := rw.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: other\r\nConnection: Upgrade\r\n\r\n")
			_ = brw.Flush()
		}
	}))
	t.Cleanup(app.Close)
	require.NoError(t, w.SetUpstream("api-app", app.URL))
	sp := m2mToken(t, w, "external-service")

	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/forwarded", bearer(sp))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	resp, _ = call(t, http.MethodGet, w.AppURL("api-app")+"/api/app-error", bearer(sp))
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	resp, _ = call(t, http.MethodGet, w.AppURL("api-app")+"/api/refused", bearer("not-a-token"))
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _, _ = rawUpgrade(t, w.AppURL("api-app")+"/api/other-protocol", bearer(sp))
	require.Equal(t, http.StatusBadGateway, resp.StatusCode)
	port, err := FreePort() // nothing listens there
	require.NoError(t, err)
	require.NoError(t, w.SetUpstream("api-app", "http://127.0.0.1:"+strconv.Itoa(port)))
	resp, _ = call(t, http.MethodGet, w.AppURL("api-app")+"/api/unreachable", bearer(sp))
	require.Equal(t, http.StatusBadGateway, resp.StatusCode)

	assert.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "path=/api/refused status=401") &&
			strings.Contains(logs.String(), "path=/api/other-protocol status=502") &&
			strings.Contains(logs.String(), "path=/api/unreachable status=502")
	}, patience, 5*time.Millisecond, logs.String())
	assert.NotContains(t, logs.String(), "/api/forwarded")
	assert.NotContains(t, logs.String(), "/api/app-error")
	assert.NotContains(t, logs.String(), sp)
}
