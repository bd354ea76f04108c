package workspace

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// The token-exchange grant (RFC 8693) as Databricks token federation takes it, and as the SDK's env-oidc and
// file-oidc auth types send it: the identity provider's JWT as subject_token, plus client_id for a service
// principal's federation policy.
const (
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
)

// federation is the model's identity providers and federation policies: what a subject token is checked against.
// The model fixes them at start; the Apps API changes neither.
type federation struct {
	byName    map[string]*identityProvider
	byIssuer  map[string]*identityProvider
	account   []FederationPolicy
	bySP      map[string][]FederationPolicy // by application id
	accountID string
}

func newFederation(cfg Config, workspaceURL string, keyMade func()) *federation {
	f := &federation{byName: map[string]*identityProvider{}, byIssuer: map[string]*identityProvider{},
		account: cfg.FederationPolicies, bySP: map[string][]FederationPolicy{}, accountID: cfg.Workspace.AccountID}
	for _, c := range cfg.IdentityProviders {
		p := &identityProvider{cfg: c, iss: workspaceURL + PathIdentityProviders + "/" + c.Name, onKey: keyMade}
		f.byName[c.Name], f.byIssuer[p.iss] = p, p
	}
	for _, sp := range cfg.ServicePrincipals {
		if len(sp.FederationPolicies) > 0 {
			f.bySP[sp.ApplicationID] = sp.FederationPolicies
		}
	}
	return f
}

