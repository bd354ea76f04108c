package workspace

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// Paths of an emulated identity provider, under its issuer URL <workspace>/idp/<name>. Discovery and JWKS are
// where a real OIDC provider has them (GitHub Actions serves the same two); the token endpoint is the emulator's
// stand-in for "your CI provider gives you a JWT".
const (
	PathIdentityProviders = "/idp"
	PathIdPDiscovery      = "/.well-known/openid-configuration"
	PathIdPJWKS           = "/.well-known/jwks"
	PathIdPToken          = "/token"
)

// Identity token lifetimes: an hour by default, as Entra ID's; GitHub's are shorter. The cap keeps a minted token
// from outliving a working day.
const (
	DefaultIdentityTokenLifetime = time.Hour
	MaxIdentityTokenLifetime     = 24 * time.Hour
)

// identityProvider is one emulated external OIDC issuer. Its RSA key (RS256, as GitHub and Entra ID sign) is made
// on first use rather than at Start: making one takes tens of milliseconds, and most runs never federate. Either
// way it lives only as long as the workspace, so a token of an earlier run is refused.
type identityProvider struct {
	cfg IdentityProvider
	iss string

	keyOnce sync.Once
	key     *rsa.PrivateKey
	kid     string
	keyErr  error
	made    atomic.Bool // the key is made: a lasting workspace saves it (persist.go)
	onKey   func()      // tells the workspace's store that the key is made
}

func (p *identityProvider) signingKey() (*rsa.PrivateKey, string, error) {
	p.keyOnce.Do(func() {
		p.key, p.keyErr = rsa.GenerateKey(rand.Reader, 2048)
		if p.keyErr != nil {
			p.keyErr = fmt.Errorf("generate the signing key of identity provider %s: %w", p.cfg.Name, p.keyErr)
			return
		}
		p.kid = jwkThumbprint(&p.key.PublicKey)
		p.made.Store(true)
		if p.onKey != nil {
			p.onKey()
		}
	})
	return p.key, p.kid, p.keyErr
}

// subject returns the identity the provider issues tokens for under this sub.
func (p *identityProvider) subject(sub string) (IdentitySubject, bool) {
	i := slices.IndexFunc(p.cfg.Subjects, func(s IdentitySubject) bool { return s.Sub == sub })
	if i < 0 {
		return IdentitySubject{}, false
	}
	return p.cfg.Subjects[i], true
}

// mint signs a token for subject and audience, issued at now. aud is a single string, as GitHub and Entra ID
// send it.
func (p *identityProvider) mint(s IdentitySubject, audience string, now time.Time, lifetime time.Duration) (string, time.Time, error) {
	key, kid, err := p.signingKey()
	if err != nil {
		return "", time.Time{}, err
	}
	now = now.Truncate(time.Second)
	expires := now.Add(lifetime)
	claims := jwt.MapClaims{}
	for k, v := range s.Claims {
		claims[k] = v
	}
	claims["iss"], claims["sub"], claims["aud"] = p.iss, s.Sub, audience
	claims["iat"], claims["nbf"], claims["exp"] = now.Unix(), now.Unix(), expires.Unix()
	claims["jti"] = uuid.NewString()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = kid
	token, err := t.SignedString(key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign a token of identity provider %s: %w", p.cfg.Name, err)
	}
	return token, expires, nil
}

// errUnknownKey is a token signed with a key the provider's JWKS does not list.
var errUnknownKey = errors.New("signed with a key its issuer's JWKS does not list")

// verify checks a token's signature against the provider's key (the one its JWKS publishes), its issuer and its
// expiry, and returns its claims. Audience and subject are the federation policies' business.
func (p *identityProvider) verify(token string, now func() time.Time) (jwt.MapClaims, error) {
	key, kid, err := p.signingKey()
	if err != nil {
		return nil, err
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(token, claims,
		func(t *jwt.Token) (any, error) {
			if k, ok := t.Header["kid"].(string); ok && k != kid {
				return nil, errUnknownKey
			}
			return &key.PublicKey, nil
		},
		// Databricks accepts RS256 and ES256 subject tokens; an ES256 one can't verify against an RSA key, and
		// fails as badly signed, as it would against a real provider's RSA JWKS.
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(p.iss),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(now),
	)
	return claims, err
}

// jwkThumbprint is the RFC 7638 thumbprint of an RSA public key, the usual key id.
func jwkThumbprint(pub *rsa.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"e":"` + b64(big.NewInt(int64(pub.E)).Bytes()) + `","kty":"RSA","n":"` +
		b64(pub.N.Bytes()) + `"}`))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// identityProviderRoutes serves one identity provider under /idp/{idp}: discovery, JWKS and the mint endpoint.
func (a *authServer) identityProviderRoutes(r chi.Router) {
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
			if _, ok := a.federation.byName[chi.URLParam(req, "idp")]; !ok {
				jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
					Message: fmt.Sprintf("no identity provider %q", truncate(chi.URLParam(req, "idp"), 100)),
					Fix:     "the model's identity_providers are " + strings.Join(a.federation.names(), ", ")})
				return
			}
			next.ServeHTTP(rw, req)
		})
	})
	r.Get(PathIdPDiscovery, a.handleIdPDiscovery())
	r.Get(PathIdPJWKS, a.handleIdPJWKS())
	r.Post(PathIdPToken, a.handleIdPToken())
}

func (a *authServer) idpOf(r *http.Request) *identityProvider {
	return a.federation.byName[chi.URLParam(r, "idp")]
}

