package workspace

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
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
}

func (c accessClaims) scopes() []string { return strings.Fields(c.Scope) }

// issuer signs and checks access tokens with a key made at start, so tokens of an earlier run, or of another
// emulator, are refused like any token from a foreign issuer.
type issuer struct {
	key      *ecdsa.PrivateKey
	iss      string
	lifetime time.Duration
	now      func() time.Time
}

func newIssuer(iss string, lifetime time.Duration) (*issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the token signing key: %w", err)
	}
	return &issuer{key: key, iss: iss, lifetime: lifetime, now: time.Now}, nil
}

// issue signs an access token for p, of the authorization code's grant (or "" for M2M). notAfter, when set, caps
// the expiry (a forwarded token never outlives the caller's own).
func (i *issuer) issue(p principal, clientID, grant string, scopes []string, notAfter time.Time) (token string, expires time.Time, err error) {
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
		ClientID: clientID,
		Scope:    strings.Join(withoutOfflineAccess(scopes), " "),
		Grant:    grant,
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(i.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign an access token: %w", err)
	}
	return token, expires, nil
}

// tokenError says why a bearer token was refused, in words safe to send back: never the token itself.
type tokenError struct{ reason string }

func (e *tokenError) Error() string { return e.reason }

// verify checks signature, issuer and expiry and returns the claims.
func (i *issuer) verify(token string) (accessClaims, *tokenError) {
	if len(token) > identity.MaxTokenLen {
		return accessClaims{}, &tokenError{"the token is too long to be one of this workspace's"}
	}
	var claims accessClaims
	_, err := jwt.ParseWithClaims(token, &claims,
		func(*jwt.Token) (any, error) { return &i.key.PublicKey, nil },
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