// names lists the identity providers' names, sorted, for messages.
func (f *federation) names() []string {
	names := make([]string, 0, len(f.byName))
	for name := range f.byName {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// exchangeError is a refused exchange, in words safe to send back: never the subject token itself.
type exchangeError struct {
	status      int
	code        string
	description string
}

func refuse(format string, args ...any) *exchangeError {
	return &exchangeError{http.StatusBadRequest, "invalid_grant", fmt.Sprintf(format, args...)}
}

// federated is who an accepted subject token speaks for.
type federated struct {
	principal principal
	clientID  string
	issuer    string // the identity provider's name
	subject   string // the token's sub, for the log
	policy    string
	expires   time.Time
}

// tokenExchange is the token-exchange grant. The request's shape is checked first (invalid_request), then the
// scopes, then the subject token: its issuer must be one of the model's identity providers, its signature must
// verify against that provider's key, it must not have expired, and a federation policy (the service principal's,
// with client_id, else the account's) must accept its audience and subject.
//
// Databricks does not document its status codes for refusals here; the emulator answers an unacceptable subject
// token as RFC 6749 answers an unacceptable grant, 400 invalid_grant, and says which check failed.
func (a *authServer) tokenExchange(rw http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	for _, name := range []string{"subject_token", "subject_token_type", "client_id", "scope"} {
		if len(f[name]) > 1 {
			writeOAuthError(rw, http.StatusBadRequest, "invalid_request", name+" is sent more than once")
			return
		}
	}
	// The SDK's file-oidc sends the file verbatim: a token file written with a trailing newline still works.
	subjectToken := strings.TrimSpace(f.Get("subject_token"))
	var problem string
	switch {
	case subjectToken == "":
		problem = "subject_token is required: the JWT your identity provider issued"
	case f.Get("subject_token_type") != TokenTypeJWT:
		problem = "subject_token_type must be " + TokenTypeJWT
	case f.Has("actor_token"):
		problem = "actor_token is not supported: token federation exchanges one identity provider token"
	case f.Get("requested_token_type") != "" && f.Get("requested_token_type") != tokenTypeAccess:
		problem = "requested_token_type, when sent, must be " + tokenTypeAccess
	case f.Has("client_secret") || r.Header.Get("Authorization") != "":
		problem = "token federation authenticates with the subject token alone: send no client secret"
	case len(subjectToken) > identity.MaxTokenLen:
		problem = "subject_token is too long to be an identity provider's JWT"
	}
	if problem != "" {
		writeOAuthError(rw, http.StatusBadRequest, "invalid_request", problem)
		return
	}
	scopes := strings.Fields(f.Get("scope"))
	if len(scopes) == 0 {
		scopes = []string{ScopeAllAPIs}
	}
	if problem := a.scopeProblem(scopes); problem != "" {
		writeOAuthError(rw, http.StatusBadRequest, "invalid_scope", problem)
		return
	}
	who, eerr := a.federate(subjectToken, f.Get("client_id"))
	if eerr != nil {
		attrs := []any{"error", eerr.code, "reason", eerr.description}
		if id := f.Get("client_id"); id != "" {
			_, known := a.dir.servicePrincipal(id)
			attrs = append(attrs, "client_id", loggableClientID(id, known))
		}
		a.logger.Warn("token exchange refused", attrs...)
		writeOAuthError(rw, eerr.status, eerr.code, eerr.description)
		return
	}
	a.logger.Info("exchanged an identity provider token", "issuer", who.issuer, "subject", who.subject,
		"policy", who.policy, "principal", who.principal.UserName)
	// The token lives no longer than the subject token, as Databricks derives its lifetime from it.
	a.writeToken(rw, who.principal, who.clientID, "", scopes, "", who.expires)
}

// federate checks a subject token against the identity providers and the federation policies.
func (a *authServer) federate(token, clientID string) (federated, *exchangeError) {
	parsed, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		return federated{}, &exchangeError{http.StatusBadRequest, "invalid_request",
			"subject_token is not a JWT: send the token your identity provider issued, as it issued it"}
	}
	iss, _ := parsed.Claims.GetIssuer()
	idp, ok := a.federation.byIssuer[iss]
	if !ok {
		if iss == a.issuer.iss {
			return federated{}, refuse("the subject token is already this workspace's OAuth token: send it as the " +
				"bearer token, there is nothing to exchange")
		}
		return federated{}, refuse("the subject token's issuer %q is not trusted: the emulated workspace federates "+
			"only its own identity providers (%s), whose issuer URLs are in the state file", truncate(iss, 200),
			strings.Join(a.federation.names(), ", "))
	}
	claims, err := idp.verify(token, a.issuer.now)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return federated{}, refuse("the subject token expired; get a new one from identity provider %s", idp.cfg.Name)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return federated{}, refuse("the subject token is not valid yet (nbf or iat is in the future)")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return federated{}, refuse("the subject token has no exp claim: federation accepts only tokens that expire")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return federated{}, refuse("the subject token's signature does not verify against the keys of its issuer "+
			"(%s): it was not issued by identity provider %s, or was altered", idp.iss+PathIdPJWKS, idp.cfg.Name)
	default:
		return federated{}, refuse("the subject token is not valid: %s", jwtProblem(err))
	}

	policies, whose := a.federation.account, "the account's federation policies"
	var sp ServicePrincipal
	if clientID != "" {
		if sp, ok = a.dir.servicePrincipal(clientID); !ok {
			return federated{}, &exchangeError{http.StatusUnauthorized, "invalid_client",
				"client_id names no service principal of this workspace: send the application id of the service " +
					"principal whose federation policy trusts the token, or no client_id for an account-wide policy"}
		}
		policies, whose = a.federation.bySP[clientID], fmt.Sprintf("the federation policies of service principal %s", sp.Name)
	}
	trusting := slices.DeleteFunc(slices.Clone(policies), func(p FederationPolicy) bool { return p.Issuer != idp.cfg.Name })
	if len(trusting) == 0 {
		return federated{}, refuse("no federation policy matches: none of %s trusts issuer %s%s", whose, idp.iss,
			a.federation.elsewhere(idp.cfg.Name, clientID))
	}
	aud, _ := claims.GetAudience()
	var accepted []string
	matchesAudience := slices.DeleteFunc(slices.Clone(trusting), func(p FederationPolicy) bool {
		audiences := a.federation.audiences(p)
		accepted = append(accepted, audiences...)
		return !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(audiences, a) })
	})
	if len(matchesAudience) == 0 {
		return federated{}, refuse("wrong audience: the subject token is for %q, and %s for issuer %s accept %s; "+
			"ask identity provider %s for a token with one of those audiences", truncate(strings.Join(aud, " "), 200),
			whose, idp.cfg.Name, quoteAll(accepted), idp.cfg.Name)
	}
	sub, _ := claims.GetSubject()
	exp, _ := claims.GetExpirationTime() // verify required it
	var seen []string
	for _, p := range matchesAudience {
		claim := subjectClaim(p)
		value, _ := claims[claim].(string)
		seen = append(seen, fmt.Sprintf("%s %q", claim, truncate(value, 100)))
		who := federated{clientID: clientID, issuer: idp.cfg.Name, subject: truncate(sub, 200), policy: policyLabel(p),
			expires: exp.Time}
		switch {
		case value == "":
		case clientID != "" && value == p.Subject:
			who.principal, _ = a.dir.subject(sp.ApplicationID)
			return who, nil
		case clientID == "":
			if who.principal, ok = a.dir.subject(value); ok {
				if who.principal.Kind == identity.KindServicePrincipal {
					who.clientID = who.principal.UserName
				}
				return who, nil
			}
		}
	}
	if clientID != "" {
		return federated{}, refuse("no federation policy matches the subject token's %s: %s for issuer %s name "+
			"other subjects", strings.Join(slices.Compact(seen), ", "), whose, idp.cfg.Name)
	}
	return federated{}, refuse("no federation policy matches: the subject token's %s names no user (user_name) "+
		"or service principal (application id) of this workspace", strings.Join(slices.Compact(seen), ", "))
}

