package identity

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Token is a bearer token held in memory. Every way Go has of printing, logging or marshalling it yields
// "[REDACTED]"; only [Token.Reveal] gives the value, for the one place that sends it on.
type Token string

const redacted = "[REDACTED]"

// Reveal returns the token itself. Call it only to put the token in an Authorization header.
func (t Token) Reveal() string { return string(t) }

// IsZero reports whether no token was forwarded.
func (t Token) IsZero() bool { return t == "" }

func (t Token) String() string                { return redacted }
func (t Token) GoString() string              { return redacted }
func (t Token) LogValue() slog.Value          { return slog.StringValue(redacted) }
func (t Token) MarshalText() ([]byte, error)  { return []byte(redacted), nil }
func (t Token) MarshalJSON() ([]byte, error)  { return []byte(`"` + redacted + `"`), nil }
func (t Token) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }
func (t *Token) UnmarshalText(b []byte) error { *t = Token(b); return nil }

// TokenClaims are the non-secret claims of a JWT access token: enough to tell whose token it is, what it may do and
// until when. The signature is not checked here; the proxy checked it. Never use these claims to authorise.
type TokenClaims struct {
	Subject   string    `json:"subject,omitempty"`
	Issuer    string    `json:"issuer,omitempty"`
	ClientID  string    `json:"client_id,omitempty"`
	Scopes    []string  `json:"scopes"`
	IssuedAt  time.Time `json:"issued_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// MaxTokenLen bounds the tokens [DecodeClaims] accepts.
const MaxTokenLen = MaxHeaderValueLen

// ErrNotJWT means a token is not a JWT (three base64url parts with a JSON payload), so it has no claims to show.
var ErrNotJWT = errors.New("the token is not a JWT")

// DecodeClaims reads the payload of a JWT without verifying it. Scopes come from "scope" (space separated, the OAuth
// form) or "scp" (a list or a string), whichever is present.
func DecodeClaims(token string) (TokenClaims, error) {
	if len(token) > MaxTokenLen {
		return TokenClaims{}, fmt.Errorf("%w: longer than %d bytes", ErrNotJWT, MaxTokenLen)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return TokenClaims{}, ErrNotJWT
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return TokenClaims{}, fmt.Errorf("%w: payload is not base64url", ErrNotJWT)
	}
	var raw struct {
		Sub      string          `json:"sub"`
		Iss      string          `json:"iss"`
		ClientID string          `json:"client_id"`
		Scope    json.RawMessage `json:"scope"`
		Scp      json.RawMessage `json:"scp"`
		Iat      json.RawMessage `json:"iat"`
		Exp      json.RawMessage `json:"exp"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return TokenClaims{}, fmt.Errorf("%w: payload is not a JSON object", ErrNotJWT)
	}
	claims := TokenClaims{Subject: raw.Sub, Issuer: raw.Iss, ClientID: raw.ClientID, Scopes: []string{}}
	for _, field := range []json.RawMessage{raw.Scope, raw.Scp} {
		if scopes := parseScopes(field); len(scopes) > 0 {
			claims.Scopes = scopes
			break
		}
	}
	claims.IssuedAt = unixTime(raw.Iat)
	claims.ExpiresAt = unixTime(raw.Exp)
	return claims, nil
}

// parseScopes accepts "a b c" or ["a","b","c"]; anything else yields no scopes.
func parseScopes(field json.RawMessage) []string {
	if len(field) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(field, &s) == nil {
		return strings.Fields(s)
	}
	var list []string
	if json.Unmarshal(field, &list) == nil {
		var scopes []string
		for _, item := range list {
			scopes = append(scopes, strings.Fields(item)...)
		}
		return scopes
	}
	return nil
}

// maxNumericDate is 9999-12-31T23:59:59Z: later times do not marshal to JSON (RFC 3339 has four-digit years).
const maxNumericDate = 253402300799

// unixTime reads a NumericDate claim; a claim that is not a number yields the zero time.
func unixTime(field json.RawMessage) time.Time {
	var n json.Number
	if json.Unmarshal(field, &n) != nil {
		return time.Time{}
	}
	secs, err := n.Int64()
	if err != nil || secs <= 0 || secs > maxNumericDate {
		return time.Time{}
	}
	return time.Unix(secs, 0).UTC()
}
