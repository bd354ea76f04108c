package workspace

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// handleHostMetadata is the discovery document every SDK Config fetches first: it points at the OIDC endpoints.
func (a *authServer) handleHostMetadata() http.HandlerFunc {
	type response struct {
		OIDCEndpoint string `json:"oidc_endpoint"`
		WorkspaceID  string `json:"workspace_id"`
		AccountID    string `json:"account_id,omitempty"`
		Cloud        string `json:"cloud"`
		HostType     string `json:"host_type"`
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		jsonhttp.Write(rw, http.StatusOK, response{
			OIDCEndpoint: a.url + "/oidc", WorkspaceID: a.cfg.Workspace.ID, AccountID: a.cfg.Workspace.AccountID,
			Cloud: "AWS", HostType: "workspace",
		})
	}
}

func (a *authServer) handleOIDCDiscovery() http.HandlerFunc {
	type response struct {
		Issuer                        string   `json:"issuer"`
		AuthorizationEndpoint         string   `json:"authorization_endpoint"`
		TokenEndpoint                 string   `json:"token_endpoint"`
		GrantTypesSupported           []string `json:"grant_types_supported"`
		CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		jsonhttp.Write(rw, http.StatusOK, response{
			Issuer:                        a.issuer.iss,
			AuthorizationEndpoint:         a.url + PathAuthorize,
			TokenEndpoint:                 a.url + PathToken,
			GrantTypesSupported:           []string{"authorization_code", "client_credentials", "refresh_token", GrantTokenExchange},
			CodeChallengeMethodsSupported: []string{"S256"},
		})
	}
}

// pkceValue matches an RFC 7636 code challenge (43 base64url characters) or verifier (43 to 128 characters).
var pkceValue = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// handleAuthorize is the browser leg of the PKCE flow. There is no browser session to check: it approves at once
// as the signed-in user, or as the model's user that login_hint names (OpenID Connect's hint of who signs in: with no
// passwords, the emulator takes it as typing that account into the login page). It never redirects to a URI it has
// not validated; other errors go back to the client.
func (a *authServer) handleAuthorize() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != CLIClientID {
			writeOAuthError(rw, http.StatusBadRequest, "invalid_client",
				"unknown client_id: the emulated workspace knows the public client "+CLIClientID)
			return
		}
		redirect, err := loopbackRedirect(q.Get("redirect_uri"))
		if err != "" {
			writeOAuthError(rw, http.StatusBadRequest, "invalid_request", err)
			return
		}
		fail := func(code, description string) {
			v := redirect.Query()
			v.Set("error", code)
			v.Set("error_description", description)
			if s := q.Get("state"); s != "" {
				v.Set("state", s)
			}
			redirect.RawQuery = v.Encode()
			http.Redirect(rw, r, redirect.String(), http.StatusFound)
		}
		scopes := strings.Fields(q.Get("scope"))
		switch {
		case q.Get("response_type") != "code":
			fail("unsupported_response_type", "response_type must be code")
			return
		case q.Get("code_challenge_method") != "S256":
			fail("invalid_request", "PKCE is required: send code_challenge_method=S256")
			return
		case !pkceValue.MatchString(q.Get("code_challenge")) || len(q.Get("code_challenge")) != 43:
			fail("invalid_request", "code_challenge must be the base64url SHA-256 of the code verifier")
			return
		case len(scopes) == 0:
			fail("invalid_scope", "scope must list one or more scopes, such as \"offline_access all-apis\"")
			return
		}
		if problem := a.scopeProblem(scopes); problem != "" {
			fail("invalid_scope", problem)
			return
		}
		user := a.dir.signedIn
		if hint := q.Get("login_hint"); hint != "" {
			var known bool
			if user, known = a.dir.user(hint); !known {
				fail("invalid_request", "login_hint: "+truncate(hint, 100)+" is not a user of this workspace")
				return
			}
		}
		code, ok := a.grants.newCode(authCode{user: user, clientID: CLIClientID, redirectURI: q.Get("redirect_uri"),
			challenge: q.Get("code_challenge"), scopes: scopes})
		if !ok {
			a.logger.Warn("authorize refused: too many outstanding authorization codes for one redirect target",
				"max", maxCodesPerTarget, "client_id", CLIClientID, "redirect_to", redirect.Scheme+"://"+redirect.Host)
			fail("temporarily_unavailable", fmt.Sprintf("%d authorization codes for this client and redirect URI "+
				"are waiting to be exchanged; exchange them or let them expire (%s) and try again",
				maxCodesPerTarget, codeLifetime))
			return
		}
		v := redirect.Query()
		v.Set("code", code)
		if s := q.Get("state"); s != "" {
			v.Set("state", s)
		}
		redirect.RawQuery = v.Encode()
		a.logger.Info("authorized a user", "user", user.UserName, "client_id", CLIClientID,
			"scopes", strings.Join(scopes, " "))
		http.Redirect(rw, r, redirect.String(), http.StatusFound)
	}
}