// elsewhere hints at the other kind of policy when that one trusts the issuer: a common mix-up is sending
// client_id for an account-wide policy, or leaving it out for a service principal's.
func (f *federation) elsewhere(idp, clientID string) string {
	trusts := func(p FederationPolicy) bool { return p.Issuer == idp }
	if clientID != "" && slices.ContainsFunc(f.account, trusts) {
		return "; an account-wide policy does: send no client_id"
	}
	if clientID == "" {
		for _, policies := range f.bySP {
			if slices.ContainsFunc(policies, trusts) {
				return "; a service principal's policy does: send its application id as client_id"
			}
		}
	}
	return ""
}

// audiences are a policy's accepted audiences: the account id unless it lists its own, as in Databricks.
func (f *federation) audiences(p FederationPolicy) []string {
	if len(p.Audiences) > 0 {
		return p.Audiences
	}
	if f.accountID == "" {
		return nil
	}
	return []string{f.accountID}
}

func subjectClaim(p FederationPolicy) string {
	if p.SubjectClaim == "" {
		return "sub"
	}
	return p.SubjectClaim
}

func policyLabel(p FederationPolicy) string {
	if p.Name != "" {
		return p.Name
	}
	return "(unnamed, issuer " + p.Issuer + ")"
}

func quoteAll(values []string) string {
	values = slices.Compact(slices.Sorted(slices.Values(values)))
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = fmt.Sprintf("%q", truncate(v, 100))
	}
	return strings.Join(quoted, ", ")
}

// jwtProblem names a claim check that failed, without the library's wording, which may quote the token's parts.
func jwtProblem(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "its issuer does not match"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return "a registered claim (exp, nbf, iat) is malformed"
	default:
		return "it could not be verified"
	}
}

