package identity_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestFromHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   http.Header
		want identity.Identity
	}{
		{
			name: "production user",
			in: headers(
				identity.HeaderUser, "1001@1234567890123456",
				identity.HeaderEmail, "dev@example.com",
				identity.HeaderPreferredUsername, "dev@example.com",
				identity.HeaderHost, "api-app-1234.aws.databricksapps.com",
				identity.HeaderRealIP, "203.0.113.7",
				identity.HeaderRequestID, "7f1c3e52-0d7a-4c55-9b0e-2f4f1c0e9d11",
				identity.HeaderAccessToken, "a.b.c",
			),
			want: identity.Identity{
				User: "1001@1234567890123456", UserFormat: identity.FormatWorkspaceID,
				PrincipalID: "1001", WorkspaceID: "1234567890123456", Kind: identity.KindUser,
				Email: "dev@example.com", PreferredUsername: "dev@example.com",
				Host: "api-app-1234.aws.databricksapps.com", RealIP: "203.0.113.7",
				RequestID: "7f1c3e52-0d7a-4c55-9b0e-2f4f1c0e9d11", AccessToken: "a.b.c",
			},
		},
		{
			name: "production service principal has no email",
			in: headers(
				identity.HeaderUser, "2001@1234567890123456",
				identity.HeaderPreferredUsername, "6f0c4f7e-6f2a-4f43-9b37-0a5b1b2c3d4e",
			),
			want: identity.Identity{
				User: "2001@1234567890123456", UserFormat: identity.FormatWorkspaceID,
				PrincipalID: "2001", WorkspaceID: "1234567890123456", Kind: identity.KindServicePrincipal,
				PreferredUsername: "6f0c4f7e-6f2a-4f43-9b37-0a5b1b2c3d4e",
			},
		},
		{
			name: "databricks apps run-local forwards the email",
			in:   headers(identity.HeaderUser, "dev@example.com", identity.HeaderEmail, "dev@example.com"),
			want: identity.Identity{
				User: "dev@example.com", UserFormat: identity.FormatEmail, Kind: identity.KindUser, Email: "dev@example.com",
			},
		},
		{
			name: "header names are case-insensitive",
			in:   http.Header{"X-Forwarded-User": {"dev@example.com"}},
			want: identity.Identity{User: "dev@example.com", UserFormat: identity.FormatEmail, Kind: identity.KindUser},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := identity.FromHeaders(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestFromHeadersRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     http.Header
		header string
	}{
		{"user not an id or email", headers(identity.HeaderUser, "someone"), identity.HeaderUser},
		{"empty local part", headers(identity.HeaderUser, "@example.com"), identity.HeaderUser},
		{"two @", headers(identity.HeaderUser, "1@2@3"), identity.HeaderUser},
		{"repeated user", headers(identity.HeaderUser, "1@2", identity.HeaderUser, "3@2"), identity.HeaderUser},
		{"control character", headers(identity.HeaderUser, "1@2", identity.HeaderEmail, "a@b.c\x00"), identity.HeaderEmail},
		{"tab", headers(identity.HeaderUser, "1@2", identity.HeaderRequestID, "a\tb"), identity.HeaderRequestID},
		{"DEL", headers(identity.HeaderUser, "1@2\x7f"), identity.HeaderUser},
		{"C1 control character (NEL)", headers(identity.HeaderUser, "1@2", identity.HeaderEmail, "a@b.c\u0085"), identity.HeaderEmail},
		{"invalid UTF-8", headers(identity.HeaderUser, "1@2", identity.HeaderPreferredUsername, "\xff\xfe"), identity.HeaderPreferredUsername},
		{"too long", headers(identity.HeaderUser, "1@2", identity.HeaderAccessToken, strings.Repeat("a", identity.MaxHeaderValueLen+1)), identity.HeaderAccessToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := identity.FromHeaders(tt.in)
			var headerErr *identity.HeaderError
			require.ErrorAs(t, err, &headerErr)
			assert.Equal(t, tt.header, headerErr.Header)
		})
	}
}

// Every header the proxy owns is checked, not only the ones the identity needs most.
func TestFromHeadersRefusesAnyRepeatedHeader(t *testing.T) {
	t.Parallel()
	for _, name := range identity.ForwardedHeaders {
		_, err := identity.FromHeaders(headers(identity.HeaderUser, "1@2", name, "a", name, "b"))
		var headerErr *identity.HeaderError
		require.ErrorAs(t, err, &headerErr, name)
		assert.Equal(t, name, headerErr.Header)
	}
}

func TestFromHeadersWithoutUser(t *testing.T) {
	t.Parallel()
	_, err := identity.FromHeaders(headers(identity.HeaderEmail, "dev@example.com"))
	assert.ErrorIs(t, err, identity.ErrNoIdentity)
}

func TestParseAndFormatUser(t *testing.T) {
	t.Parallel()
	p, w, ok := identity.ParseUser(identity.FormatUser("1001", "42"))
	require.True(t, ok)
	assert.Equal(t, "1001", p)
	assert.Equal(t, "42", w)
	for _, bad := range []string{"", "@", "1@", "@2", "a@2", "1@2@3", "dev@example.com"} {
		_, _, ok := identity.ParseUser(bad)
		assert.False(t, ok, bad)
	}
}

// BenchmarkFromHeaders parses what the proxy forwards for a user with user authorization.
func BenchmarkFromHeaders(b *testing.B) {
	h := headers(
		identity.HeaderUser, "1001@1234567890123456",
		identity.HeaderEmail, "dev@example.com",
		identity.HeaderPreferredUsername, "dev@example.com",
		identity.HeaderHost, "api-app-1234.aws.databricksapps.com",
		identity.HeaderRealIP, "203.0.113.7",
		identity.HeaderRequestID, "7f1c3e52-0d7a-4c55-9b0e-2f4f1c0e9d11",
		identity.HeaderAccessToken, strings.Repeat("t", 900),
	)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := identity.FromHeaders(h); err != nil {
			b.Fatal(err)
		}
	}
}

// The emulator writes the identity headers and the app reads them through the same constants, so a misspelt
// constant would pass every other test. These are the names the platform documents ("Connect to a Databricks app
// using token authentication" and the Databricks Apps environment page), spelt out once, canonical as net/http keys
// them.
func TestHeaderNamesAreThePlatforms(t *testing.T) {
	t.Parallel()
	documented := []string{
		"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username", "X-Forwarded-Host",
		"X-Forwarded-Access-Token", "X-Real-Ip", "X-Request-Id",
	}
	assert.Equal(t, documented, identity.ForwardedHeaders)
	for name, got := range map[string]string{
		"X-Forwarded-User": identity.HeaderUser, "X-Forwarded-Email": identity.HeaderEmail,
		"X-Forwarded-Preferred-Username": identity.HeaderPreferredUsername, "X-Forwarded-Host": identity.HeaderHost,
		"X-Forwarded-Access-Token": identity.HeaderAccessToken, "X-Real-Ip": identity.HeaderRealIP, "X-Request-Id": identity.HeaderRequestID,
	} {
		assert.Equal(t, name, got)
		assert.Equal(t, name, http.CanonicalHeaderKey(got), "canonical, as net/http keys it")
	}
}
