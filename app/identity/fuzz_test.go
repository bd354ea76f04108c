package identity_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// The fuzz targets here cover the two parsers of untrusted input in this package: the proxy's headers and the
// forwarded token's claims. Their seeds run with every `go test`; `make fuzz` explores beyond them.

// FuzzFromHeaders sends arbitrary values, repeated or not, in every forwarded header. FromHeaders must never panic,
// must fail only with ErrNoIdentity or a *HeaderError, and on success must hold no control characters anywhere.
func FuzzFromHeaders(f *testing.F) {
	long := strings.Repeat("a", identity.MaxHeaderValueLen+1)
	seeds := []struct {
		user, email, other string
		twice              bool
	}{
		{"1001@1234567890123456", "dev@example.com", "203.0.113.7", false},
		{"2001@1234567890123456", "", "6f0c4f7e-6f2a-4f43-9b37-0a5b1b2c3d4e", false},
		{"dev@example.com", "dev@example.com", "", false},
		{"1001@1234567890123456", "", "", true}, // a client's copy beside the proxy's
		{"", "ceo@example.com", "", false},
		{"someone", "", "", false},
		{"1@2@3", "", "", false},
		{"@example.com", "", "", false},
		{"1001@1234567890123456\x00", "", "", false},
		{"1001@1234567890123456\r\nX-Forwarded-User: 9@9", "", "", false},
		{"1001@2", "a@b.c\x7f", "", false},
		{"1001@2", "\xff\xfe", "", false},
		{"1001@2", "dev@example.com\u0085", "", false}, // NEL, a C1 control character
		{"1001@2", "", "\t203.0.113.7", false},
		{"1001@2", "", long, false},
		{long + "@2", "", "", false},
		{"١٢٣@٤٥٦", "", "", false}, // Arabic-Indic digits are not ASCII digits
	}
	for _, s := range seeds {
		f.Add(s.user, s.email, s.other, s.twice)
	}
	f.Fuzz(func(t *testing.T, user, email, other string, twice bool) {
		h := http.Header{}
		add := func(name, v string) {
			if v != "" {
				h.Add(name, v)
			}
		}
		add(identity.HeaderUser, user)
		add(identity.HeaderEmail, email)
		for _, name := range []string{identity.HeaderPreferredUsername, identity.HeaderHost, identity.HeaderAccessToken,
			identity.HeaderRealIP, identity.HeaderRequestID} {
			add(name, other)
		}
		if twice {
			add(identity.HeaderUser, user)
		}
		id, err := identity.FromHeaders(h)
		if err != nil {
			var headerErr *identity.HeaderError
			if !errors.Is(err, identity.ErrNoIdentity) && !errors.As(err, &headerErr) {
				t.Fatalf("FromHeaders: unexpected error type %T: %v", err, err)
			}
			return
		}
		if twice {
			t.Fatalf("a repeated %s was accepted", identity.HeaderUser)
		}
		for name, v := range map[string]string{"user": id.User, "email": id.Email, "preferred_username": id.PreferredUsername,
			"host": id.Host, "real_ip": id.RealIP, "request_id": id.RequestID, "token": id.AccessToken.Reveal()} {
			if len(v) > identity.MaxHeaderValueLen {
				t.Fatalf("%s is %d bytes long", name, len(v))
			}
			if i := strings.IndexFunc(v, unicode.IsControl); i >= 0 {
				t.Fatalf("%s holds control character %q: %q", name, v[i:i+1], v)
			}
		}
		switch id.UserFormat {
		case identity.FormatWorkspaceID:
			if identity.FormatUser(id.PrincipalID, id.WorkspaceID) != id.User {
				t.Fatalf("FormatUser(%q, %q) != %q", id.PrincipalID, id.WorkspaceID, id.User)
			}
		case identity.FormatEmail:
			if id.PrincipalID != "" || id.WorkspaceID != "" || id.Kind != identity.KindUser {
				t.Fatalf("email-format identity with ids or kind %q: %+v", id.Kind, id)
			}
		default:
			t.Fatalf("user format %q", id.UserFormat)
		}
		if _, err := json.Marshal(id); err != nil {
			t.Fatalf("the identity does not marshal: %v", err)
		}
	})
}

