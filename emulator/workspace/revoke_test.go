package workspace

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/databricks/databricks-sdk-go/service/sql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// RevokeTokens stops every token issued to a principal so far, wherever it is presented: the SDK's calls to the
// workspace, the proxy (whose cache of verified tokens knows the token already), the token the proxy forwarded for a
// user, the user's refresh token and browser session. Other principals' tokens, and tokens issued afterwards, work.
func TestRevokeTokens(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app")

	m2m := m2mToken(t, w, "external-service")
	requireCached(t, w, m2m)
	_, err := sdkClient(t, w, m2m).Apps.Get(t.Context(), apps.GetAppRequest{Name: "api-app"})
	require.NoError(t, err)

	login := pkceLogin(t, w, "offline_access all-apis")
	user, refresh := login["access_token"].(string), login["refresh_token"].(string)
	forwarded := requireCached(t, w, user)
	_, err = sdkClient(t, w, forwarded).Warehouses.ListAll(t.Context(), sql.ListWarehousesRequest{})
	require.NoError(t, err, "the forwarded token works at the workspace")
	b := newBrowser(t)
	resp, body := b.signIn(t, api+"/", "dev@example.com")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)

	require.NoError(t, w.RevokeTokens("external-service"))
	_, err = sdkClient(t, w, m2m).Apps.Get(t.Context(), apps.GetAppRequest{Name: "api-app"})
	assert.Equal(t, http.StatusUnauthorized, apiError(t, err).StatusCode)
	resp, refused := call(t, http.MethodGet, api+"/api/whoami", bearer(m2m))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the proxy refuses the token it had verified")
	assert.Contains(t, string(refused), "revoked")
	resp, _ = call(t, http.MethodGet, api+"/api/whoami", bearer(user))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "another principal's tokens still work")

	require.NoError(t, w.RevokeTokens("dev@example.com"))
	resp, _ = call(t, http.MethodGet, api+"/api/whoami", bearer(user))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	_, err = sdkClient(t, w, forwarded).Warehouses.ListAll(t.Context(), sql.ListWarehousesRequest{})
	assert.Equal(t, http.StatusUnauthorized, apiError(t, err).StatusCode, "the forwarded token is the user's too")
	status, _, answer := refreshWith(t, w, refresh)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, invalidRefresh, answer)
	resp, _ = b.do(t, b.noFollow, http.MethodGet, api+"/", nil, nil)
	assert.Equal(t, http.StatusFound, resp.StatusCode, "the browser session ended: back to the login page")

	t.Run("tokens issued afterwards work", func(t *testing.T) {
		m2m := m2mToken(t, w, "external-service")
		_, err := sdkClient(t, w, m2m).Apps.Get(t.Context(), apps.GetAppRequest{Name: "api-app"})
		assert.NoError(t, err)
		again := requireCached(t, w, pkceLogin(t, w, "offline_access all-apis")["access_token"].(string))
		assert.NotEqual(t, forwarded, again)
		_, err = sdkClient(t, w, again).Warehouses.ListAll(t.Context(), sql.ListWarehousesRequest{})
		assert.NoError(t, err, "the new forwarded token works")
	})
	t.Run("by application id or name", func(t *testing.T) {
		sp := w.State().ServicePrincipals["api-app"]
		for _, name := range []string{sp.ClientID, "api-app"} {
			token := m2mToken(t, w, "api-app")
			require.NoError(t, w.RevokeTokens(name))
			_, err := sdkClient(t, w, token).Warehouses.ListAll(t.Context(), sql.ListWarehousesRequest{})
			assert.Equal(t, http.StatusUnauthorized, apiError(t, err).StatusCode, name)
		}
	})
	t.Run("an unknown principal", func(t *testing.T) {
		err := w.RevokeTokens("nobody@example.com")
		require.Error(t, err)
		assert.Contains(t, err.Error(), `no user or service principal "nobody@example.com"`)
	})
	for _, secret := range []string{m2m, user, refresh, forwarded} {
		assert.NotContains(t, logs.String(), secret)
	}
}

