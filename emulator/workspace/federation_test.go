package workspace

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/config"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// The default model's federation: identity provider ci trusted by federated-service's policy, and entra by the
// account policy whose subject_claim azp names external-service.
const (
	ciMain        = "repo:acme/api:ref:refs/heads/main"
	ciPullRequest = "repo:acme/api:pull_request"
	ciAudience    = "https://github.com/acme"
	entraApp      = "0f9c1e5a-3b7d-4c2e-8a61-5d4e3f2a1b00"
)

// idpToken has an emulated identity provider mint a token, through its endpoint, as a CI job gets one.
func idpToken(t *testing.T, w *Workspace, idp, subject, audience string, lifetime time.Duration) string {
	t.Helper()
	endpoint := w.State().IdentityProviders[idp].TokenEndpoint
	require.NotEmpty(t, endpoint, "identity provider %s", idp)
	token, err := MintIdentityToken(t.Context(), endpoint, subject, audience, lifetime)
	require.NoError(t, err)
	return token
}

// assertExpiresBetween checks that a token issued between from and to for lifetime expires then: at most a second
// earlier, as a JWT's exp counts whole seconds. It holds however long the issue took.
func assertExpiresBetween(t *testing.T, exp, from, to time.Time, lifetime time.Duration) {
	t.Helper()
	assert.False(t, exp.Before(from.Add(lifetime).Truncate(time.Second)), "exp %s, issued from %s", exp, from)
	assert.False(t, exp.After(to.Add(lifetime)), "exp %s, issued by %s", exp, to)
}

// signAsIdP signs arbitrary claims with an identity provider's own key, for tokens its endpoint would never mint.
func signAsIdP(t *testing.T, w *Workspace, idp string, claims jwt.MapClaims) string {
	t.Helper()
	p := w.auth.federation.byName[idp]
	key, kid, err := p.signingKey()
	require.NoError(t, err)
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// foreignToken is a well-formed RS256 JWT signed by a key no emulated provider holds.
func foreignToken(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

func idpClaims(w *Workspace, idp, sub, aud string, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{"iss": w.auth.federation.byName[idp].iss, "sub": sub, "aud": aud,
		"iat": exp.Add(-time.Hour).Unix(), "exp": exp.Unix()}
}

// oauthError is the token endpoint's error body.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func exchangeForm(subjectToken, clientID string) url.Values {
	f := url.Values{"grant_type": {GrantTokenExchange}, "subject_token_type": {TokenTypeJWT},
		"subject_token": {subjectToken}, "scope": {"all-apis"}}
	if clientID != "" {
		f.Set("client_id", clientID)
	}
	return f
}

func federatedServiceID(w *Workspace) string {
	return w.State().ServicePrincipals["federated-service"].ClientID
}

// federatedConfig is the SDK as a CI job configures it for workload identity federation: the service principal's
// client id and no secret.
func federatedConfig(w *Workspace, authType string) *config.Config {
	return &config.Config{Host: w.URL(), AuthType: authType, ClientID: federatedServiceID(w), RetryTimeoutSeconds: 5}
}

func sdkBearer(t *testing.T, cfg *config.Config) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://127.0.0.1/", nil)
	require.NoError(t, err)
	require.NoError(t, cfg.Authenticate(req))
	token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	require.True(t, ok)
	return token
}

