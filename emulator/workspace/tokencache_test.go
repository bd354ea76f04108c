package workspace

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// fakeClock makes the issuer read the time from the returned clock, set before any request so that the workspace's
// goroutines only ever read it.
func fakeClock(t *testing.T, w *Workspace) *atomic.Int64 {
	t.Helper()
	var clock atomic.Int64
	clock.Store(time.Now().Truncate(time.Second).UnixNano())
	w.auth.issuer.now = func() time.Time { return time.Unix(0, clock.Load()) }
	return &clock
}

// forwardedTo calls the app's proxy with token, requires a 200 and returns the forwarded user token the app saw.
func forwardedTo(t *testing.T, w *Workspace, token string) string {
	t.Helper()
	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(token))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var seen echoed
	require.NoError(t, json.Unmarshal(body, &seen))
	return seen.Headers.Get(identity.HeaderAccessToken)
}

// requireCached calls the proxy twice with token and requires the second call to be answered from the cache of
// verified tokens, so that what a test checks next is the cached verification.
func requireCached(t *testing.T, w *Workspace, token string) (forwarded string) {
	t.Helper()
	first := forwardedTo(t, w, token)
	hits := w.auth.issuer.verified.hits.Load()
	second := forwardedTo(t, w, token)
	require.Greater(t, w.auth.issuer.verified.hits.Load(), hits, "the second request is answered from the cache")
	require.Equal(t, first, second, "one forwarded token per caller token")
	return second
}

func TestCachedVerificationStopsAtExpiry(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	clock := fakeClock(t, w)
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	m2m := m2mToken(t, w, "external-service")
	user := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	requireCached(t, w, m2m)
	forwarded := requireCached(t, w, user)
	require.NotEmpty(t, forwarded)

	clock.Add(int64(DefaultTokenLifetime - time.Second))
	resp, _ := call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(m2m))
	require.Equal(t, http.StatusOK, resp.StatusCode, "a second before expiry")

	clock.Add(int64(time.Second))
	for name, token := range map[string]string{"M2M": m2m, "user": user} {
		resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(token))
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
		assert.Contains(t, string(body), "expired", name)
	}
	resp, body := call(t, http.MethodGet, w.URL()+PathWarehouses, bearer(forwarded))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the forwarded token expires with the caller's")
	assert.Contains(t, string(body), "expired")
}

func TestCachedVerificationStopsWhenItsGrantIsRevoked(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	q := authorizeOnce(t, w)
	exchange := func() (int, oauthAnswer) {
		return tokenRequest(t, w, url.Values{"grant_type": {"authorization_code"}, "client_id": {CLIClientID},
			"code": {q.Get("code")}, "redirect_uri": {"http://localhost:8020"}, "code_verifier": {strings.Repeat("v", 43)}})
	}
	status, login := exchange()
	require.Equal(t, http.StatusOK, status, login.Description)
	forwarded := requireCached(t, w, login.AccessToken)
	resp, _ := call(t, http.MethodGet, w.URL()+PathWarehouses, bearer(forwarded))
	require.Equal(t, http.StatusOK, resp.StatusCode)

	status, _ = exchange() // the replay revokes the grant
	require.Equal(t, http.StatusBadRequest, status)

	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(login.AccessToken))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, string(body), "revoked")
	resp, body = call(t, http.MethodGet, w.URL()+PathWarehouses, bearer(forwarded))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the forwarded token shares the grant")
	assert.Contains(t, string(body), "revoked")
}

func TestCachedVerificationStopsWhenTheKeyRotates(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	user := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	forwarded := requireCached(t, w, user)

	require.NoError(t, w.auth.issuer.rotateKey())
	for name, target := range map[string]string{"proxy": w.AppURL("api-app") + "/api/whoami", "the warehouses API": w.URL() + PathWarehouses} {
		token := user
		if name == "the warehouses API" {
			token = forwarded
		}
		resp, body := call(t, http.MethodGet, target, bearer(token))
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
		assert.Contains(t, string(body), "not issued by this workspace", name)
	}
	assert.NotEmpty(t, forwardedTo(t, w, pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)),
		"a token signed with the new key works")
}

