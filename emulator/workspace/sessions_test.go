package workspace

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	headless "github.com/databricks-sample/go-apps-api/emulator/browser"
)

// browser is a person's browser: one cookie jar, shared by a client that follows redirects and one that stops at
// each, so a test can walk the sign-in step by step.
type browser struct {
	jar      *cookiejar.Jar
	follow   *http.Client
	noFollow *http.Client
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{jar: jar,
		follow: &http.Client{Jar: jar, Timeout: patience},
		noFollow: &http.Client{Jar: jar, Timeout: patience,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request and returns the response with its body read.
func (b *browser) do(t *testing.T, client *http.Client, method, target string, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(raw)
}

func (b *browser) get(t *testing.T, target string) (*http.Response, string) {
	t.Helper()
	return b.do(t, b.follow, http.MethodGet, target, nil, nil)
}

// loginForm opens page (an app's) and returns the login page's form, after the redirects.
func (b *browser) loginForm(t *testing.T, page string) (*url.URL, url.Values) {
	t.Helper()
	resp, body := b.get(t, page)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, PathLogin, resp.Request.URL.Path, "the proxy sends a browser without a session to sign in")
	return resp.Request.URL, hiddenFields(t, resp, body)
}

// consentForm picks user on the login page and returns the consent page's form.
func (b *browser) consentForm(t *testing.T, page, user string) (*url.URL, url.Values) {
	t.Helper()
	loginURL, fields := b.loginForm(t, page)
	fields.Set("user", user)
	resp, body := b.do(t, b.follow, http.MethodPost, loginURL.String(), fields, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Contains(t, body, "Allow")
	action, err := loginURL.Parse(PathConsent)
	require.NoError(t, err)
	return action, hiddenFields(t, resp, body)
}

// callbackURL walks to the consent page as user, allows, and returns the proxy callback URL with the one-time code,
// without following it.
func (b *browser) callbackURL(t *testing.T, page, user string) string {
	t.Helper()
	action, fields := b.consentForm(t, page, user)
	fields.Set("decision", "allow")
	resp, body := b.do(t, b.noFollow, http.MethodPost, action.String(), fields, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	return resp.Header.Get("Location")
}

// signIn walks the whole sign-in as user and returns the page the browser came back to.
func (b *browser) signIn(t *testing.T, page, user string) (*http.Response, string) {
	t.Helper()
	resp, err := headless.SignIn(t.Context(), b.follow, page, user)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(raw)
}

// signOut opens the app's sign-out page and posts its form, as a person clicking "Sign out" does.
func (b *browser) signOut(t *testing.T, app string) (*http.Response, string) {
	t.Helper()
	resp, body := b.get(t, app+PathLogout)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	return b.do(t, b.follow, http.MethodPost, app+PathLogout, hiddenFields(t, resp, body), http.Header{"Origin": {app}})
}

func hiddenFields(t *testing.T, resp *http.Response, body string) url.Values {
	t.Helper()
	resp.Body = io.NopCloser(strings.NewReader(body))
	f, err := headless.ReadForm(resp)
	require.NoError(t, err)
	return f.Fields
}

// The whole walk, as a person does it: the page redirects to the login page, the user picks dev, allows api-app's
// scopes, and is back on the page they asked for; the app sees dev's identity headers and a downscoped token, on
// pages and on /api/ alike, and never the emulator's cookies.
func TestBrowserSignIn(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app")
	b := newBrowser(t)

	action, fields := b.consentForm(t, api+"/reports?year=2025", "dev@example.com")
	csrf := fields.Get("csrf_token")
	fields.Set("decision", "allow")
	resp, body := b.do(t, b.follow, http.MethodPost, action.String(), fields, http.Header{"Cookie": {"theme=dark"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, api+"/reports?year=2025", resp.Request.URL.String(), "back where the browser started")

	var seen echoed
	require.NoError(t, json.Unmarshal([]byte(body), &seen))
	assert.Equal(t, "/reports", seen.Path)
	h := seen.Headers
	assert.Equal(t, []string{"1001@1234567890123456"}, h.Values(identity.HeaderUser))
	assert.Equal(t, []string{"dev@example.com"}, h.Values(identity.HeaderEmail))
	assert.Len(t, h.Values(identity.HeaderRequestID), 1)
	claims, err := identity.DecodeClaims(h.Get(identity.HeaderAccessToken))
	require.NoError(t, err)
	assert.Equal(t, "dev@example.com", claims.Subject)
	assert.Equal(t, []string{"sql", "file.files", "dashboards.genie"}, claims.Scopes)
	assert.Equal(t, w.State().ServicePrincipals["api-app"].ClientID, claims.ClientID)

	resp, body = b.get(t, api+"/api/whoami")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.NoError(t, json.Unmarshal([]byte(body), &seen))
	assert.Equal(t, "1001@1234567890123456", seen.Headers.Get(identity.HeaderUser))
	forwarded := seen.Headers.Get(identity.HeaderAccessToken)
	require.NotEmpty(t, forwarded)
	for _, cookie := range seen.Headers.Values("Cookie") {
		assert.NotContains(t, cookie, emulatorCookiePrefix, "the app never sees the emulator's cookies")
	}

	var session *http.Cookie
	for _, c := range b.jar.Cookies(mustParse(t, api)) {
		if c.Name == sessionCookieName(api) {
			session = c
		}
	}
	require.NotNil(t, session, "the proxy set its session cookie")

	// The forwarded token works at the workspace until the session ends.
	resp, _ = call(t, http.MethodGet, w.URL()+PathWarehouses, bearer(forwarded))
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	resp, body = b.signOut(t, api)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "signed out")
	resp, _ = b.do(t, b.noFollow, http.MethodGet, api+"/", nil, nil)
	assert.Equal(t, http.StatusFound, resp.StatusCode, "signed out: back to the login page")
	resp, _ = call(t, http.MethodGet, api+"/api/whoami", http.Header{"Cookie": {session.Name + "=" + session.Value}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the ended session's cookie no longer works")
	resp, _ = call(t, http.MethodGet, w.URL()+PathWarehouses, bearer(forwarded))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "logout revoked the forwarded tokens")

	for _, secret := range []string{session.Value, csrf, forwarded} {
		assert.NotContains(t, logs.String(), secret)
	}
}

// A set-up cookie header is HttpOnly and SameSite=Lax, for the proxy's origin only, and lasts as long as a token.
func TestSessionCookieAttributes(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{TokenLifetime: 10 * time.Minute})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	b := newBrowser(t)
	resp, body := b.do(t, b.noFollow, http.MethodGet, b.callbackURL(t, w.AppURL("api-app")+"/", "dev@example.com"), nil, nil)
	require.Equal(t, http.StatusFound, resp.StatusCode, body)
	var set *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookieName(w.AppURL("api-app")) {
			set = c
		}
	}
	require.NotNil(t, set)
	assert.True(t, set.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, set.SameSite)
	assert.Equal(t, "/", set.Path)
	assert.Empty(t, set.Domain, "host-only")
	assert.Equal(t, 600, set.MaxAge)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
}

// An app without user authorization scopes (caller-app) has no consent page and gets no forwarded token.
func TestBrowserSignInWithoutScopes(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("caller-app", echoApp(t).URL))
	resp, body := newBrowser(t).signIn(t, w.AppURL("caller-app")+"/", "dev@example.com")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var seen echoed
	require.NoError(t, json.Unmarshal([]byte(body), &seen))
	assert.Equal(t, "1001@1234567890123456", seen.Headers.Get(identity.HeaderUser))
	assert.Empty(t, seen.Headers.Get(identity.HeaderAccessToken))
}

// A user without CAN USE signs in, and the proxy refuses them on every request: a page for a browser, JSON on
// /api/. The proxy reads the app's permissions per request, so a grant through the Permissions API lets them in
// at once, and taking it away shuts them out again.
func TestBrowserSessionWithoutCanUse(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app")
	b := newBrowser(t)

	resp, body := b.signIn(t, api+"/", "outsider@example.com")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"), resp.Header.Get("Content-Type"))
	assert.Contains(t, body, "outsider@example.com does not have CAN USE permission on app api-app")
	assert.Contains(t, body, PathLogout, "the page offers to sign in as someone else")

	resp, body = b.get(t, api+"/api/whoami")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	var e jsonhttp.Error
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	assert.Equal(t, jsonhttp.CodePermissionDenied, e.Code)
	assert.Contains(t, e.Fix, "update-permissions")

	grant := func(level string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPatch, w.URL()+"/api/2.0/permissions/apps/api-app",
			strings.NewReader(`{"access_control_list":[{"user_name":"outsider@example.com","permission_level":"`+level+`"}]}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+pkceLogin(t, w, "offline_access all-apis")["access_token"].(string))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	grant(PermissionCanUse)
	resp, body = b.get(t, api+"/api/whoami")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Contains(t, body, "1002@1234567890123456")

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, w.URL()+"/api/2.0/permissions/apps/api-app",
		strings.NewReader(`{"access_control_list":[]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+pkceLogin(t, w, "offline_access all-apis")["access_token"].(string))
	req.Header.Set("Content-Type", "application/json")
	put, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	put.Body.Close()
	require.Equal(t, http.StatusOK, put.StatusCode)
	resp, _ = b.get(t, api+"/")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "revoked: refused again on the next request")
}

// Each refusal of the sign-in, from a fresh browser: the login and consent forms without their CSRF token, with
// another's, or posted from another origin; next_url off this workspace's apps; a one-time code replayed, presented
// at another app, or late; an expired session.
func TestBrowserSignInRefusals(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	require.NoError(t, w.SetUpstream("caller-app", echoApp(t).URL))
	api, caller := w.AppURL("api-app"), w.AppURL("caller-app")
	port, err := FreePort()
	require.NoError(t, err)

	t.Run("next_url", func(t *testing.T) {
		for name, next := range map[string]string{
			"another host":            "http://evil.example.com/",
			"another port":            "http://127.0.0.1:" + strconv.Itoa(port) + "/",
			"the workspace itself":    w.URL() + "/",
			"https to an app's host":  "https://" + strings.TrimPrefix(api, "http://") + "/",
			"userinfo":                "http://user@" + strings.TrimPrefix(api, "http://") + "/",
			"a relative path":         "/api/whoami",
			"protocol-relative":       "//evil.example.com/",
			"javascript":              "javascript:alert(1)",
			"an app's host as a path": "http://evil.example.com/" + api,
			"too long":                api + "/" + strings.Repeat("a", maxNextURL),
		} {
			t.Run(name, func(t *testing.T) {
				resp, body := newBrowser(t).get(t, w.URL()+PathLogin+"?next_url="+url.QueryEscape(next))
				assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
				assert.Contains(t, body, "must be the URL of an app of this workspace")
				assert.NotContains(t, body, "csrf_token", "no form to sign in with")
			})
		}
		resp, body := newBrowser(t).get(t, w.URL()+PathLogin)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "opened by hand: it lists the apps")
		assert.Contains(t, body, api+"/")
	})

	t.Run("login form", func(t *testing.T) {
		b := newBrowser(t)
		loginURL, fields := b.loginForm(t, api+"/")
		other := newBrowser(t)
		_, othersFields := other.loginForm(t, api+"/")
		_, callerFields := b.loginForm(t, caller+"/")
		tests := []struct {
			name   string
			change func(url.Values)
			header http.Header
			status int
		}{
			{"no CSRF token", func(v url.Values) { v.Del("csrf_token") }, nil, http.StatusForbidden},
			{"a wrong CSRF token", func(v url.Values) { v.Set("csrf_token", "AAAA"+v.Get("csrf_token")[4:]) }, nil, http.StatusForbidden},
			{"another browser's token", func(v url.Values) { v.Set("csrf_token", othersFields.Get("csrf_token")) }, nil, http.StatusForbidden},
			{"the token of another app's form", func(v url.Values) { v.Set("csrf_token", callerFields.Get("csrf_token")) }, nil, http.StatusForbidden},
			{"next_url changed to another app", func(v url.Values) { v.Set("next_url", caller+"/") }, nil, http.StatusForbidden},
			{"next_url changed to another host", func(v url.Values) { v.Set("next_url", "http://evil.example.com/") }, nil, http.StatusBadRequest},
			{"posted from another site", nil, http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
			{"posted from another origin", nil, http.Header{"Origin": {"http://evil.example.com"}}, http.StatusForbidden},
			{"a user who does not exist", func(v url.Values) { v.Set("user", "ceo@example.com") }, nil, http.StatusBadRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				v := url.Values{}
				for k, vs := range fields {
					v[k] = append([]string(nil), vs...)
				}
				v.Set("user", "dev@example.com")
				if tt.change != nil {
					tt.change(v)
				}
				resp, body := b.do(t, b.noFollow, http.MethodPost, loginURL.String(), v, tt.header)
				assert.Equal(t, tt.status, resp.StatusCode, body)
				assert.NotContains(t, body, "Allow", "no consent page")
				assert.Empty(t, resp.Header.Get("Location"), "not sent to the app")
			})
		}
		t.Run("the form as shown", func(t *testing.T) {
			v := url.Values{}
			for k, vs := range fields {
				v[k] = vs
			}
			v.Set("user", "dev@example.com")
			resp, body := b.do(t, b.noFollow, http.MethodPost, loginURL.String(), v, nil)
			assert.Equal(t, http.StatusOK, resp.StatusCode, body)
			assert.Contains(t, body, "Allow")
		})
	})

	t.Run("consent form", func(t *testing.T) {
		b := newBrowser(t)
		action, fields := b.consentForm(t, api+"/", "dev@example.com")
		for name, change := range map[string]func(url.Values){
			"no CSRF token":                     func(v url.Values) { v.Del("csrf_token") },
			"the user changed":                  func(v url.Values) { v.Set("user", "outsider@example.com") },
			"the login form's token":            func(v url.Values) { v.Set("csrf_token", w.sessions.formToken("x", PathLogin, api+"/")) },
			"next_url changed to another app":   func(v url.Values) { v.Set("next_url", caller+"/") },
			"next_url changed to another place": func(v url.Values) { v.Set("next_url", api+"/elsewhere") },
		} {
			t.Run(name, func(t *testing.T) {
				v := url.Values{}
				for k, vs := range fields {
					v[k] = append([]string(nil), vs...)
				}
				v.Set("decision", "allow")
				change(v)
				resp, body := b.do(t, b.noFollow, http.MethodPost, action.String(), v, nil)
				assert.Equal(t, http.StatusForbidden, resp.StatusCode, body)
				assert.Empty(t, resp.Header.Get("Location"))
			})
		}
		t.Run("cancel", func(t *testing.T) {
			v := url.Values{}
			for k, vs := range fields {
				v[k] = vs
			}
			v.Set("decision", "deny")
			resp, body := b.do(t, b.noFollow, http.MethodPost, action.String(), v, nil)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Contains(t, body, "did not allow api-app")
			assert.Empty(t, resp.Header.Get("Location"))
		})
	})

	t.Run("one-time code", func(t *testing.T) {
		b := newBrowser(t)
		callback := b.callbackURL(t, api+"/", "dev@example.com")
		require.True(t, strings.HasPrefix(callback, api+PathAuthCallback+"?code="), callback)
		code := mustParse(t, callback).Query().Get("code")

		resp, _ := b.do(t, b.noFollow, http.MethodGet, callback, nil, nil)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		resp, _ = b.get(t, api+"/api/whoami")
		require.Equal(t, http.StatusOK, resp.StatusCode, "signed in")

		attacker := newBrowser(t)
		resp, body := attacker.get(t, callback)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, body, "used twice")
		resp, _ = b.get(t, api+"/api/whoami")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a replay ends the session the code opened")

		foreign := newBrowser(t).callbackURL(t, api+"/", "dev@example.com")
		resp, body = newBrowser(t).get(t, caller+PathAuthCallback+"?"+mustParse(t, foreign).RawQuery)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, body, "another app")
		resp, _ = newBrowser(t).get(t, foreign)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "presented at another app, the code is spent")

		late := newBrowser(t)
		lateCallback := late.callbackURL(t, api+"/", "dev@example.com")
		w.sessions.setClock(func() time.Time { return time.Now().Add(signInCodeLifetime + time.Second) })
		resp, body = late.get(t, lateCallback)
		w.sessions.setClock(time.Now)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, body, "expired")

		for _, bad := range []string{"", "not-a-code", code + "x"} {
			resp, _ = newBrowser(t).get(t, api+PathAuthCallback+"?code="+url.QueryEscape(bad))
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, bad)
		}
		assert.NotContains(t, logs.String(), code)
	})

	t.Run("session", func(t *testing.T) {
		b := newBrowser(t)
		resp, _ := b.signIn(t, api+"/", "dev@example.com")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var cookie *http.Cookie
		for _, c := range b.jar.Cookies(mustParse(t, api)) {
			if c.Name == sessionCookieName(api) {
				cookie = c
			}
		}
		require.NotNil(t, cookie)

		resp, _ = call(t, http.MethodGet, caller+"/api/x", http.Header{"Cookie": {sessionCookieName(caller) + "=" + cookie.Value}})
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a session works at its own app only")
		resp, _ = call(t, http.MethodGet, api+"/api/x", http.Header{"Cookie": {cookie.Name + "=forged"}})
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a forged cookie")
		resp, _ = call(t, http.MethodGet, api+"/", http.Header{"Cookie": {cookie.Name + "=forged"}})
		assert.Equal(t, http.StatusFound, resp.StatusCode, "a forged cookie on a page: to the login page")

		resp, _ = call(t, http.MethodGet, api+"/api/x", http.Header{"Cookie": {cookie.Name + "=" + cookie.Value},
			"Authorization": {"Bearer not-a-jwt"}})
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "on /api/ a bearer token, when sent, is what counts")

		w.sessions.setClock(func() time.Time { return time.Now().Add(DefaultTokenLifetime + time.Second) })
		t.Cleanup(func() { w.sessions.setClock(time.Now) })
		resp, body := b.do(t, b.noFollow, http.MethodGet, api+"/api/whoami", nil, nil)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "expired with the token lifetime")
		var e jsonhttp.Error
		require.NoError(t, json.Unmarshal([]byte(body), &e), body)
		assert.Contains(t, e.Message, "expired")
		resp, _ = b.do(t, b.noFollow, http.MethodGet, api+"/", nil, nil)
		assert.Equal(t, http.StatusFound, resp.StatusCode)
		assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), w.URL()+PathLogin+"?next_url="))
	})
}

