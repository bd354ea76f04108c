package workspace

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// authServer is the workspace's OAuth authorization server (/oidc/*, oidc.go and federation.go) and the identity
// providers that federation trusts (/idp/*, idp.go). It also authenticates the bearer tokens of every other route
// (requireToken) and of the app proxies. Its state lives in the parts it holds, each with its own lock: the issuer's
// keys, the grants (codes, refresh tokens, revocations), the federation's providers and policies.
type authServer struct {
	url        string // the workspace's, which the discovery documents name
	cfg        Config
	dir        *directory
	issuer     *issuer
	grants     *grants
	federation *federation
	sessions   *sessions // a revocation ends the user's browser sessions too
	logger     *slog.Logger
	// appScope reports whether an app of the workspace asks for a scope in its user_api_scopes now: such a scope
	// is known to authorize and the token endpoint.
	appScope func(scope string) bool
}

// authResult is who a bearer token speaks for.
type authResult struct {
	principal principal
	claims    accessClaims
	token     string
	tokenHash tokenHash // names the token in caches
	session   bool      // it is a browser session of an app, which its cookie authenticated (sessions.go)
}

// authenticate checks the request's bearer token. It returns (nil, nil) when the request carries none, so callers
// can tell "no token" (401 without a challenge) from "bad token" (401 with WWW-Authenticate).
func (a *authServer) authenticate(r *http.Request) (*authResult, *tokenError) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return nil, nil
	}
	if len(values) > 1 {
		return nil, &tokenError{"send one Authorization header"}
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, &tokenError{"the Authorization header must be \"Bearer <OAuth access token>\""}
	}
	h := hashToken(token)
	claims, terr := a.issuer.verifyHashed(token, h)
	if terr != nil {
		if hint := a.federationHint(token); hint != nil {
			return nil, hint
		}
		return nil, terr
	}
	// The principal and the revocations are looked up on every request, cached verification or not: a deleted app's
	// service principal, a replayed authorization code or a revocation of the principal's tokens stops them at once.
	p, known := a.dir.subject(claims.Subject)
	if !known {
		return nil, &tokenError{"the token's principal does not exist in this workspace"}
	}
	if a.grants.isRevoked(claims.Grant) {
		return nil, &tokenError{"the token was revoked: its authorization code was used twice; log in again"}
	}
	if a.grants.revokedSince(p.UserName, claims.Generation) {
		return nil, &tokenError{"the token was revoked, with every other token issued to " + p.UserName +
			" until then; get a new one"}
	}
	return &authResult{principal: p, claims: claims, token: token, tokenHash: h}, nil
}

// revokeTokens is [Workspace.RevokeTokens]: it revokes every token issued so far to a principal (a user's name, or a service principal's application
// id or name), as an admin does after a leak: its access tokens, the proxies' forwarded tokens of a user and its
// refresh tokens stop working at once, at the workspace's APIs and at every app's proxy, and a user's browser
// sessions end. What was granted before and is used after is refused too: an authorization code or a sign-in code
// not yet redeemed, and a redemption or a refresh under way, whose tokens carry the generation of their grant.
// Tokens issued afterwards work. Cached verifications do not matter: revocation is checked on every request (see
// authenticate).
func (a *authServer) revokeTokens(name string) error {
	p, ok := a.dir.named(name)
	if !ok {
		return fmt.Errorf("revoke tokens: no user or service principal %q in the workspace", name)
	}
	refreshTokens := a.grants.revokeSubject(p.UserName)
	browserSessions := a.sessions.endUser(p.UserName)
	a.logger.Info("revoked every token of a principal", "principal", p.UserName, "refresh_tokens", refreshTokens,
		"browser_sessions", browserSessions)
	return nil
}

type authKey struct{}

// requireToken guards the workspace REST APIs: 401 in the Databricks shape without a valid token.
func (a *authServer) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		res, terr := a.authenticate(r)
		if res == nil {
			if terr == nil {
				writeUnauthorized(rw, "Credential was not sent or was of an unsupported type for this API.", false)
			} else {
				writeUnauthorized(rw, "Invalid access token: "+terr.reason, true)
			}
			return
		}
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), authKey{}, res)))
	})
}

func authFrom(ctx context.Context) *authResult {
	res, _ := ctx.Value(authKey{}).(*authResult)
	return res
}

// API scopes of the workspace REST APIs the emulator serves. all-apis covers both. Databricks names an OAuth scope
// per API family; these two are the families of the Apps and Permissions APIs and of the workspace files APIs.
const (
	ScopeApps      = "apps"
	ScopeWorkspace = "workspace"
)

// requireScope refuses, with 403 as a workspace does, a token that holds neither scope nor all-apis. It runs after
// requireToken.
func requireScope(scope string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if missing := coversScopes(authFrom(r.Context()).claims.scopes(), []string{scope}); len(missing) > 0 {
				jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
					Message: "Provided OAuth token does not have required scopes: " + scope,
					Fix:     "get a token with the scope " + scope + " or all-apis"})
				return
			}
			next.ServeHTTP(rw, r)
		})
	}
}
