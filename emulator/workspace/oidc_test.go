package workspace

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

func TestDiscovery(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	resp, body := call(t, http.MethodGet, w.URL()+PathHostMetadata, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var meta map[string]string
	require.NoError(t, json.Unmarshal(body, &meta))
	assert.Equal(t, map[string]string{"oidc_endpoint": w.URL() + "/oidc", "workspace_id": "1234567890123456",
		"account_id": "00000000-0000-4000-8000-000000000000", "cloud": "AWS", "host_type": "workspace"}, meta)

	resp, body = call(t, http.MethodGet, w.URL()+PathOIDCDiscovery, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `"token_endpoint":"`+w.URL()+PathToken+`"`)
	assert.Contains(t, string(body), `"authorization_endpoint":"`+w.URL()+PathAuthorize+`"`)
	assert.EqualValues(t, 1, w.RequestCount(PathOIDCDiscovery))

	resp, body = call(t, http.MethodGet, w.URL()+"/api/2.0/clusters/list", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Contains(t, string(body), jsonhttp.CodeEndpointNotFound)
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	sp, _ := w.dir.servicePrincipalByName("external-service")
	tests := []struct {
		name   string
		form   url.Values
		basic  []string
		status int
		error  string
	}{
		{"no grant type", url.Values{}, nil, 400, "invalid_request"},
		{"unknown grant type", url.Values{"grant_type": {"password"}}, nil, 400, "unsupported_grant_type"},
		{"wrong secret, Basic", url.Values{"grant_type": {"client_credentials"}}, []string{sp.ApplicationID, "wrong"}, 401, "invalid_client"},
		{"unknown client, form", url.Values{"grant_type": {"client_credentials"}, "client_id": {"nobody"}, "client_secret": {"x"}}, nil, 401, "invalid_client"},
		{"credentials twice", url.Values{"grant_type": {"client_credentials"}, "client_secret": {sp.Secret}}, []string{sp.ApplicationID, sp.Secret}, 400, "invalid_request"},
		{"code missing verifier", url.Values{"grant_type": {"authorization_code"}, "client_id": {CLIClientID}, "code": {"x"}, "redirect_uri": {"http://localhost:1"}}, nil, 400, "invalid_request"},
		{"unknown code", url.Values{"grant_type": {"authorization_code"}, "client_id": {CLIClientID}, "code": {"x"}, "redirect_uri": {"http://localhost:1"}, "code_verifier": {strings.Repeat("a", 43)}}, nil, 400, "invalid_grant"},
		{"unknown refresh token", url.Values{"grant_type": {"refresh_token"}, "client_id": {CLIClientID}, "refresh_token": {"nope"}}, nil, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.URL()+PathToken, strings.NewReader(tt.form.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic != nil {
				req.SetBasicAuth(tt.basic[0], tt.basic[1])
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var e struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, tt.error, e.Error)
			assert.NotEmpty(t, e.Description)
		})
	}

	t.Run("form credentials work too", func(t *testing.T) {
		status, body := postForm(t, w.URL()+PathToken, url.Values{"grant_type": {"client_credentials"},
			"client_id": {sp.ApplicationID}, "client_secret": {sp.Secret}, "scope": {"all-apis"}})
		require.Equal(t, http.StatusOK, status, string(body))
		assert.Contains(t, string(body), `"token_type":"Bearer"`)
		assert.Contains(t, string(body), `"expires_in":3`) // 3599 or 3600
	})
}

func TestAuthorizeAndCodeExchange(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	base := url.Values{"client_id": {CLIClientID}, "response_type": {"code"}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"state": {"s"}, "code_challenge": {s256(strings.Repeat("v", 43))}, "code_challenge_method": {"S256"}, "scope": {"all-apis"}}
	with := func(k, v string) url.Values {
		q := url.Values{}
		for key, vs := range base {
			q[key] = vs
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q
	}
	tests := []struct {
		name     string
		query    url.Values
		status   int
		redirErr string // error= in the redirect, when the workspace redirects
	}{
		{"unknown client", with("client_id", "someone"), 400, ""},
		{"non-loopback redirect", with("redirect_uri", "http://evil.example.com/cb"), 400, ""},
		{"https redirect", with("redirect_uri", "https://localhost:8020"), 400, ""},
		{"no PKCE", with("code_challenge_method", ""), 302, "invalid_request"},
		{"plain PKCE", with("code_challenge_method", "plain"), 302, "invalid_request"},
		{"token response type", with("response_type", "token"), 302, "unsupported_response_type"},
		{"no scope", with("scope", ""), 302, "invalid_scope"},
		{"approved", base, 302, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := call(t, http.MethodGet, w.URL()+PathAuthorize+"?"+tt.query.Encode(), nil)
			require.Equal(t, tt.status, resp.StatusCode)
			if tt.status == http.StatusFound {
				loc, err := url.Parse(resp.Header.Get("Location"))
				require.NoError(t, err)
				assert.Equal(t, "127.0.0.1:9", loc.Host)
				assert.Equal(t, "s", loc.Query().Get("state"))
				assert.Equal(t, tt.redirErr, loc.Query().Get("error"))
			}
		})
	}

	t.Run("PKCE verifier must match, and a code works once", func(t *testing.T) {
		resp, _ := call(t, http.MethodGet, w.URL()+PathAuthorize+"?"+base.Encode(), nil)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		code := loc.Query().Get("code")
		exchange := func(verifier string) (int, []byte) {
			return postForm(t, w.URL()+PathToken, url.Values{"grant_type": {"authorization_code"}, "client_id": {CLIClientID},
				"code": {code}, "redirect_uri": {"http://127.0.0.1:9/cb"}, "code_verifier": {verifier}})
		}
		status, body := exchange(strings.Repeat("w", 43))
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Contains(t, string(body), "invalid_grant")
		status, body = exchange(strings.Repeat("v", 43))
		assert.Equal(t, http.StatusBadRequest, status, "a code is spent by its first use, even a failed one")
		assert.Contains(t, string(body), "invalid_grant")
	})

	t.Run("refresh", func(t *testing.T) {
		tok := pkceLogin(t, w, "offline_access sql")
		refresh, _ := tok["refresh_token"].(string)
		require.NotEmpty(t, refresh)
		assert.Equal(t, "sql", tok["scope"], "offline_access is not an API scope")
		status, body := postForm(t, w.URL()+PathToken, url.Values{"grant_type": {"refresh_token"},
			"client_id": {CLIClientID}, "refresh_token": {refresh}})
		require.Equal(t, http.StatusOK, status, string(body))
		var again map[string]any
		require.NoError(t, json.Unmarshal(body, &again))
		claims, err := identity.DecodeClaims(again["access_token"].(string))
		require.NoError(t, err)
		assert.Equal(t, []string{"sql"}, claims.Scopes)
		assert.Equal(t, "dev@example.com", claims.Subject)
		assert.Equal(t, CLIClientID, claims.ClientID)
		assert.Equal(t, time.Hour, claims.ExpiresAt.Sub(claims.IssuedAt))

		noOffline := pkceLogin(t, w, "all-apis")
		assert.Nil(t, noOffline["refresh_token"], "no refresh token without offline_access")
	})
}

func TestWorkspaceAPIs(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	dev := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	sp := m2mToken(t, w, "external-service")

	resp, body := call(t, http.MethodGet, w.URL()+PathSCIMMe, bearer(dev))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var me struct {
		ID, UserName, DisplayName string
		Emails                    []struct{ Value string }
	}
	require.NoError(t, json.Unmarshal(body, &me))
	assert.Equal(t, "1001", me.ID)
	assert.Equal(t, "dev@example.com", me.UserName)
	assert.Equal(t, "Dev Eloper", me.DisplayName)
	require.Len(t, me.Emails, 1)

	resp, body = call(t, http.MethodGet, w.URL()+PathSCIMMe, bearer(sp))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `"id":"2001"`)

	resp, body = call(t, http.MethodGet, w.URL()+PathSCIMMe, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, string(body), jsonhttp.CodeUnauthenticated)
	assert.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))

	resp, body = call(t, http.MethodGet, w.URL()+PathApps+"/api-app", bearer(sp))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var app map[string]any
	require.NoError(t, json.Unmarshal(body, &app))
	assert.Equal(t, w.AppURL("api-app"), app["url"])
	assert.Equal(t, "7b0d3c52-5e1a-4f0e-9c1d-2a6b8e4f1004", app["service_principal_client_id"])
	assert.EqualValues(t, 2004, app["service_principal_id"])
	assert.Equal(t, "api-app", app["service_principal_name"])
	assert.Equal(t, []any{"sql", "file.files", "dashboards.genie"}, app["user_api_scopes"])
	assert.Equal(t, AppStateUnavailable, app["app_status"].(map[string]any)["state"])

	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	_, body = call(t, http.MethodGet, w.URL()+PathApps+"/api-app", bearer(sp))
	assert.Contains(t, string(body), AppStateRunning)

	resp, body = call(t, http.MethodGet, w.URL()+PathApps+"/nope", bearer(sp))
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Contains(t, string(body), jsonhttp.CodeNotFound)

	resp, _ = call(t, http.MethodGet, w.URL()+PathApps+"/api-app", nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// A client id and secret given the wrong way round put the secret where the id belongs: the failure is logged with
// a known client id in full, and otherwise with its first characters only, so the secret never reaches the logs.
func TestClientAuthFailureNeverLogsTheSecret(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	sp, _ := w.dir.servicePrincipalByName("external-service")
	tests := []struct {
		name       string
		id, secret string
		basic      bool
		logged     string // the client_id the log line shows
	}{
		{"swapped, Basic", sp.Secret, sp.ApplicationID, true, sp.Secret[:4] + "…"},
		{"swapped, form", sp.Secret, sp.ApplicationID, false, sp.Secret[:4] + "…"},
		{"known id, secret of another", sp.ApplicationID, w.State().ServicePrincipals["caller-app"].ClientSecret, true, sp.ApplicationID},
		{"short unknown id", "abcd", "x", false, "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {"all-apis"}}
			if !tt.basic {
				form.Set("client_id", tt.id)
				form.Set("client_secret", tt.secret)
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.URL()+PathToken, strings.NewReader(form.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic {
				req.SetBasicAuth(url.QueryEscape(tt.id), url.QueryEscape(tt.secret))
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			assert.Contains(t, logs.String(), "client_id="+tt.logged+" ")
		})
	}
	for _, sp := range w.cfg.ServicePrincipals {
		if sp.Secret != "" { // federated-service has none
			assert.NotContains(t, logs.String(), sp.Secret)
		}
	}
}
