package workspace

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// A scope the workspace does not know, or one that is not a scope at all, gets invalid_scope wherever it is asked
// for: redirected back from authorize, and from the token endpoint for every grant, instead of a token.
func TestUnknownScopesAreRefused(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Workspace.AllowedAppsUserAPIScopes = append(slices.Clone(AppUserScopes), "custom.widgets:read")
	cfg.Apps[0].UserAPIScopes = append(cfg.Apps[0].UserAPIScopes, "custom.widgets:read")
	w, _ := startWorkspace(t, Options{Config: cfg})
	sp, _ := w.dir.servicePrincipalByName("external-service")

	authorize := func(scope string) url.Values {
		q := url.Values{"client_id": {CLIClientID}, "response_type": {"code"}, "redirect_uri": {"http://localhost:8020"},
			"state": {"s"}, "code_challenge": {s256(strings.Repeat("v", 43))}, "code_challenge_method": {"S256"}, "scope": {scope}}
		resp, _ := call(t, http.MethodGet, w.URL()+PathAuthorize+"?"+q.Encode(), nil)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		return loc.Query()
	}
	clientCredentials := func(scope string) (int, oauthAnswer) {
		return tokenRequest(t, w, url.Values{"grant_type": {"client_credentials"}, "client_id": {sp.ApplicationID},
			"client_secret": {sp.Secret}, "scope": {scope}})
	}
	tests := []struct {
		scope string
		known bool
	}{
		{"all-apis", true},
		{"offline_access sql file.files", true},
		{"openid profile email iam.access-control:read catalog.tables:read", true},
		{"custom.widgets:read", true}, // listed by an app of the model
		{"all-apis bogus", false},
		{"sqll", false},
		{"ALL-APIS", false},
		{"custom.widgets:write", false},
		{"sql <script>", false}, // malformed
		{"sql,file.files", false},
	}
	for _, tt := range tests {
		t.Run(tt.scope, func(t *testing.T) {
			q := authorize(tt.scope)
			status, answer := clientCredentials(tt.scope)
			if tt.known {
				assert.NotEmpty(t, q.Get("code"))
				assert.Empty(t, q.Get("error"))
				assert.Equal(t, http.StatusOK, status, answer.Description)
				return
			}
			assert.Empty(t, q.Get("code"))
			assert.Equal(t, "invalid_scope", q.Get("error"))
			assert.Equal(t, "s", q.Get("state"))
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "invalid_scope", answer.Error)
			assert.NotEmpty(t, answer.Description)
		})
	}

	t.Run("refresh asks for fewer scopes, or unknown or more", func(t *testing.T) {
		refresh := pkceLogin(t, w, "offline_access sql file.files")["refresh_token"].(string)
		for _, tt := range []struct {
			scope, error string
		}{
			{"sql", ""},
			{"sql file.files", ""},
			{"sql bogus", "invalid_scope"},
			{"sql dashboards.genie", "invalid_scope"}, // known, but not granted
			{"all-apis", "invalid_scope"},
		} {
			status, answer := tokenRequest(t, w, url.Values{"grant_type": {"refresh_token"}, "client_id": {CLIClientID},
				"refresh_token": {refresh}, "scope": {tt.scope}})
			if tt.error != "" {
				assert.Equal(t, http.StatusBadRequest, status, tt.scope)
				assert.Equal(t, tt.error, answer.Error, tt.scope)
				continue
			}
			require.Equal(t, http.StatusOK, status, answer.Description)
			claims, err := identity.DecodeClaims(answer.AccessToken)
			require.NoError(t, err)
			assert.Equal(t, strings.Fields(tt.scope), claims.Scopes, "a refresh may narrow the scopes")
		}
	})

	t.Run("code exchange with an unknown scope", func(t *testing.T) {
		q := authorize("offline_access sql")
		status, answer := tokenRequest(t, w, url.Values{"grant_type": {"authorization_code"}, "client_id": {CLIClientID},
			"code": {q.Get("code")}, "redirect_uri": {"http://localhost:8020"}, "code_verifier": {strings.Repeat("v", 43)},
			"scope": {"bogus"}})
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Equal(t, "invalid_scope", answer.Error)
	})
}

// oauthAnswer is a token endpoint answer: a token or an OAuth error.
type oauthAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

func tokenRequest(t *testing.T, w *Workspace, form url.Values) (int, oauthAnswer) {
	t.Helper()
	status, body := postForm(t, w.URL()+PathToken, form)
	var a oauthAnswer
	require.NoError(t, json.Unmarshal(body, &a), string(body))
	return status, a
}