// TestFederationWithTheSDK is the "done when": the SDK's own env-oidc and file-oidc exchange an identity
// provider's token at the emulator and reach the app through its proxy as the federated service principal.
func TestFederationWithTheSDK(t *testing.T) {
	isolateSDKEnv(t)
	w, logs := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	var secrets []string // must never reach the logs

	asApp := func(t *testing.T, token, wantUser, wantName string) {
		t.Helper()
		resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(token))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var seen echoed
		require.NoError(t, json.Unmarshal(body, &seen))
		assert.Equal(t, identity.FormatUser(wantUser, w.WorkspaceID()), seen.Headers.Get(identity.HeaderUser))
		assert.Equal(t, wantName, seen.Headers.Get(identity.HeaderPreferredUsername))
		assert.Empty(t, seen.Headers.Get("Authorization"))
	}

	t.Run("env-oidc, service principal policy", func(t *testing.T) {
		minted := time.Now()
		subject := idpToken(t, w, "ci", ciMain, ciAudience, 10*time.Minute)
		t.Setenv("DATABRICKS_OIDC_TOKEN", subject)
		token := sdkBearer(t, federatedConfig(w, "env-oidc"))
		secrets = append(secrets, subject, token)
		asApp(t, token, "2005", federatedServiceID(w))

		// The Databricks token lives no longer than the subject token.
		claims, terr := w.auth.issuer.verify(token)
		require.Nil(t, terr)
		assertExpiresBetween(t, claims.ExpiresAt.Time, minted, time.Now(), 10*time.Minute)
		assert.Equal(t, "all-apis", claims.Scope)
	})

	t.Run("file-oidc, the token file as the command writes it", func(t *testing.T) {
		subject := idpToken(t, w, "ci", ciMain, ciAudience, 0)
		file := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(file, []byte(subject+"\n"), 0o600))
		cfg := federatedConfig(w, "file-oidc")
		cfg.OIDCTokenFilepath = file
		token := sdkBearer(t, cfg)
		secrets = append(secrets, subject, token)
		asApp(t, token, "2005", federatedServiceID(w))
	})

	t.Run("env-oidc, account policy with an Entra-style app token", func(t *testing.T) {
		subject := idpToken(t, w, "entra", entraApp, "", 0) // the account id, the policy's default audience
		t.Setenv("DATABRICKS_OIDC_TOKEN", subject)
		token := sdkBearer(t, &config.Config{Host: w.URL(), AuthType: "env-oidc", RetryTimeoutSeconds: 5})
		secrets = append(secrets, subject, token)
		external := w.State().ServicePrincipals["external-service"]
		asApp(t, token, "2001", external.ClientID)

		// The same token works at the workspace APIs.
		status, _, body := sendRaw(t, http.MethodGet, w.URL()+PathSCIMMe, token, nil)
		require.Equal(t, http.StatusOK, status, string(body))
		assert.Contains(t, string(body), `"applicationId":"`+external.ClientID+`"`)
	})

	t.Run("scopes are the requested ones", func(t *testing.T) {
		subject := idpToken(t, w, "ci", ciMain, ciAudience, 0)
		f := exchangeForm(subject, federatedServiceID(w))
		f.Set("scope", "sql iam.current-user:read")
		status, body := postForm(t, w.URL()+PathToken, f)
		require.Equal(t, http.StatusOK, status, string(body))
		var tok struct {
			AccessToken string `json:"access_token"`
			Scope       string `json:"scope"`
		}
		require.NoError(t, json.Unmarshal(body, &tok))
		secrets = append(secrets, subject, tok.AccessToken)
		assert.Equal(t, "sql iam.current-user:read", tok.Scope)
		status, code, _ := sendRaw(t, http.MethodGet, w.URL()+PathApps, tok.AccessToken, nil)
		assert.Equal(t, http.StatusForbidden, status, "sql does not cover the Apps API")
		assert.Equal(t, jsonhttp.CodePermissionDenied, code)
	})

	t.Run("no subject token or Databricks token in the logs", func(t *testing.T) {
		out := logs.String()
		assert.Contains(t, out, "exchanged an identity provider token")
		for _, s := range secrets {
			require.NotEmpty(t, s)
			assert.NotContains(t, out, s)
			assert.NotContains(t, out, strings.Split(s, ".")[2], "not even a token's signature")
		}
	})
}

