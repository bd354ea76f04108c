package workspace

import (
	"net/http"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// ScopeCurrentUser is the scope SCIM Me needs, unless the token has all-apis.
const ScopeCurrentUser = "iam.current-user:read"

// handleSCIMMe answers "who am I" for a valid token of this workspace that holds iam.current-user:read or all-apis:
// M2M and CLI tokens (all-apis), and the proxy's forwarded tokens when the app's scopes include it.
func (sc *scim) handleSCIMMe() http.HandlerFunc {
	type email struct {
		Value   string `json:"value"`
		Type    string `json:"type"`
		Primary bool   `json:"primary"`
	}
	type response struct {
		Schemas       []string `json:"schemas"`
		ID            string   `json:"id"`
		UserName      string   `json:"userName"`
		DisplayName   string   `json:"displayName"`
		Active        bool     `json:"active"`
		Emails        []email  `json:"emails,omitempty"`
		ApplicationID string   `json:"applicationId,omitempty"`
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		auth := authFrom(r.Context())
		if missing := coversScopes(auth.claims.scopes(), []string{ScopeCurrentUser}); len(missing) > 0 {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
				Message: "the token lacks the scope " + ScopeCurrentUser + " that SCIM Me needs",
				Fix:     "for an app's forwarded token, add " + ScopeCurrentUser + " to the app's user_api_scopes"})
			return
		}
		p := auth.principal
		resp := response{
			Schemas: []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
			ID:      p.ID, UserName: p.UserName, DisplayName: p.DisplayName, Active: true,
		}
		if p.Kind == identity.KindUser {
			resp.Emails = []email{{Value: p.Email, Type: "work", Primary: true}}
		} else {
			resp.ApplicationID = p.UserName
		}
		jsonhttp.Write(rw, http.StatusOK, resp)
	}
}

// writeUnauthorized sends a 401 in the Databricks shape with the WWW-Authenticate challenge OAuth clients expect.
// invalidToken says a token was sent but refused, which RFC 6750 marks with error="invalid_token".
func writeUnauthorized(rw http.ResponseWriter, reason string, invalidToken bool) {
	challenge := `Bearer realm="databricks"`
	if invalidToken {
		challenge += `, error="invalid_token"`
	}
	rw.Header().Set("WWW-Authenticate", challenge)
	jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusUnauthorized, Code: jsonhttp.CodeUnauthenticated,
		Message: reason, Fix: "send a valid OAuth access token of this workspace: Authorization: Bearer <token>"})
}