// FuzzParseUser checks ParseUser and FormatUser are inverses: whatever ParseUser accepts, FormatUser rebuilds exactly.
func FuzzParseUser(f *testing.F) {
	for _, s := range []string{"1001@1234567890123456", "1@2", "", "@", "1@", "@2", "a@2", "1@2@3", "dev@example.com",
		"+1@2", "-1@2", "1 @2", "١@٢", "0x1@2", "1@2\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		p, w, ok := identity.ParseUser(v)
		if !ok {
			if p != "" || w != "" {
				t.Fatalf("ParseUser(%q) refused but returned %q, %q", v, p, w)
			}
			return
		}
		if got := identity.FormatUser(p, w); got != v {
			t.Fatalf("FormatUser(ParseUser(%q)) = %q", v, got)
		}
		for _, part := range []string{p, w} {
			if part == "" || strings.Trim(part, "0123456789") != "" {
				t.Fatalf("ParseUser(%q) accepted a non-numeric part %q", v, part)
			}
		}
	})
}

// FuzzDecodeClaims decodes arbitrary tokens and arbitrary JSON payloads wrapped as JWTs. DecodeClaims must never
// panic, must wrap ErrNotJWT in every error, must never return a scope holding whitespace, and what it returns must
// marshal to JSON: /api/whoami sends it as is.
func FuzzDecodeClaims(f *testing.F) {
	for _, payload := range []string{
		`{"sub":"1001","iss":"https://example.cloud.databricks.com/oidc","client_id":"databricks-cli","scope":"sql file.files","iat":1795000000,"exp":1795003600}`,
		`{"sub":"dev@example.com","scp":["sql","offline_access"]}`,
		`{"scp":"all-apis sql"}`,
		`{"scp":["a b","c\td"]}`,
		`{"scope":" sql\u00a0file.files\u2003x\u0085y "}`,
		`{"scope":42,"scp":{"a":1}}`,
		`{"exp":1e400,"iat":-1}`,
		`{"exp":99999999999,"iat":1099511627776}`, // years past 9999: too late for JSON's RFC 3339
		`{"exp":"1795003600"}`,
		`{"sub":"\u0000\ud800"}`,
		`[]`, `null`, `"x"`, `{`, ``,
	} {
		f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln")
	}
	for _, tok := range []string{"", "a.b.c", "opaque-token-value", "..", "a.b", "a.b.c.d", "a.eyJ9.c", "a.e30=.c",
		"a.e30.c", "a.!!!.c", "a.\xff.c", strings.Repeat("a", identity.MaxTokenLen+1)} {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, token string) {
		check := func(token string) {
			claims, err := identity.DecodeClaims(token)
			if err != nil {
				if !errors.Is(err, identity.ErrNotJWT) {
					t.Fatalf("DecodeClaims(%q): error %v does not wrap ErrNotJWT", token, err)
				}
				return
			}
			if claims.Scopes == nil {
				t.Fatalf("DecodeClaims(%q): nil scopes (marshals as null, not [])", token)
			}
			for _, s := range claims.Scopes {
				if s == "" || strings.IndexFunc(s, unicode.IsSpace) >= 0 {
					t.Fatalf("DecodeClaims(%q): scope %q is empty or holds whitespace", token, s)
				}
			}
			if _, err := json.Marshal(claims); err != nil {
				t.Fatalf("DecodeClaims(%q): the claims do not marshal: %v", token, err)
			}
		}
		check(token)
		// The input as a JWT payload too, so the fuzzer reaches the JSON decoding without learning base64 first.
		check("e30." + base64.RawURLEncoding.EncodeToString([]byte(token)) + ".c2ln")
	})
}
