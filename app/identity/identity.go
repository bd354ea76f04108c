// Package identity is the contract between the Databricks Apps reverse proxy and an app: the headers the proxy
// forwards, and the Identity an app builds from them.
//
// The app reads these headers, the emulator writes them and the caller prints what the app saw, so all three import
// this package and none of them spells a header name of its own.
package identity

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Headers the Databricks Apps proxy sets on every request it forwards to an app. Whether the proxy also removes copies
// a client sent is not documented (the emulator removes them, the safe choice), so [FromHeaders] refuses a header that
// arrives twice; an app that runs without the proxy in front of it must not trust them at all.
const (
	HeaderUser              = "X-Forwarded-User"               // "<numeric id>@<workspace id>"; an email under `databricks apps run-local`
	HeaderEmail             = "X-Forwarded-Email"              // users only: service principals have no email
	HeaderPreferredUsername = "X-Forwarded-Preferred-Username" // userName of a user, application id of a service principal
	HeaderHost              = "X-Forwarded-Host"               // the app's public host name
	HeaderAccessToken       = "X-Forwarded-Access-Token"       // the user's downscoped token, with user authorization only
	HeaderRealIP            = "X-Real-Ip"                      // the client's address as the proxy saw it
	HeaderRequestID         = "X-Request-Id"                   // a fresh UUID per request
)

// ForwardedHeaders lists every header the proxy owns. A faithful proxy removes client-sent copies of all of them.
var ForwardedHeaders = []string{
	HeaderUser, HeaderEmail, HeaderPreferredUsername, HeaderHost, HeaderAccessToken, HeaderRealIP, HeaderRequestID,
}

// MaxHeaderValueLen bounds each forwarded header value. Real values are short (a JWT access token is the longest,
// a few kilobytes); anything longer is not from the proxy.
const MaxHeaderValueLen = 16 << 10

// Kind tells a user from a service principal.
type Kind string

const (
	KindUser             Kind = "user"
	KindServicePrincipal Kind = "service_principal"
)

// UserFormat says how X-Forwarded-User was spelled, which tells where the request came from.
type UserFormat string

const (
	// FormatWorkspaceID is production: "<numeric principal id>@<workspace id>", for users and service principals.
	FormatWorkspaceID UserFormat = "id@workspace"
	// FormatEmail is `databricks apps run-local`, which forwards the developer's email instead.
	FormatEmail UserFormat = "email"
)

// Identity is who the proxy says sent a request. Its JSON form is safe to show the caller: the access token is
// never marshalled, printed or logged (see [Token]).
type Identity struct {
	User              string     `json:"user"`
	UserFormat        UserFormat `json:"user_format"`
	PrincipalID       string     `json:"principal_id,omitempty"` // numeric id, production format only
	WorkspaceID       string     `json:"workspace_id,omitempty"` // production format only
	Kind              Kind       `json:"kind"`
	Email             string     `json:"email,omitempty"`
	PreferredUsername string     `json:"preferred_username,omitempty"`
	Host              string     `json:"host,omitempty"`
	RealIP            string     `json:"real_ip,omitempty"`
	RequestID         string     `json:"request_id,omitempty"`
	AccessToken       Token      `json:"-"`
}

// ErrNoIdentity means the request carried no X-Forwarded-User: it did not come through the Databricks Apps proxy.
var ErrNoIdentity = errors.New("no " + HeaderUser + " header: the request did not come through the Databricks Apps proxy")

// HeaderError reports a forwarded header whose value no proxy would send.
type HeaderError struct {
	Header string
	Reason string
}

func (e *HeaderError) Error() string { return fmt.Sprintf("header %s: %s", e.Header, e.Reason) }