// federationHint explains a bearer token refused because an identity provider issued it, not this workspace:
// Databricks does not exchange tokens on the server side, so the client must exchange it first (token
// federation). It returns nil for any other token, a JWT of another Databricks workspace included (issuer
// <host>/oidc), which the generic "not issued by this workspace" describes better.
func (a *authServer) federationHint(token string) *tokenError {
	if len(token) > identity.MaxTokenLen {
		return nil
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		return nil
	}
	iss, _ := parsed.Claims.GetIssuer()
	if iss == "" || iss == a.issuer.iss || strings.HasSuffix(iss, "/oidc") {
		return nil
	}
	from := fmt.Sprintf("an identity provider (%s)", truncate(iss, 200))
	if idp, ok := a.federation.byIssuer[iss]; ok {
		from = fmt.Sprintf("identity provider %s (%s)", idp.cfg.Name, iss)
	}
	return &tokenError{fmt.Sprintf("the token was issued by %s, not by this workspace. Databricks does not "+
		"exchange tokens on the server side: exchange it for a Databricks OAuth token first (token federation), "+
		"POST %s with grant_type=%s, subject_token_type=%s, the token as subject_token and, for a service "+
		"principal's federation policy, its application id as client_id (the SDK's env-oidc and file-oidc auth "+
		"types do this), then send the Databricks token", from, a.url+PathToken, GrantTokenExchange, TokenTypeJWT)}
}

var (
	idpName   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,29}$`)
	claimName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:/-]{0,99}$`)
)

// registeredClaims are set by the identity provider itself: a subject's claims may not override them.
var registeredClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}

// validateFederation checks the identity providers and the federation policies, reporting through bad.
func (c Config) validateFederation(bad func(string, ...any)) {
	idps := map[string]bool{}
	for _, p := range c.IdentityProviders {
		if !idpName.MatchString(p.Name) || idps[p.Name] {
			bad("identity provider %q: names are unique, lower case letters, digits and dashes (its issuer URL ends in it)", p.Name)
		}
		idps[p.Name] = true
		if len(p.Subjects) == 0 {
			bad("identity provider %q: list the subjects it issues tokens for", p.Name)
		}
		subs := map[string]bool{}
		for _, s := range p.Subjects {
			if s.Sub == "" || subs[s.Sub] {
				bad("identity provider %q: subjects: sub must be set and unique, got %q", p.Name, s.Sub)
			}
			subs[s.Sub] = true
			for k, v := range s.Claims {
				if !claimName.MatchString(k) || slices.Contains(registeredClaims, k) || v == "" {
					bad("identity provider %q: subject %q: claim %q: want a claim name other than %s, with a value",
						p.Name, s.Sub, k, strings.Join(registeredClaims, ", "))
				}
			}
		}
	}
	check := func(who string, p FederationPolicy, servicePrincipal bool) {
		if !idps[p.Issuer] {
			bad("%s: issuer %q is not in identity_providers (the emulator federates only its own)", who, p.Issuer)
		}
		if len(p.Audiences) == 0 && c.Workspace.AccountID == "" {
			bad("%s: audiences default to workspace.account_id, which is not set: list the audiences", who)
		}
		for _, a := range p.Audiences {
			if a == "" {
				bad("%s: audiences must not be empty strings", who)
			}
		}
		if p.SubjectClaim != "" && (!claimName.MatchString(p.SubjectClaim) ||
			slices.Contains([]string{"iss", "aud", "exp", "nbf", "iat", "jti"}, p.SubjectClaim)) {
			bad("%s: subject_claim %q is not a claim that can name a subject", who, p.SubjectClaim)
		}
		switch {
		case servicePrincipal && p.Subject == "":
			bad("%s: subject is required in a service principal's federation policy", who)
		case !servicePrincipal && p.Subject != "":
			bad("%s: an account federation policy has no subject: its subject_claim names the principal", who)
		}
	}
	for i, p := range c.FederationPolicies {
		check(fmt.Sprintf("federation_policies[%d] %s", i, p.Name), p, false)
	}
	for _, sp := range c.ServicePrincipals {
		for i, p := range sp.FederationPolicies {
			check(fmt.Sprintf("service principal %q: federation_policies[%d] %s", sp.Name, i, p.Name), p, true)
		}
	}
}