// TestTokenExchangeRefusals is every refusal of the token-exchange grant, with its status and OAuth error.
func TestTokenExchangeRefusals(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	sp := federatedServiceID(w)
	now := time.Now()
	valid := idpToken(t, w, "ci", ciMain, ciAudience, 0)
	parts := strings.Split(valid, ".")
	var payload map[string]any
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &payload))
	payload["sub"] = "repo:acme/api:ref:refs/heads/evil"
	forged, err := json.Marshal(payload)
	require.NoError(t, err)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	es256, err := jwt.NewWithClaims(jwt.SigningMethodES256, idpClaims(w, "ci", ciMain, ciAudience, now.Add(time.Hour))).SignedString(ecKey)
	require.NoError(t, err)
	noExp := idpClaims(w, "ci", ciMain, ciAudience, now)
	delete(noExp, "exp")

	with := func(token, clientID string, edit func(url.Values)) url.Values {
		f := exchangeForm(token, clientID)
		if edit != nil {
			edit(f)
		}
		return f
	}
	tests := []struct {
		name      string
		form      url.Values
		status    int
		error     string
		mentions  string
		basicAuth bool
	}{
		// A malformed request.
		{"no subject token", with("", sp, nil), 400, "invalid_request", "subject_token is required", false},
		{"wrong subject token type", with(valid, sp, func(f url.Values) { f.Set("subject_token_type", tokenTypeAccess) }),
			400, "invalid_request", "subject_token_type", false},
		{"no subject token type", with(valid, sp, func(f url.Values) { f.Del("subject_token_type") }), 400, "invalid_request", "subject_token_type", false},
		{"subject token twice", with(valid, sp, func(f url.Values) { f.Add("subject_token", valid) }), 400, "invalid_request", "more than once", false},
		{"not a JWT", with("not-a-jwt", sp, nil), 400, "invalid_request", "not a JWT", false},
		{"a client secret too", with(valid, sp, func(f url.Values) { f.Set("client_secret", "s3cret") }), 400, "invalid_request", "no client secret", false},
		{"Basic credentials too", with(valid, sp, nil), 400, "invalid_request", "no client secret", true},
		{"an actor token", with(valid, sp, func(f url.Values) { f.Set("actor_token", valid) }), 400, "invalid_request", "actor_token", false},
		{"a refresh token requested", with(valid, sp, func(f url.Values) {
			f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")
		}), 400, "invalid_request", "requested_token_type", false},
		{"unknown scope", with(valid, sp, func(f url.Values) { f.Set("scope", "all-apis clusters:everything") }), 400, "invalid_scope", "unknown scope", false},
		// An issuer the workspace does not federate.
		{"unknown issuer", with(foreignToken(t, jwt.MapClaims{"iss": "https://token.actions.githubusercontent.com",
			"sub": ciMain, "aud": ciAudience, "exp": now.Add(time.Hour).Unix()}), sp, nil), 400, "invalid_grant", "not trusted", false},
		{"a Databricks token of this workspace", with(m2mToken(t, w, "external-service"), sp, nil), 400, "invalid_grant", "nothing to exchange", false},
		// A token of a trusted issuer that is not good.
		{"expired", with(signAsIdP(t, w, "ci", idpClaims(w, "ci", ciMain, ciAudience, now.Add(-time.Minute))), sp, nil),
			400, "invalid_grant", "expired", false},
		{"no expiry", with(signAsIdP(t, w, "ci", noExp), sp, nil), 400, "invalid_grant", "no exp", false},
		{"not valid yet", with(signAsIdP(t, w, "ci", jwt.MapClaims{"iss": w.auth.federation.byName["ci"].iss, "sub": ciMain,
			"aud": ciAudience, "nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}), sp, nil),
			400, "invalid_grant", "not valid yet", false},
		{"tampered claims", with(tampered, sp, nil), 400, "invalid_grant", "signature does not verify", false},
		{"signed by another RSA key", with(foreignToken(t, idpClaims(w, "ci", ciMain, ciAudience, now.Add(time.Hour))), sp, nil),
			400, "invalid_grant", "signature does not verify", false},
		{"signed ES256 by another key", with(es256, sp, nil), 400, "invalid_grant", "signature does not verify", false},
		{"signed by the other identity provider", with(signAsIdP(t, w, "entra", idpClaims(w, "ci", ciMain, ciAudience, now.Add(time.Hour))), sp, nil),
			400, "invalid_grant", "signature does not verify", false},
		// A good token that no policy accepts.
		{"wrong audience", with(idpToken(t, w, "ci", ciMain, "https://github.com/someone-else", 0), sp, nil),
			400, "invalid_grant", `wrong audience: the subject token is for "https://github.com/someone-else"`, false},
		{"no matching policy: another subject", with(idpToken(t, w, "ci", ciPullRequest, ciAudience, 0), sp, nil),
			400, "invalid_grant", "no federation policy matches the subject token's sub \"" + ciPullRequest, false},
		{"no matching policy: no client_id for a service principal's policy", with(valid, "", nil),
			400, "invalid_grant", "send its application id as client_id", false},
		{"no matching policy: client_id for an account policy", with(idpToken(t, w, "entra", entraApp, "", 0), sp, nil),
			400, "invalid_grant", "an account-wide policy does: send no client_id", false},
		{"no matching policy: another service principal", with(valid, w.State().ServicePrincipals["external-service"].ClientID, nil),
			400, "invalid_grant", "none of the federation policies of service principal external-service trusts issuer", false},
		{"unknown client_id", with(valid, "nobody", nil), 401, "invalid_client", "names no service principal", false},
	}
	var subjectTokens []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subjectTokens = append(subjectTokens, tt.form["subject_token"]...)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.URL()+PathToken, strings.NewReader(tt.form.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basicAuth {
				req.SetBasicAuth(sp, "s3cret")
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var e oauthError
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			assert.Equal(t, tt.status, resp.StatusCode, e.Description)
			assert.Equal(t, tt.error, e.Error, e.Description)
			assert.Contains(t, e.Description, tt.mentions)
			for _, s := range tt.form["subject_token"] {
				if s != "" {
					assert.NotContains(t, e.Description, s)
				}
			}
		})
	}
	out := logs.String()
	assert.Contains(t, out, "token exchange refused")
	for _, s := range subjectTokens {
		if len(s) > 20 {
			assert.NotContains(t, out, s)
			assert.NotContains(t, out, s[strings.LastIndex(s, ".")+1:])
		}
	}
	assert.NotContains(t, out, "s3cret")
}

// TestAccountPolicyForUsers maps tokens to users: the account policy's subject claim holds a user name.
func TestAccountPolicyForUsers(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.IdentityProviders = append(cfg.IdentityProviders, IdentityProvider{Name: "corp", Subjects: []IdentitySubject{
		{Sub: "u-1", Claims: map[string]string{"email": "dev@example.com"}},
		{Sub: "u-2", Claims: map[string]string{"email": "ghost@example.com"}},
		{Sub: "u-3"},
	}})
	cfg.FederationPolicies = append(cfg.FederationPolicies, FederationPolicy{Name: "corp-users", Issuer: "corp",
		Audiences: []string{"databricks"}, SubjectClaim: "email"})
	w, _ := startWorkspace(t, Options{Config: cfg})

	status, body := postForm(t, w.URL()+PathToken, exchangeForm(idpToken(t, w, "corp", "u-1", "databricks", 0), ""))
	require.Equal(t, http.StatusOK, status, string(body))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal(body, &tok))
	status, _, me := sendRaw(t, http.MethodGet, w.URL()+PathSCIMMe, tok.AccessToken, nil)
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, string(me), `"userName":"dev@example.com"`)

	for sub, mentions := range map[string]string{
		"u-2": `email "ghost@example.com" names no user`,
		"u-3": `email "" names no user`,
	} {
		status, body := postForm(t, w.URL()+PathToken, exchangeForm(idpToken(t, w, "corp", sub, "databricks", 0), ""))
		assert.Equal(t, http.StatusBadRequest, status)
		var e oauthError
		require.NoError(t, json.Unmarshal(body, &e))
		assert.Equal(t, "invalid_grant", e.Error)
		assert.Contains(t, e.Description, mentions)
	}
}