// A revocation stops what was granted before it, however late that is used: an authorization code redeemed after
// it is refused, and a code exchange or a refresh that straddles it yields tokens that are refused. Codes and
// refresh tokens granted afterwards work.
func TestRevocationStopsCodesAndRefreshesIssuedBefore(t *testing.T) {
	t.Parallel()
	const dev = "dev@example.com"
	t.Run("an authorization code redeemed after", func(t *testing.T) {
		w, logs := startWorkspace(t, Options{})
		code, verifier := pkceAuthorize(t, w, "offline_access all-apis")
		require.NoError(t, w.RevokeTokens(dev))
		status, body := redeemCode(t, w, code, verifier)
		assert.Equal(t, http.StatusBadRequest, status)
		assert.JSONEq(t, `{"error":"invalid_grant","error_description":"the authorization code was revoked, `+
			`with every token of its user, before it was exchanged; log in again"}`, string(body))

		login := pkceLogin(t, w, "offline_access all-apis")
		assertWorksAtTheWorkspace(t, w, login["access_token"].(string), "a code issued after the revocation")
		status, answer, _ := refreshWith(t, w, login["refresh_token"].(string))
		require.Equal(t, http.StatusOK, status)
		assertWorksAtTheWorkspace(t, w, answer.AccessToken, "its refresh")
		assert.NotContains(t, logs.String(), code)
	})
	t.Run("a code exchange straddling it", func(t *testing.T) {
		w, _ := startWorkspace(t, Options{})
		revokeWhileSigning := revokesWhileSigning(t, w, dev)
		code, verifier := pkceAuthorize(t, w, "offline_access all-apis")
		revokeWhileSigning()
		status, body := redeemCode(t, w, code, verifier)
		require.Equal(t, http.StatusOK, status, "the code was checked before the revocation")
		var answer oauthAnswer
		require.NoError(t, json.Unmarshal(body, &answer))
		assertRevokedAtTheWorkspace(t, w, answer.AccessToken)
		status, _, refused := refreshWith(t, w, answer.RefreshToken)
		assert.Equal(t, http.StatusBadRequest, status)
		assert.JSONEq(t, invalidRefresh, refused)

		assertWorksAtTheWorkspace(t, w, pkceLogin(t, w, "all-apis")["access_token"].(string), "a login afterwards")
	})
	for _, singleUse := range []bool{false, true} {
		name := "a refresh straddling it"
		if singleUse {
			name += ", single-use refresh tokens"
		}
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Workspace.OAuth.SingleUseRefreshTokens = singleUse
			w, logs := startWorkspace(t, Options{Config: cfg})
			revokeWhileSigning := revokesWhileSigning(t, w, dev)
			refresh := pkceLogin(t, w, "offline_access all-apis")["refresh_token"].(string)
			revokeWhileSigning()
			status, answer, body := refreshWith(t, w, refresh)
			require.Equal(t, http.StatusOK, status, "the refresh token was checked before the revocation: %s", body)
			assertRevokedAtTheWorkspace(t, w, answer.AccessToken)
			for _, r := range []string{refresh, answer.RefreshToken} {
				status, _, refused := refreshWith(t, w, r)
				assert.Equal(t, http.StatusBadRequest, status)
				assert.JSONEq(t, invalidRefresh, refused)
			}

			again := pkceLogin(t, w, "offline_access all-apis")["refresh_token"].(string)
			status, answer, _ = refreshWith(t, w, again)
			require.Equal(t, http.StatusOK, status)
			assertWorksAtTheWorkspace(t, w, answer.AccessToken, "a refresh token issued after the revocation")
			for _, secret := range []string{refresh, again, answer.AccessToken} {
				assert.NotContains(t, logs.String(), secret)
			}
		})
	}
}

// A sign-in code the login page issued before a revocation of the user's tokens opens no session after it: the
// browser is sent to sign in again, and that sign-in works, down to the token the proxy forwards.
func TestRevocationStopsSignInCodesIssuedBefore(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app")
	b := newBrowser(t)
	callback := b.callbackURL(t, api+"/reports", "dev@example.com")
	u, err := url.Parse(callback)
	require.NoError(t, err)
	code := u.Query().Get("code")
	require.NotEmpty(t, code)

	require.NoError(t, w.RevokeTokens("dev@example.com"))
	resp, body := b.do(t, b.noFollow, http.MethodGet, callback, nil, nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body, "the sign-in code was revoked, with every token of its user, before it was used")
	assert.Empty(t, resp.Cookies(), "no session cookie")
	resp, _ = b.do(t, b.noFollow, http.MethodGet, api+"/reports", nil, nil)
	assert.Equal(t, http.StatusFound, resp.StatusCode, "no session: back to the login page")

	resp, body = b.signIn(t, api+"/reports", "dev@example.com")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var seen echoed
	require.NoError(t, json.Unmarshal([]byte(body), &seen))
	forwarded := seen.Headers.Get(identity.HeaderAccessToken)
	require.NotEmpty(t, forwarded)
	assertWorksAtTheWorkspace(t, w, forwarded, "the token forwarded for a session opened after the revocation")
	assert.NotContains(t, logs.String(), code)
}

// A forwarded token the proxy signs for a caller whose tokens are revoked meanwhile is refused like the caller's
// token: it carries the generation of the caller's token, not the one that began after the proxy checked it.
func TestRevocationStopsForwardedTokensSignedDuringIt(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	user := pkceLogin(t, w, "all-apis")["access_token"].(string)
	r := httptest.NewRequest(http.MethodGet, "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+user)
	res, terr := w.auth.authenticate(r) // the proxy's check of the caller, before the revocation
	require.Nil(t, terr)
	require.NoError(t, w.RevokeTokens("dev@example.com"))

	p := w.apps.byName["api-app"].proxy
	forwarded, err := p.forwardedToken(res, p.settings.Load(), p.apps.settings.allowed.Load())
	require.NoError(t, err)
	assertRevokedAtTheWorkspace(t, w, forwarded)
}

// revokesWhileSigning returns a function that makes the next token the workspace signs straddle a revocation of
// subject's tokens: it is revoked as the issuer reads the clock to sign, after the grant the token stands for was
// checked. Call it before any request, as fakeClock, since it replaces the issuer's clock.
func revokesWhileSigning(t *testing.T, w *Workspace, subject string) (revokeWhileSigning func()) {
	t.Helper()
	var armed atomic.Bool
	w.auth.issuer.now = func() time.Time {
		if armed.CompareAndSwap(true, false) {
			assert.NoError(t, w.RevokeTokens(subject))
		}
		return time.Now()
	}
	return func() { armed.Store(true) }
}

func assertWorksAtTheWorkspace(t *testing.T, w *Workspace, token, what string) {
	t.Helper()
	resp, body := call(t, http.MethodGet, w.URL()+PathWarehouses, bearer(token))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", what, body)
}

func assertRevokedAtTheWorkspace(t *testing.T, w *Workspace, token string) {
	t.Helper()
	require.NotEmpty(t, token)
	resp, body := call(t, http.MethodGet, w.URL()+PathWarehouses, bearer(token))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, string(body), "revoked")
}