// Scopes added to the app after a person consented: the page asks for consent again; /api/ is refused as a token
// without them is.
func TestBrowserSessionAfterTheScopesChange(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app")
	b := newBrowser(t)
	resp, _ := b.signIn(t, api+"/", "dev@example.com")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	w.apps.mu.Lock()
	rec := w.apps.byName["api-app"]
	rec.proxy.settings.Store(rec.settings().with(func(s *appSettings) {
		s.userAPIScopes = append(s.userAPIScopes, "serving.serving-endpoints")
	}))
	w.apps.mu.Unlock()

	resp, body := b.get(t, api+"/api/whoami")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	assert.Contains(t, body, "serving.serving-endpoints")
	resp, body = b.get(t, api+"/")
	assert.Equal(t, PathLogin, resp.Request.URL.Path, "asked to sign in, and consent, again")
	assert.Contains(t, body, "Sign in to api-app")
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u
}

// A page's script can set a cookie of the session's name with a longer path (not over the proxy's HttpOnly cookie,
// but beside it), which the browser then sends first on that path. The proxy takes the live session among the
// cookies of the name: the forged one signs nobody out, and the session stays.
func TestAForgedSessionCookieSignsNobodyOut(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("caller-app", echoApp(t).URL))
	app := w.AppURL("caller-app")
	b := newBrowser(t)
	resp, body := b.signIn(t, app+"/", "dev@example.com")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)

	name := sessionCookieName(app)
	b.jar.SetCookies(mustParse(t, app+"/x/"), []*http.Cookie{{Name: name, Value: "forged", Path: "/x"}})
	req, err := http.NewRequest(http.MethodGet, app+"/x/page", nil)
	require.NoError(t, err)
	for _, c := range b.jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	require.Equal(t, "forged", req.CookiesNamed(name)[0].Value, "the browser sends the longer path's cookie first")

	resp, body = b.do(t, b.noFollow, http.MethodGet, app+"/x/page", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "served as the signed-in user, not sent to sign in: %s", body)
	assert.Empty(t, resp.Header.Values("Set-Cookie"), "the proxy's session cookie is not cleared")
	resp, body = b.do(t, b.noFollow, http.MethodGet, app+"/", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "still signed in: %s", body)

	// Without a live session among them, the cookies of the name get the sign-in page, and the proxy's is cleared.
	resp, _ = b.signOut(t, app)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = b.do(t, b.noFollow, http.MethodGet, app+"/x/page", nil, nil)
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), w.URL()+PathLogin), resp.Header.Get("Location"))
}

// An app's Set-Cookie for the emulator's names never reaches the browser, named or nameless ("=NAME=VALUE", which
// some clients take for a cookie NAME).
func TestAppSetCookiesForTheEmulatorsNamesAreDropped(t *testing.T) {
	t.Parallel()
	h := http.Header{"Set-Cookie": {
		"theme=dark; Path=/",
		emulatorCookiePrefix + "session-1=forged; Path=/",
		" " + emulatorCookiePrefix + "login=x",
		"=" + emulatorCookiePrefix + "session-1=forged",
		"= " + emulatorCookiePrefix + "session-1=forged",
		"=plain",
	}}
	withoutEmulatorSetCookies(h)
	assert.Equal(t, []string{"theme=dark; Path=/", "=plain"}, h.Values("Set-Cookie"))
}