// TestIdentityProviderTokenAtTheProxy: an identity provider's token sent as is gets 401 and the fix, token
// federation, at an app's proxy and at the workspace APIs alike.
func TestIdentityProviderTokenAtTheProxy(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	now := time.Now()
	ci := idpToken(t, w, "ci", ciMain, ciAudience, 0)
	tests := []struct {
		name, token, mentions string
		federation            bool
	}{
		{"the emulator's identity provider", ci, "identity provider ci (" + w.auth.federation.byName["ci"].iss + ")", true},
		{"an expired one", signAsIdP(t, w, "ci", idpClaims(w, "ci", ciMain, ciAudience, now.Add(-time.Minute))), "identity provider ci", true},
		{"an Entra ID token", foreignToken(t, jwt.MapClaims{"iss": "https://login.microsoftonline.com/tenant-id/v2.0",
			"aud": "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d", "sub": "someone", "exp": now.Add(time.Hour).Unix()}),
			"an identity provider (https://login.microsoftonline.com/tenant-id/v2.0)", true},
		{"another workspace's token", foreignToken(t, jwt.MapClaims{"iss": "https://other.cloud.databricks.com/oidc",
			"sub": "dev@example.com", "exp": now.Add(time.Hour).Unix()}), "not issued by this workspace", false},
		{"a JWT with no issuer", foreignToken(t, jwt.MapClaims{"sub": "x", "exp": now.Add(time.Hour).Unix()}), "not issued by this workspace", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, target := range []string{w.AppURL("api-app") + "/api/whoami", w.URL() + PathSCIMMe} {
				resp, body := call(t, http.MethodGet, target, bearer(tt.token))
				require.Equal(t, http.StatusUnauthorized, resp.StatusCode, target)
				assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
				var e jsonhttp.Error
				require.NoError(t, json.Unmarshal(body, &e))
				assert.Equal(t, jsonhttp.CodeUnauthenticated, e.Code)
				assert.Contains(t, e.Message, tt.mentions)
				if tt.federation {
					assert.Contains(t, e.Message, "exchange it for a Databricks OAuth token first (token federation)")
					assert.Contains(t, e.Message, "grant_type="+GrantTokenExchange)
					assert.Contains(t, e.Message, w.URL()+PathToken)
				} else {
					assert.NotContains(t, e.Message, "token federation")
				}
				assert.NotContains(t, string(body), tt.token)
			}
		})
	}
	assert.NotContains(t, logs.String(), ci)
}

