package workspace

import (
	"net/http"
	"testing"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RevokeTokens stops every token issued to a principal so far, wherever it is presented: the SDK's calls to the
// workspace, the proxy (whose cache of verified tokens knows the token already), the token the proxy forwarded for a
// user, the user's refresh token and browser session. Other principals' tokens, and tokens issued afterwards, work.
func TestRevokeTokens(t *testing.T) {
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
	_, err = sdkClient(t, w, forwarded).CurrentUser.Me(t.Context(), iam.MeRequest{})
	require.NoError(t, err, "the forwarded token works at SCIM Me")
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
	_, err = sdkClient(t, w, forwarded).CurrentUser.Me(t.Context(), iam.MeRequest{})
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
		_, err = sdkClient(t, w, again).CurrentUser.Me(t.Context(), iam.MeRequest{})
		assert.NoError(t, err, "the new forwarded token works")
	})
	t.Run("by application id or name", func(t *testing.T) {
		sp := w.State().ServicePrincipals["api-app"]
		for _, name := range []string{sp.ClientID, "api-app"} {
			token := m2mToken(t, w, "api-app")
			require.NoError(t, w.RevokeTokens(name))
			_, err := sdkClient(t, w, token).CurrentUser.Me(t.Context(), iam.MeRequest{})
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