func (a *authServer) handleIdPDiscovery() http.HandlerFunc {
	type response struct {
		Issuer          string   `json:"issuer"`
		JWKSURI         string   `json:"jwks_uri"`
		TokenEndpoint   string   `json:"token_endpoint"`
		ResponseTypes   []string `json:"response_types_supported"`
		SubjectTypes    []string `json:"subject_types_supported"`
		SigningAlgs     []string `json:"id_token_signing_alg_values_supported"`
		ClaimsSupported []string `json:"claims_supported"`
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		p := a.idpOf(r)
		claims := []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti"}
		for _, s := range p.cfg.Subjects {
			for k := range s.Claims {
				if !slices.Contains(claims, k) {
					claims = append(claims, k)
				}
			}
		}
		jsonhttp.Write(rw, http.StatusOK, response{
			Issuer: p.iss, JWKSURI: p.iss + PathIdPJWKS, TokenEndpoint: p.iss + PathIdPToken,
			ResponseTypes: []string{"id_token"}, SubjectTypes: []string{"public"},
			SigningAlgs: []string{jwt.SigningMethodRS256.Alg()}, ClaimsSupported: claims,
		})
	}
}

func (a *authServer) handleIdPJWKS() http.HandlerFunc {
	type jwk struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		key, kid, err := a.idpOf(r).signingKey()
		if err != nil {
			a.logger.Error("identity provider key", "err", err)
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusInternalServerError, Code: jsonhttp.CodeInternal,
				Message: "the identity provider has no signing key"})
			return
		}
		jsonhttp.Write(rw, http.StatusOK, map[string][]jwk{"keys": {{Kty: "RSA", Use: "sig",
			Alg: jwt.SigningMethodRS256.Alg(), Kid: kid, N: b64(key.N.Bytes()),
			E: b64(big.NewInt(int64(key.E)).Bytes())}}})
	}
}

// handleIdPToken mints a token of the identity provider: form fields subject (one of its subjects), audience (the
// account id by default, as a federation policy's audiences) and lifetime (a Go duration, 1h by default). A real
// provider authenticates the workload first; the emulator only serves the local machine instead.
func (a *authServer) handleIdPToken() http.HandlerFunc {
	type response struct {
		IDToken   string `json:"id_token"`
		ExpiresIn int64  `json:"expires_in"`
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		if !fromLocalMachine(r) {
			writeOAuthError(rw, http.StatusForbidden, "access_denied", "identity tokens are minted for the local machine only")
			return
		}
		r.Body = http.MaxBytesReader(rw, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			writeOAuthError(rw, http.StatusBadRequest, "invalid_request", "the form body could not be parsed")
			return
		}
		p := a.idpOf(r)
		f := r.PostForm
		s, ok := p.subject(f.Get("subject"))
		if !ok {
			writeOAuthError(rw, http.StatusBadRequest, "invalid_request", fmt.Sprintf(
				"identity provider %s issues tokens for the subjects %s, not %q", p.cfg.Name, strings.Join(p.subs(), ", "),
				truncate(f.Get("subject"), 100)))
			return
		}
		audience := f.Get("audience")
		if audience == "" {
			audience = a.cfg.Workspace.AccountID
		}
		if audience == "" {
			writeOAuthError(rw, http.StatusBadRequest, "invalid_request",
				"audience is required: the model has no workspace.account_id to default to")
			return
		}
		lifetime := DefaultIdentityTokenLifetime
		if v := f.Get("lifetime"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > MaxIdentityTokenLifetime {
				writeOAuthError(rw, http.StatusBadRequest, "invalid_request", fmt.Sprintf(
					"lifetime must be a duration from 1s to %s, such as 10m", MaxIdentityTokenLifetime))
				return
			}
			lifetime = d
		}
		token, expires, err := p.mint(s, audience, a.issuer.now(), lifetime)
		if err != nil {
			a.logger.Error("mint an identity token", "err", err)
			writeOAuthError(rw, http.StatusInternalServerError, "server_error", "could not sign a token")
			return
		}
		a.logger.Info("identity provider issued a token", "issuer", p.cfg.Name, "subject", s.Sub,
			"audience", audience, "expires", expires.Format(time.RFC3339))
		rw.Header().Set("Cache-Control", "no-store")
		jsonhttp.Write(rw, http.StatusOK, response{IDToken: token, ExpiresIn: int64(lifetime / time.Second)})
	}
}

// subs lists the sub of every subject the provider issues tokens for.
func (p *identityProvider) subs() []string {
	subs := make([]string, len(p.cfg.Subjects))
	for i, s := range p.cfg.Subjects {
		subs[i] = s.Sub
	}
	return subs
}

// MintIdentityToken asks an emulated identity provider for a token for subject, as a CI job asks its provider
// for an OIDC token: tokenEndpoint is the provider's token_endpoint (in the state file). An empty audience means
// the account id; lifetime 0 means an hour. Its errors never contain the token.
func MintIdentityToken(ctx context.Context, tokenEndpoint, subject, audience string, lifetime time.Duration) (string, error) {
	form := url.Values{"subject": {subject}}
	if audience != "" {
		form.Set("audience", audience)
	}
	if lifetime != 0 {
		form.Set("lifetime", lifetime.String())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("mint an identity token: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("mint an identity token at %s: %w (is the emulator running?)", tokenEndpoint, err)
	}
	defer resp.Body.Close()
	var body struct {
		IDToken     string `json:"id_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("mint an identity token at %s: %s, unreadable answer", tokenEndpoint, resp.Status)
	}
	if resp.StatusCode != http.StatusOK || body.IDToken == "" {
		return "", fmt.Errorf("mint an identity token at %s: %s: %s: %s", tokenEndpoint, resp.Status, body.Error, body.Description)
	}
	return body.IDToken, nil
}