func TestIdentityProviderDiscoveryAndJWKS(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	idp := w.State().IdentityProviders["ci"]
	assert.Equal(t, w.URL()+"/idp/ci", idp.Issuer)
	assert.Equal(t, idp.Issuer+PathIdPToken, idp.TokenEndpoint)
	assert.Equal(t, []string{ciMain, ciPullRequest}, idp.Subjects)

	resp, body := call(t, http.MethodGet, idp.Issuer+PathIdPDiscovery, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var doc struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	require.NoError(t, json.Unmarshal(body, &doc))
	assert.Equal(t, idp.Issuer, doc.Issuer)
	assert.Equal(t, []string{"RS256"}, doc.Algs)

	resp, body = call(t, http.MethodGet, doc.JWKSURI, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var jwks struct {
		Keys []struct{ Kty, Alg, Kid, N, E string } `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(body, &jwks))
	require.Len(t, jwks.Keys, 1)
	k := jwks.Keys[0]
	assert.Equal(t, "RSA", k.Kty)
	n, err := base64.RawURLEncoding.DecodeString(k.N)
	require.NoError(t, err)
	e, err := base64.RawURLEncoding.DecodeString(k.E)
	require.NoError(t, err)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}

	// A verifier that knows only the discovery document and the JWKS accepts the provider's tokens, as Databricks does.
	minted := time.Now()
	token := idpToken(t, w, "ci", ciMain, ciAudience, 5*time.Minute)
	var claims jwt.MapClaims
	parsed, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithIssuer(doc.Issuer), jwt.WithAudience(ciAudience), jwt.WithExpirationRequired())
	require.NoError(t, err)
	assert.Equal(t, k.Kid, parsed.Header["kid"])
	assert.Equal(t, ciMain, claims["sub"])
	assert.Equal(t, ciAudience, claims["aud"], "a single audience is a string, as GitHub and Entra ID send it")
	exp, err := claims.GetExpirationTime()
	require.NoError(t, err)
	assertExpiresBetween(t, exp.Time, minted, time.Now(), 5*time.Minute)

	entra := idpToken(t, w, "entra", entraApp, "", 0)
	claims = jwt.MapClaims{}
	_, _, err = jwt.NewParser().ParseUnverified(entra, claims)
	require.NoError(t, err)
	assert.Equal(t, "7b0d3c52-5e1a-4f0e-9c1d-2a6b8e4f1001", claims["azp"])
	assert.Equal(t, w.cfg.Workspace.AccountID, claims["aud"], "the account id by default")

	resp, body = call(t, http.MethodGet, w.URL()+"/idp/nobody"+PathIdPDiscovery, nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Contains(t, string(body), "ci, entra")
}

func TestMintRefusals(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	endpoint := w.State().IdentityProviders["ci"].TokenEndpoint
	tests := []struct {
		name     string
		form     url.Values
		mentions string
	}{
		{"no subject", url.Values{}, "issues tokens for the subjects " + ciMain + ", " + ciPullRequest},
		{"a subject it does not issue for", url.Values{"subject": {"repo:evil/x"}}, `not "repo:evil/x"`},
		{"a lifetime too long", url.Values{"subject": {ciMain}, "lifetime": {"48h"}}, "lifetime"},
		{"a lifetime that is no duration", url.Values{"subject": {ciMain}, "lifetime": {"soon"}}, "lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := postForm(t, endpoint, tt.form)
			assert.Equal(t, http.StatusBadRequest, status)
			var e oauthError
			require.NoError(t, json.Unmarshal(body, &e))
			assert.Equal(t, "invalid_request", e.Error)
			assert.Contains(t, e.Description, tt.mentions)
		})
	}
	t.Run("from another machine", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/idp/ci/token", strings.NewReader("subject="+url.QueryEscape(ciMain)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = "192.0.2.7:40000"
		rec := httptest.NewRecorder()
		w.routes().ServeHTTP(rec, req)
		assert.Equal(t, http.StatusForbidden, rec.Code)
		assert.NotContains(t, rec.Body.String(), "id_token")
	})
	t.Run("from a page under another host name (DNS rebinding)", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/idp/ci/token", strings.NewReader("subject="+url.QueryEscape(ciMain)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr, req.Host = "127.0.0.1:40000", "rebind.example:8080"
		rec := httptest.NewRecorder()
		w.routes().ServeHTTP(rec, req)
		assert.Equal(t, http.StatusForbidden, rec.Code)
		assert.NotContains(t, rec.Body.String(), "id_token")
	})
	_, err := MintIdentityToken(t.Context(), endpoint, "repo:evil/x", "", 0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid_request")
}

// A service principal that only federates has no secret, and an empty one is not its secret.
func TestFederatedServicePrincipalHasNoSecret(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	assert.Empty(t, w.State().ServicePrincipals["federated-service"].ClientSecret)
	status, body := postForm(t, w.URL()+PathToken, url.Values{"grant_type": {"client_credentials"},
		"client_id": {federatedServiceID(w)}, "client_secret": {""}, "scope": {"all-apis"}})
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, string(body), "invalid_client")
	assert.Contains(t, string(body), "token federation")
}

func TestValidateFederation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		edit     func(*Config)
		mentions string
	}{
		{"no secret and no policy", func(c *Config) { c.ServicePrincipals[0].Secret = "" }, "unless it has federation_policies"},
		{"unknown issuer", func(c *Config) { c.FederationPolicies[0].Issuer = "github" }, `issuer "github" is not in identity_providers`},
		{"account policy with a subject", func(c *Config) { c.FederationPolicies[0].Subject = "x" }, "an account federation policy has no subject"},
		{"service principal policy without a subject", func(c *Config) { c.ServicePrincipals[4].FederationPolicies[0].Subject = "" },
			"subject is required"},
		{"default audience without an account id", func(c *Config) { c.Workspace.AccountID = "" }, "list the audiences"},
		{"subject claim aud", func(c *Config) { c.FederationPolicies[0].SubjectClaim = "aud" }, `subject_claim "aud"`},
		{"identity provider twice", func(c *Config) { c.IdentityProviders = append(c.IdentityProviders, c.IdentityProviders[0]) },
			`identity provider "ci": names are unique`},
		{"identity provider without subjects", func(c *Config) { c.IdentityProviders[0].Subjects = nil }, "list the subjects"},
		{"a subject overriding iss", func(c *Config) { c.IdentityProviders[1].Subjects[0].Claims = map[string]string{"iss": "x"} },
			`claim "iss"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.mentions)
		})
	}
}