// loopbackRedirect accepts only http redirect URIs on the local machine: where a CLI or SDK listens for the code.
func loopbackRedirect(raw string) (*url.URL, string) {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return nil, "redirect_uri is missing or not a URL"
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	if u.Scheme != "http" || u.User != nil || u.Fragment != "" || !(host == "localhost" || (ip != nil && ip.IsLoopback())) {
		return nil, "redirect_uri must be an http:// loopback address such as http://localhost:8020"
	}
	return u, ""
}

// maxFormBytes bounds a token request; real ones are a few hundred bytes.
const maxFormBytes = 64 << 10

// handleToken is the token endpoint: client_credentials (M2M), authorization_code with PKCE, refresh_token, and
// token-exchange (token federation, in federation.go).
// Its errors use the OAuth shape, which is what OAuth clients parse, not the Databricks one.
func (a *authServer) handleToken() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(rw, r.Body, maxFormBytes)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			writeOAuthError(rw, http.StatusBadRequest, "invalid_request", "send the parameters as application/x-www-form-urlencoded")
			return
		}
		if err := r.ParseForm(); err != nil {
			writeOAuthError(rw, http.StatusBadRequest, "invalid_request", "the form body could not be parsed")
			return
		}
		switch grant := r.PostForm.Get("grant_type"); grant {
		case "client_credentials":
			a.clientCredentials(rw, r)
		case "authorization_code":
			a.authorizationCode(rw, r)
		case "refresh_token":
			a.refreshToken(rw, r)
		case GrantTokenExchange:
			a.tokenExchange(rw, r)
		case "":
			writeOAuthError(rw, http.StatusBadRequest, "invalid_request", "grant_type is required")
		default:
			writeOAuthError(rw, http.StatusBadRequest, "unsupported_grant_type",
				"grant_type must be client_credentials, authorization_code, refresh_token or "+GrantTokenExchange)
		}
	}
}