// Changes made through the Apps and Permissions APIs apply from the next request, however warm the caches are: the
// forwarded token carries the app's new user_api_scopes, and a removed CAN USE refuses a cached token.
func TestCachedTokensSeeSettingsChangesOnTheNextRequest(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	dev := sdkClient(t, w, managerToken(t, w))
	user := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	m2m := m2mToken(t, w, "external-service")

	before := requireCached(t, w, user)
	claims, err := identity.DecodeClaims(before)
	require.NoError(t, err)
	assert.Equal(t, []string{"sql", "file.files", "dashboards.genie"}, claims.Scopes)
	assert.NotEqual(t, before, forwardedTo(t, w, managerToken(t, w)), "another caller token gets its own")

	_, err = dev.Apps.Update(t.Context(), apps.UpdateAppRequest{Name: "api-app",
		App: apps.App{Name: "api-app", UserApiScopes: []string{"sql"}}})
	require.NoError(t, err)
	after := forwardedTo(t, w, user)
	claims, err = identity.DecodeClaims(after)
	require.NoError(t, err)
	assert.Equal(t, []string{"sql"}, claims.Scopes, "the next request's forwarded token has the new scopes")
	assert.Equal(t, after, forwardedTo(t, w, user), "and is then reused")

	requireCached(t, w, m2m)
	_, err = dev.Apps.SetPermissions(t.Context(), apps.AppPermissionsRequest{AppName: "api-app",
		AccessControlList: []apps.AppAccessControlRequest{
			{UserName: "dev@example.com", PermissionLevel: apps.AppPermissionLevelCanManage}}})
	require.NoError(t, err)
	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(m2m))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, string(body))
}

func TestExpiringCache(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	c := newExpiringCache[int, string](8)
	c.put(1, "one", now.Add(time.Second), now)
	v, ok := c.get(1, now)
	assert.True(t, ok)
	assert.Equal(t, "one", v)
	_, ok = c.get(1, now.Add(time.Second))
	assert.False(t, ok, "an entry is gone at its expiry")
	_, ok = c.get(2, now)
	assert.False(t, ok)

	t.Run("full, it forgets the expired entries first", func(t *testing.T) {
		c := newExpiringCache[int, string](8)
		for k := range 8 {
			expires := now.Add(time.Hour)
			if k%2 == 0 {
				expires = now.Add(-time.Second)
			}
			c.put(k, "v", expires, now)
		}
		c.put(100, "new", now.Add(time.Hour), now)
		assert.Equal(t, 5, c.len())
		for _, k := range []int{1, 3, 5, 7, 100} {
			_, ok := c.get(k, now)
			assert.True(t, ok, "entry %d", k)
		}
	})

	t.Run("full, it forgets the entries that expire at that very moment too, as get does", func(t *testing.T) {
		c := newExpiringCache[int, string](4)
		for k := range 4 {
			expires := now.Add(time.Hour)
			if k%2 == 0 {
				expires = now
			}
			c.put(k, "v", expires, now)
		}
		c.put(100, "new", now.Add(time.Hour), now)
		assert.Equal(t, 3, c.len(), "the two entries get no longer returns are the ones forgotten")
	})

	t.Run("a flood of entries stays within the bound", func(t *testing.T) {
		c := newExpiringCache[int, string](8)
		for k := range 1000 {
			c.put(k, "v", now.Add(time.Hour), now)
			require.LessOrEqual(t, c.len(), 8)
		}
		_, ok := c.get(999, now)
		assert.True(t, ok, "the newest entry is kept")
	})
}

// A caller the proxy admitted without a bearer token (so without a hash to key by) never gets another's
// forwarded token from the cache.
func TestForwardedTokenNeedsACallerTokenToBeCached(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	p := w.apps.byName["api-app"].proxy
	dev, _ := w.dir.subject("dev@example.com")
	res := &authResult{principal: dev, claims: accessClaims{ClientID: CLIClientID,
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}}
	first, err := p.forwardedToken(res, p.settings.Load(), p.apps.settings.allowed.Load())
	require.NoError(t, err)
	second, err := p.forwardedToken(res, p.settings.Load(), p.apps.settings.allowed.Load())
	require.NoError(t, err)
	assert.NotEqual(t, first, second)
	assert.Zero(t, p.forwarded.len())
}