// FromHeaders builds the Identity from the proxy's headers. It returns [ErrNoIdentity] when X-Forwarded-User is
// absent, and a [*HeaderError] when any forwarded header is repeated, too long, not UTF-8 or holds control characters.
func FromHeaders(h http.Header) (Identity, error) {
	var err error
	value := func(name string) string {
		v, e := singleValue(h, name)
		if err == nil {
			err = e
		}
		return v
	}
	// One read of each of the ForwardedHeaders, all checked before any is used.
	id := Identity{
		User:              value(HeaderUser),
		Email:             value(HeaderEmail),
		PreferredUsername: value(HeaderPreferredUsername),
		Host:              value(HeaderHost),
		AccessToken:       Token(value(HeaderAccessToken)),
		RealIP:            value(HeaderRealIP),
		RequestID:         value(HeaderRequestID),
	}
	if err != nil {
		return Identity{}, err
	}
	if id.User == "" {
		return Identity{}, ErrNoIdentity
	}
	if principal, workspace, ok := ParseUser(id.User); ok {
		id.UserFormat, id.PrincipalID, id.WorkspaceID = FormatWorkspaceID, principal, workspace
	} else if isEmail(id.User) {
		id.UserFormat = FormatEmail
	} else {
		return Identity{}, &HeaderError{Header: HeaderUser, Reason: `want "<id>@<workspace id>" or an email`}
	}
	// Only users have an email; under run-local X-Forwarded-User is itself the user's email.
	id.Kind = KindServicePrincipal
	if id.Email != "" || id.UserFormat == FormatEmail {
		id.Kind = KindUser
	}
	return id, nil
}

// ParseUser splits a production X-Forwarded-User value, "<numeric id>@<numeric workspace id>".
func ParseUser(v string) (principalID, workspaceID string, ok bool) {
	principalID, workspaceID, ok = strings.Cut(v, "@")
	if !ok || !isDigits(principalID) || !isDigits(workspaceID) {
		return "", "", false
	}
	return principalID, workspaceID, true
}

// FormatUser is the inverse of [ParseUser]: the X-Forwarded-User value the proxy sends for a principal.
func FormatUser(principalID, workspaceID string) string { return principalID + "@" + workspaceID }

// singleValue reads one forwarded header. The names are constants in canonical form, the form net/http stores
// received headers under, so they index the map directly: h.Values would canonicalise each name again, which costs
// more than the checks.
func singleValue(h http.Header, name string) (string, error) {
	vs := h[name]
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", &HeaderError{Header: name, Reason: "sent more than once"}
	}
	v := vs[0]
	if len(v) > MaxHeaderValueLen {
		return "", &HeaderError{Header: name, Reason: fmt.Sprintf("longer than %d bytes", MaxHeaderValueLen)}
	}
	// What the proxy sends is printable ASCII: checked byte by byte, it needs no decoding rune by rune
	// (BenchmarkFromHeaders, a user with a 900-byte token: 2.2–2.6 µs without this, 0.9–1.4 µs with it).
	if isPrintableASCII(v) {
		return v, nil
	}
	if !utf8.ValidString(v) {
		return "", &HeaderError{Header: name, Reason: "not valid UTF-8"}
	}
	// C0, DEL and C1 (U+0080-U+009F, such as NEL, which some log viewers take for a line break).
	if strings.ContainsFunc(v, unicode.IsControl) {
		return "", &HeaderError{Header: name, Reason: "holds control characters"}
	}
	return v, nil
}

// isEmail is a loose check: run-local forwards whatever email the developer's profile holds.
func isEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && !strings.Contains(domain, "@")
}

// isPrintableASCII reports whether s holds only the bytes from space to '~': valid UTF-8 without control characters.
func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// WhoAmI is the body of GET /api/whoami: the identity exactly as the app received it and, when the proxy forwarded a
// user access token, that token's non-secret claims. The token itself is never included.
type WhoAmI struct {
	Identity
	AccessTokenForwarded bool         `json:"access_token_forwarded"`
	AccessTokenClaims    *TokenClaims `json:"access_token_claims,omitempty"`
	// AccessTokenNote explains a forwarded token without claims (not a JWT) or a missing one.
	AccessTokenNote string `json:"access_token_note,omitempty"`
}
