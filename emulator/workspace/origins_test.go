package workspace

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// cookieApp is an app that sets the cookies its query names (?set=name=value&set=…), and otherwise answers, as
// echoApp does, with the request it received.
func cookieApp(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		for _, c := range r.URL.Query()["set"] {
			rw.Header().Add("Set-Cookie", c+"; Path=/")
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{"path": r.URL.Path, "uri": r.RequestURI, "headers": r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Each app's proxy has an origin of its own, as each app has its own host name on the platform: its own loopback
// address, so that a browser keeps the apps' cookies apart and takes each app's pages for a site of its own. The
// workspace stays on 127.0.0.1, and the Apps API, the state and AppURL name each app's address.
func TestEachAppHasAnOriginOfItsOwn(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux routes all of 127.0.0.0/8 to the loopback interface; elsewhere the proxies fall back to 127.0.0.1")
	}
	w, logs := startWorkspace(t, Options{})
	dev := sdkClient(t, w, managerToken(t, w))
	hosts := map[string]string{mustParse(t, w.URL()).Hostname(): "the workspace"}
	assert.Equal(t, "127.0.0.1", mustParse(t, w.URL()).Hostname(), "the SDK takes an http:// host for U2M only there")
	for _, name := range w.AppNames() {
		host := mustParse(t, w.AppURL(name)).Hostname()
		assert.Empty(t, hosts[host], "%s shares its host %s with %s", name, host, hosts[host])
		hosts[host] = name
		app, err := dev.Apps.GetByName(t.Context(), name)
		require.NoError(t, err)
		assert.Equal(t, w.AppURL(name), app.Url)
		assert.Equal(t, w.AppURL(name), w.State().Apps[name].URL)
	}
	assert.NotContains(t, logs.String(), "no loopback address but 127.0.0.1")

	// An app created through the Apps API gets an address of its own too, and a whoami through it works.
	resp, body := send(t, http.MethodPost, w.URL()+PathApps, `{"name":"third-app"}`,
		http.Header{"Authorization": {"Bearer " + managerToken(t, w)}, "Content-Type": {"application/json"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	third := mustParse(t, w.AppURL("third-app")).Hostname()
	assert.Empty(t, hosts[third], "third-app shares its host with %s", hosts[third])
	require.NoError(t, w.SetUpstream("third-app", echoApp(t).URL))
	resp, body = call(t, http.MethodGet, w.AppURL("third-app")+"/api/whoami", bearer(managerToken(t, w)))
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
}

// Where the system has no loopback address but 127.0.0.1 (macOS without aliases), the proxies fall back to it, each
// on a port of its own, and the emulator says what that loses.
func TestAppAddressesFallBackTo127001(t *testing.T) {
	ports := newPortReservations(FreePort)
	ports.listenOn = func(addr string) (net.Listener, error) {
		if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
			return nil, &net.OpError{Op: "listen", Net: "tcp", Err: syscall.EADDRNOTAVAIL}
		}
		return net.Listen("tcp", addr)
	}
	w, logs := startWorkspace(t, Options{ports: ports})
	for _, name := range w.AppNames() {
		assert.Equal(t, "127.0.0.1", mustParse(t, w.AppURL(name)).Hostname(), name)
	}
	assert.NotEqual(t, w.AppURL("api-app"), w.AppURL("caller-app"))
	assert.Equal(t, 1, strings.Count(logs.String(), "no loopback address but 127.0.0.1"), "said once")
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(managerToken(t, w)))
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
}

// What one app's page can do to another's, in a browser signed in to both: nothing. App B's code neither receives
// app A's cookies nor sets the proxy's cookies for A; a form that B's page posts to A's /api/ is refused; logout is a
// form posted with its CSRF token, not a link any page can follow. And no app ever sees the proxy's own cookies.
func TestAppsAreIsolatedInTheBrowser(t *testing.T) {
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", cookieApp(t).URL))
	require.NoError(t, w.SetUpstream("caller-app", cookieApp(t).URL))
	a, b := w.AppURL("api-app"), w.AppURL("caller-app")
	br := newBrowser(t)
	resp, body := br.signIn(t, a+"/?set=a_secret=1", "dev@example.com")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, body = br.signIn(t, b+"/", "dev@example.com")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)

	t.Run("B's code never receives A's cookies, nor the proxy's", func(t *testing.T) {
		resp, body := br.get(t, b+"/api/whoami")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		var seen echoed
		require.NoError(t, json.Unmarshal([]byte(body), &seen))
		cookies := strings.Join(seen.Headers.Values("Cookie"), "; ")
		assert.NotContains(t, cookies, "a_secret")
		assert.NotContains(t, cookies, emulatorCookiePrefix)
		resp, body = br.get(t, a+"/api/whoami")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.NoError(t, json.Unmarshal([]byte(body), &seen))
		assert.Contains(t, strings.Join(seen.Headers.Values("Cookie"), "; "), "a_secret=1", "A gets its own")
	})

	t.Run("B cannot set the proxy's cookies", func(t *testing.T) {
		evil := url.Values{"set": {sessionCookieName(a) + "=forged", sessionCookieName(b) + "=forged", loginCookie + "=forged",
			"theme=dark"}}
		resp, _ := br.do(t, br.noFollow, http.MethodGet, b+"/api/whoami?"+evil.Encode(), nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var names []string
		for _, c := range resp.Cookies() {
			names = append(names, c.Name)
		}
		assert.Equal(t, []string{"theme"}, names, "the proxy drops an app's Set-Cookie for its own names")
		for _, app := range []string{a, b} {
			resp, body := br.get(t, app+"/api/whoami")
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", app, body)
			assert.Contains(t, body, "1001@1234567890123456", "%s: still signed in as dev", app)
		}
	})

	t.Run("a form B's page posts to A's /api/ is refused", func(t *testing.T) {
		crossSite := http.Header{"Origin": {b}, "Sec-Fetch-Site": {"cross-site"}}
		resp, body := br.do(t, br.noFollow, http.MethodPost, a+"/api/files", url.Values{"x": {"1"}}, crossSite)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, body)
		resp, body = br.do(t, br.noFollow, http.MethodPost, a+"/api/files", url.Values{"x": {"1"}},
			http.Header{"Origin": {b}}) // an older browser: Origin only
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, body)

		sameOrigin := http.Header{"Origin": {a}, "Sec-Fetch-Site": {"same-origin"}}
		resp, body = br.do(t, br.noFollow, http.MethodPost, a+"/api/files", url.Values{"x": {"1"}}, sameOrigin)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "A's own page posts to A: %s", body)
		resp, body = br.do(t, br.noFollow, http.MethodGet, a+"/api/whoami", nil, crossSite)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "a cross-site GET is a link followed: %s", body)
		token := managerToken(t, w)
		resp, body = br.do(t, br.noFollow, http.MethodPost, a+"/api/files", url.Values{"x": {"1"}},
			http.Header{"Origin": {b}, "Authorization": {"Bearer " + token}})
		assert.Equal(t, http.StatusOK, resp.StatusCode, "a bearer token is no cookie a page sends unasked: %s", body)
	})

	t.Run("logout is a form with its CSRF token", func(t *testing.T) {
		resp, body := br.get(t, a+PathLogout)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, body, `method="post"`)
		page := resp
		resp, _ = br.get(t, a+"/api/whoami")
		require.Equal(t, http.StatusOK, resp.StatusCode, "opening the logout page signs nobody out")
		resp = page

		resp, _ = br.do(t, br.noFollow, http.MethodPost, a+PathLogout, url.Values{}, nil)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "no token")
		fields := hiddenFields(t, resp, body)
		require.NotEmpty(t, fields.Get("csrf_token"))
		resp, _ = br.do(t, br.noFollow, http.MethodPost, a+PathLogout, fields, http.Header{"Origin": {b}, "Sec-Fetch-Site": {"cross-site"}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "posted from B's page")
		resp, _ = br.do(t, br.noFollow, http.MethodPost, b+PathLogout, fields, nil)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "A's token does not sign out of B")
		resp, _ = br.get(t, b+"/api/whoami")
		require.Equal(t, http.StatusOK, resp.StatusCode)

		resp, body = br.do(t, br.noFollow, http.MethodPost, a+PathLogout, fields, http.Header{"Origin": {a}})
		assert.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Contains(t, body, "signed out")
		resp, _ = br.get(t, a+"/api/whoami")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "signed out of A")
		resp, body = br.get(t, b+"/api/whoami")
		assert.Equal(t, http.StatusOK, resp.StatusCode, "still signed in to B: %s", body)
		assert.Equal(t, "1001@1234567890123456", identityOf(t, body))
	})
}

// identityOf is the X-Forwarded-User an echo app saw.
func identityOf(t *testing.T, body string) string {
	t.Helper()
	var seen echoed
	require.NoError(t, json.Unmarshal([]byte(body), &seen), body)
	return seen.Headers.Get(identity.HeaderUser)
}
