package workspace

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// Scopes with a meaning of their own. all-apis stands for every API scope; offline_access only asks for a refresh
// token and is never put in an access token.
const (
	ScopeAllAPIs       = "all-apis"
	ScopeOfflineAccess = "offline_access"
)

// CLIClientID is the public OAuth client the Databricks CLI and the SDK's U2M flow use.
const CLIClientID = "databricks-cli"

// accessClaims are the claims of every access token the workspace signs.
type accessClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	// Grant names the authorization code a user token descends from, through refreshes and the proxy's forwarded
	// tokens, so that replaying the code revokes them all (RFC 6749 section 4.1.2). M2M tokens have none.
	Grant string `json:"grant_id,omitempty"`
	// Generation is the subject's token generation when the grant the token stands for was made (an authorization
	// code, which its refresh tokens keep, a browser sign-in, the caller's token for a forwarded one) or, for a
	// credential checked at once (a client secret, an identity provider's token), when it was issued:
	// [Workspace.RevokeTokens] starts a new one, and a token of an earlier one is refused. Zero, and left out,
	// until the subject's tokens are revoked.
	Generation int64 `json:"generation,omitempty"`
}

func (c accessClaims) scopes() []string { return strings.Fields(c.Scope) }

// issuer signs and checks access tokens with a key made at start, so tokens of an earlier run, or of another
// emulator, are refused like any token from a foreign issuer.
type issuer struct {
	// key and verified are pointers so that a copy of the issuer (tests copy one to sign "in the past") shares the
	// current key and what it has verified.
	key      *atomic.Pointer[ecdsa.PrivateKey]
	verified *expiringCache[tokenHash, verifiedToken]
	iss      string
	lifetime time.Duration
	now      func() time.Time
	// generation is a subject's current token generation (grants.generation), which issue signs with.
	generation func(subject string) int64
}

// verifiedToken is a token whose signature, issuer and times were checked, and the key that checked them: after a
// rotation, a token verified under the old key is checked again, and refused.
type verifiedToken struct {
	claims accessClaims
	key    *ecdsa.PrivateKey
}

func newIssuer(iss string, lifetime time.Duration, generation func(subject string) int64) (*issuer, error) {
	i := &issuer{key: new(atomic.Pointer[ecdsa.PrivateKey]),
		verified: newExpiringCache[tokenHash, verifiedToken](maxCachedTokens),
		iss:      iss, lifetime: lifetime, now: time.Now, generation: generation}
	if err := i.rotateKey(); err != nil {
		return nil, err
	}
	return i, nil
}

// rotateKey replaces the signing key: every token signed before, cached as verified or not, is refused from the next
// request on, as a workspace refuses tokens once it stops publishing their key.
func (i *issuer) rotateKey() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate the token signing key: %w", err)
	}
	i.key.Store(key)
	i.verified.clear()
	return nil
}

// issue signs an access token for p at p's current token generation: for a credential checked just now, a client
// secret or an identity provider's token. A token that stands for a grant made earlier is issueAtGeneration's.
func (i *issuer) issue(p principal, clientID, grant string, scopes []string, notAfter time.Time) (token string, expires time.Time, err error) {
	return i.issueAtGeneration(i.generation(p.UserName), p, clientID, grant, scopes, notAfter)
}

// issueAtGeneration signs an access token for p, of the authorization code's grant (or "" for M2M), at generation:
// p's token generation when the grant the token stands for was made, not when it is signed, so that a revocation
// in between yields a token authenticate refuses. notAfter, when set, caps the expiry (a forwarded token never
// outlives the caller's own).
func (i *issuer) issueAtGeneration(generation int64, p principal, clientID, grant string, scopes []string,
	notAfter time.Time) (token string, expires time.Time, err error) {
	now := i.now().Truncate(time.Second)
	expires = now.Add(i.lifetime)
	if !notAfter.IsZero() && notAfter.Before(expires) {
		expires = notAfter
	}
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.iss,
			Subject:   p.UserName,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
			ID:        uuid.NewString(),
		},
		ClientID:   clientID,
		Scope:      strings.Join(withoutOfflineAccess(scopes), " "),
		Grant:      grant,
		Generation: generation,
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(i.key.Load())
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign an access token: %w", err)
	}
	return token, expires, nil
}

// tokenError says why a bearer token was refused, in words safe to send back: never the token itself.
type tokenError struct{ reason string }

func (e *tokenError) Error() string { return e.reason }

// verify checks signature, issuer and expiry and returns the claims. It checks each distinct token once and then
// answers from the cache until the token expires; revocation is not its concern (see authServer.authenticate).
func (i *issuer) verify(token string) (accessClaims, *tokenError) {
	return i.verifyHashed(token, hashToken(token))
}

// verifyHashed is verify for a caller that has hashed the token already, h being hashToken(token).
func (i *issuer) verifyHashed(token string, h tokenHash) (accessClaims, *tokenError) {
	if len(token) > identity.MaxTokenLen {
		return accessClaims{}, &tokenError{"the token is too long to be one of this workspace's"}
	}
	key, now := i.key.Load(), i.now()
	if v, ok := i.verified.get(h, now); ok && v.key == key {
		return v.claims, nil
	}
	claims, terr := i.parse(token, key)
	if terr != nil {
		return accessClaims{}, terr
	}
	i.verified.put(h, verifiedToken{claims: claims, key: key}, claims.ExpiresAt.Time, now)
	return claims, nil
}

// parse checks the token's signature against key, its issuer and its times.
func (i *issuer) parse(token string, key *ecdsa.PrivateKey) (accessClaims, *tokenError) {
	var claims accessClaims
	_, err := jwt.ParseWithClaims(token, &claims,
		func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(i.iss),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(i.now),
	)
	switch {
	case err == nil:
		return claims, nil
	case errors.Is(err, jwt.ErrTokenMalformed):
		return accessClaims{}, &tokenError{"the token is malformed: it is not a JWT"}
	case errors.Is(err, jwt.ErrTokenExpired):
		return accessClaims{}, &tokenError{"the token expired; get a new one"}
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenInvalidIssuer),
		errors.Is(err, jwt.ErrTokenUnverifiable):
		return accessClaims{}, &tokenError{"the token was not issued by this workspace"}
	default:
		return accessClaims{}, &tokenError{"the token is not valid for this workspace"}
	}
}

// coversScopes returns the required scopes a token lacks. all-apis covers every scope.
func coversScopes(granted, required []string) (missing []string) {
	if slices.Contains(granted, ScopeAllAPIs) {
		return nil
	}
	for _, s := range required {
		if !slices.Contains(granted, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

func withoutOfflineAccess(scopes []string) []string {
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if s != ScopeOfflineAccess && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
