package identity_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

const secret = "dapi-very-secret-token-value"

func TestTokenNeverPrints(t *testing.T) {
	t.Parallel()
	tok := identity.Token(secret)
	id := identity.Identity{User: "1@2", AccessToken: tok}

	var out bytes.Buffer
	fmt.Fprintf(&out, "%s %v %+v %#v %q %x %d|", tok, tok, id, id, tok, tok, tok)
	fmt.Fprint(&out, tok, id, &id, []identity.Token{tok})
	fmt.Fprintln(&out, tok)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("m", "token", tok, "identity", id)
	slog.New(slog.NewTextHandler(&out, nil)).Info("m", "token", tok, "identity", id)
	log.New(&out, "", 0).Println(tok, id)
	js, err := json.Marshal(map[string]any{"t": tok, "id": id})
	require.NoError(t, err)
	out.Write(js)

	assert.NotContains(t, out.String(), secret)
	assert.Contains(t, out.String(), "[REDACTED]")
	assert.Equal(t, secret, tok.Reveal())
}

func jwt(t *testing.T, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload) + ".c2ln"
}

func TestDecodeClaims(t *testing.T) {
	t.Parallel()
	exp := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		claims map[string]any
		scopes []string
	}{
		{"scope string", map[string]any{"scope": "sql file.files  dashboards.genie"}, []string{"sql", "file.files", "dashboards.genie"}},
		{"scp list", map[string]any{"scp": []string{"sql", "all-apis"}}, []string{"sql", "all-apis"}},
		{"scp string", map[string]any{"scp": "offline_access sql"}, []string{"offline_access", "sql"}},
		{"scope wins over scp", map[string]any{"scope": "a", "scp": []string{"b"}}, []string{"a"}},
		{"no scopes", map[string]any{}, []string{}},
		{"scope of the wrong type", map[string]any{"scope": 42}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.claims["sub"] = "1001"
			tt.claims["iss"] = "http://127.0.0.1:1/oidc"
			tt.claims["client_id"] = "databricks-cli"
			tt.claims["exp"] = exp.Unix()
			tt.claims["iat"] = exp.Add(-time.Hour).Unix()
			got, err := identity.DecodeClaims(jwt(t, tt.claims))
			require.NoError(t, err)
			assert.Equal(t, identity.TokenClaims{
				Subject: "1001", Issuer: "http://127.0.0.1:1/oidc", ClientID: "databricks-cli",
				Scopes: tt.scopes, IssuedAt: exp.Add(-time.Hour), ExpiresAt: exp,
			}, got)
		})
	}
}

func TestDecodeClaimsRejects(t *testing.T) {
	t.Parallel()
	for name, tok := range map[string]string{
		"opaque":            "dapi0123456789abcdef",
		"two parts":         "a.b",
		"bad base64":        "a.!!!.c",
		"payload not JSON":  "a." + base64.RawURLEncoding.EncodeToString([]byte("hello")) + ".c",
		"payload JSON list": "a." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".c",
		"too long":          "a." + strings.Repeat("A", identity.MaxTokenLen) + ".c",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := identity.DecodeClaims(tok)
			assert.ErrorIs(t, err, identity.ErrNotJWT)
		})
	}
}

func TestDecodeClaimsIgnoresNonsenseTimes(t *testing.T) {
	t.Parallel()
	got, err := identity.DecodeClaims(jwt(t, map[string]any{"exp": "soon", "iat": -5}))
	require.NoError(t, err)
	assert.True(t, got.ExpiresAt.IsZero())
	assert.True(t, got.IssuedAt.IsZero())

	// Past 9999-12-31 a time does not marshal to JSON: /api/whoami answered 500 (caught by FuzzDecodeClaims' check).
	got, err = identity.DecodeClaims(jwt(t, map[string]any{"exp": int64(253402300800), "iat": int64(253402300799)}))
	require.NoError(t, err)
	assert.True(t, got.ExpiresAt.IsZero())
	assert.Equal(t, 9999, got.IssuedAt.Year())
	_, err = json.Marshal(got)
	assert.NoError(t, err)
}