func (a *authServer) clientCredentials(rw http.ResponseWriter, r *http.Request) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 form-encodes the id and secret before Basic encoding; golang.org/x/oauth2 does.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if r.PostForm.Has("client_secret") {
			writeOAuthError(rw, http.StatusBadRequest, "invalid_request", "send the client credentials once: Basic or form, not both")
			return
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	sp, ok := a.dir.servicePrincipal(id)
	if ok && sp.Secret == "" {
		// A service principal that only federates has no secret: an empty client_secret must not match it.
		a.logger.Warn("client authentication failed: the service principal has no secret", "client_id", id)
		writeOAuthError(rw, http.StatusUnauthorized, "invalid_client", "Client authentication failed: service principal "+
			sp.Name+" has no OAuth secret; exchange its identity provider's token instead (token federation)")
		return
	}
	if !ok || subtle.ConstantTimeCompare([]byte(sp.Secret), []byte(secret)) != 1 {
		if basic {
			rw.Header().Set("WWW-Authenticate", `Basic realm="oidc"`)
		}
		a.logger.Warn("client authentication failed", "client_id", loggableClientID(id, ok), "known_client", ok)
		writeOAuthError(rw, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	scopes := strings.Fields(r.PostForm.Get("scope"))
	if len(scopes) == 0 {
		scopes = []string{ScopeAllAPIs}
	}
	if problem := a.scopeProblem(scopes); problem != "" {
		writeOAuthError(rw, http.StatusBadRequest, "invalid_scope", problem)
		return
	}
	p, _ := a.dir.subject(sp.ApplicationID)
	a.writeToken(rw, p, sp.ApplicationID, "", scopes, "", time.Time{})
}

// loggableClientID is what a log may show of a client id that failed to authenticate. A known id is public; an
// unknown one may be the secret, given where the id belongs, so only its first 4 characters are shown, and only
// when that is less than half of it.
func loggableClientID(id string, known bool) string {
	if known {
		return id
	}
	if r := []rune(id); len(r) > 8 {
		return string(r[:4]) + "…"
	}
	return "…"
}

func (a *authServer) authorizationCode(rw http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	for _, name := range []string{"client_id", "code", "code_verifier", "redirect_uri"} {
		if f.Get(name) == "" {
			writeOAuthError(rw, http.StatusBadRequest, "invalid_request", name+" is required")
			return
		}
	}
	// The code grant takes no scope (the code carries its own); one sent anyway must still be a known scope.
	if problem := a.scopeProblem(strings.Fields(f.Get("scope"))); problem != "" {
		writeOAuthError(rw, http.StatusBadRequest, "invalid_scope", problem)
		return
	}
	code, ok, replayed := a.grants.redeem(f.Get("code"))
	switch {
	case replayed:
		a.logger.Warn("authorization code used twice: revoked the tokens issued from it", "client_id", CLIClientID)
		writeOAuthError(rw, http.StatusBadRequest, "invalid_grant",
			"the authorization code was already used; the tokens issued from it are revoked")
		return
	case !ok:
		writeOAuthError(rw, http.StatusBadRequest, "invalid_grant", "the authorization code is invalid, expired or already used")
		return
	case code.clientID != f.Get("client_id"):
		writeOAuthError(rw, http.StatusBadRequest, "invalid_grant", "the authorization code was issued to another client")
		return
	case code.redirectURI != f.Get("redirect_uri"):
		writeOAuthError(rw, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
		return
	case !pkceValue.MatchString(f.Get("code_verifier")) || s256(f.Get("code_verifier")) != code.challenge:
		writeOAuthError(rw, http.StatusBadRequest, "invalid_grant", "PKCE verification failed: code_verifier does not match code_challenge")
		return
	case a.grants.revokedSince(code.user.UserName, code.generation):
		a.logger.Warn("authorization code refused: its user's tokens were revoked since it was issued",
			"user", code.user.UserName, "client_id", CLIClientID)
		writeOAuthError(rw, http.StatusBadRequest, "invalid_grant",
			"the authorization code was revoked, with every token of its user, before it was exchanged; log in again")
		return
	}
	// The tokens carry the code's generation: should a revocation come now, they are refused like the code.
	refresh := ""
	if slices.Contains(code.scopes, ScopeOfflineAccess) {
		refresh = a.grants.newRefreshToken(refreshGrant{user: code.user, clientID: code.clientID, scopes: code.scopes,
			grant: code.grant, generation: code.generation})
	}
	a.writeTokenAtGeneration(rw, code.generation, code.user, code.clientID, code.grant, code.scopes, refresh, time.Time{})
}

func (a *authServer) refreshToken(rw http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	if f.Get("client_id") == "" || f.Get("refresh_token") == "" {
		writeOAuthError(rw, http.StatusBadRequest, "invalid_request", "client_id and refresh_token are required")
		return
	}
	// Unknown, expired, another client's, revoked or already rotated: all get the same answer, whose description
	// the SDK recognises as "log in again" (docs/platform.md).
	invalid := func() { writeOAuthError(rw, http.StatusBadRequest, "invalid_request", "Refresh token is invalid") }
	grant, ok := a.grants.lookupRefresh(f.Get("refresh_token"), f.Get("client_id"))
	if !ok {
		invalid()
		return
	}
	// A refresh may ask for fewer scopes than were granted, never others (RFC 6749 section 6).
	scopes := grant.scopes
	if requested := strings.Fields(f.Get("scope")); len(requested) > 0 {
		if problem := a.scopeProblem(requested); problem != "" {
			writeOAuthError(rw, http.StatusBadRequest, "invalid_scope", problem)
			return
		}
		for _, s := range requested {
			if !slices.Contains(grant.scopes, s) {
				writeOAuthError(rw, http.StatusBadRequest, "invalid_scope",
					fmt.Sprintf("scope %q was not granted to this refresh token; log in again to ask for it", s))
				return
			}
		}
		scopes = requested
	}
	// Only a refresh that succeeds spends a single-use refresh token.
	next := f.Get("refresh_token")
	if a.cfg.Workspace.OAuth.SingleUseRefreshTokens {
		if next, ok = a.grants.rotateRefresh(next); !ok {
			invalid()
			return
		}
	}
	// The refresh token's generation, not the current one: a refresh that straddles a revocation yields a token
	// that authenticate refuses.
	a.writeTokenAtGeneration(rw, grant.generation, grant.user, grant.clientID, grant.grant, scopes, next, time.Time{})
}

// writeToken issues and sends an access token for a credential checked just now (a client secret, an identity
// provider's token), at the subject's current token generation. notAfter, when set, caps its expiry.
func (a *authServer) writeToken(rw http.ResponseWriter, p principal, clientID, grant string, scopes []string, refresh string, notAfter time.Time) {
	a.writeTokenAtGeneration(rw, a.grants.generation(p.UserName), p, clientID, grant, scopes, refresh, notAfter)
}

// writeTokenAtGeneration issues and sends an access token of a grant made at the subject's token generation
// generation (see issuer.issueAtGeneration).
func (a *authServer) writeTokenAtGeneration(rw http.ResponseWriter, generation int64, p principal, clientID, grant string,
	scopes []string, refresh string, notAfter time.Time) {
	type response struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int64  `json:"expires_in"`
		Scope        string `json:"scope"`
		RefreshToken string `json:"refresh_token,omitempty"`
	}
	token, expires, err := a.issuer.issueAtGeneration(generation, p, clientID, grant, scopes, notAfter)
	if err != nil {
		a.logger.Error("issue a token", "err", err)
		writeOAuthError(rw, http.StatusInternalServerError, "server_error", "could not sign a token")
		return
	}
	a.logger.Info("issued an access token", "subject", p.UserName, "client_id", clientID,
		"scopes", strings.Join(withoutOfflineAccess(scopes), " "), "expires", expires.Format(time.RFC3339))
	rw.Header().Set("Cache-Control", "no-store")
	jsonhttp.Write(rw, http.StatusOK, response{
		AccessToken: token, TokenType: "Bearer", ExpiresIn: max(1, int64(time.Until(expires)/time.Second)),
		Scope: strings.Join(withoutOfflineAccess(scopes), " "), RefreshToken: refresh,
	})
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// writeOAuthError sends an RFC 6749 error: {"error", "error_description"}.
func writeOAuthError(rw http.ResponseWriter, status int, code, description string) {
	rw.Header().Set("Cache-Control", "no-store")
	jsonhttp.Write(rw, status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, description})
}
