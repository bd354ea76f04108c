package workspace

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The token and authorize endpoints parse whatever an OAuth client, or anyone, sends. These fuzz targets drive
// them in-process through the workspace's router: never a 5xx, every error an OAuth error, and a redirect only ever
// to a loopback address.

// oauthErrors are the RFC 6749 error codes the endpoints may answer with.
var oauthErrors = []string{"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope", "unsupported_response_type", "temporarily_unavailable"}

// startFuzzWorkspace starts the default model quietly, for a fuzz target's whole run.
func startFuzzWorkspace(f *testing.F) *Workspace {
	f.Helper()
	w, err := Start(f.Context(), Options{Config: DefaultConfig(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(f, err)
	f.Cleanup(func() { _ = w.Close() })
	return w
}

// checkOAuthError fails unless rec is a JSON OAuth error with one of the given statuses.
func checkOAuthError(t *testing.T, rec *httptest.ResponseRecorder, statuses ...int) {
	t.Helper()
	if !slices.Contains(statuses, rec.Code) {
		t.Fatalf("status %d, want one of %v: %s", rec.Code, statuses, rec.Body)
	}
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("status %d with Content-Type %q", rec.Code, ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !slices.Contains(oauthErrors, e.Error) || e.Description == "" {
		t.Fatalf("status %d without an OAuth error (%v): %s", rec.Code, err, rec.Body)
	}
}

// FuzzTokenRequest posts arbitrary bodies, content types and Basic credentials to the token endpoint. The answer is
// a token (only for credentials that are right) or a JSON OAuth error with 400 or 401; never a 5xx, never a panic.
func FuzzTokenRequest(f *testing.F) {
	w := startFuzzWorkspace(f)
	handler := w.routes()
	sp, _ := w.dir.servicePrincipalByName("external-service")
	form := "application/x-www-form-urlencoded"
	seeds := []struct {
		body, contentType, basic string
	}{
		{"grant_type=client_credentials&scope=all-apis", form, sp.ApplicationID + ":" + sp.Secret},
		{"grant_type=client_credentials&client_id=" + sp.ApplicationID + "&client_secret=" + sp.Secret, form, ""},
		{"grant_type=client_credentials&client_secret=x", form, sp.ApplicationID + ":" + sp.Secret},
		{"grant_type=client_credentials", form, "nobody:wrong"},
		{"grant_type=client_credentials", form, "%zz:%zz"},
		{"grant_type=authorization_code&client_id=" + CLIClientID + "&code=x&redirect_uri=http://localhost:8020&code_verifier=" + strings.Repeat("v", 43), form, ""},
		{"grant_type=authorization_code&client_id=" + CLIClientID + "&code=&redirect_uri=", form, ""},
		{"grant_type=refresh_token&client_id=" + CLIClientID + "&refresh_token=nope", form, ""},
		{"grant_type=password&username=a&password=b", form, ""},
		{"grant_type=client_credentials&grant_type=refresh_token", form, ""},
		{"", form, ""},
		{"%zz=%zz&;;&=", form, ""},
		{"grant_type=client_credentials\x00", form + "; charset=utf-8", ""},
		{"grant_type=\xff\xfe", form, "\xff:\xfe"},
		{`{"grant_type":"client_credentials"}`, "application/json", ""},
		{"grant_type=client_credentials", "", ""},
		{"grant_type=client_credentials", "multipart/form-data; boundary=x", ""},
		{strings.Repeat("a=b&", 20000), form, ""}, // over the 64 KiB limit
	}
	for _, s := range seeds {
		f.Add(s.body, s.contentType, s.basic)
	}
	f.Fuzz(func(t *testing.T, body, contentType, basic string) {
		req := httptest.NewRequest(http.MethodPost, PathToken, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if id, secret, ok := strings.Cut(basic, ":"); ok {
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+secret)))
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			var tok struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &tok); err != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" {
				t.Fatalf("200 without a token: %s", rec.Body)
			}
			if !strings.Contains(basic+body, sp.Secret) {
				t.Fatalf("a token without the client secret: body %q, basic %q", body, basic)
			}
			return
		}
		checkOAuthError(t, rec, http.StatusBadRequest, http.StatusUnauthorized)
	})
}

// FuzzAuthorize sends arbitrary query strings to the authorize endpoint: a JSON OAuth error with 400 when the client
// or the redirect URI is wrong, otherwise a 302 to an http:// loopback address. Never a 5xx, never another host.
func FuzzAuthorize(f *testing.F) {
	w := startFuzzWorkspace(f)
	handler := w.routes()
	good := url.Values{"client_id": {CLIClientID}, "response_type": {"code"}, "redirect_uri": {"http://localhost:8020"},
		"state": {"s"}, "code_challenge": {s256(strings.Repeat("v", 43))}, "code_challenge_method": {"S256"},
		"scope": {"offline_access all-apis"}}
	f.Add(good.Encode())
	for _, redirect := range []string{"http://127.0.0.1:9/cb", "http://[::1]:8020/", "http://localhost:8020/?x=1",
		"http://evil.example/cb", "https://localhost:8020", "http://localhost.evil.example/", "http://127.0.0.1.nip.io/",
		"http://user@localhost/", "http://localhost:8020#x", "//localhost:8020", "http:localhost", "http:///localhost",
		"http://localhost\\@evil.example/", "http://localhost%2f@evil.example/", "http://[::ffff:127.0.0.1]/",
		"http://0x7f000001/", "http://127.1/", "javascript://localhost/%0aalert(1)", "HTTP://LOCALHOST:8020/",
		"http://localhost:8020/\r\nSet-Cookie: x=y", "http://localhost:99999/", "", "%zz"} {
		q := url.Values{}
		for k, v := range good {
			q[k] = v
		}
		q.Set("redirect_uri", redirect)
		f.Add(q.Encode())
	}
	for _, k := range []string{"client_id", "response_type", "code_challenge", "code_challenge_method", "scope", "state"} {
		for _, v := range []string{"", "x", "\x00", "\xff", strings.Repeat("a", 200), "a b", "S256 S256"} {
			q := url.Values{}
			for key, vs := range good {
				q[key] = vs
			}
			q.Set(k, v)
			f.Add(q.Encode())
		}
	}
	f.Add(good.Encode() + "&redirect_uri=http://evil.example/") // a second redirect_uri
	f.Add("redirect_uri=http://evil.example/&" + good.Encode())
	f.Add(";;;&&&==%zz")
	f.Fuzz(func(t *testing.T, rawQuery string) {
		req := httptest.NewRequest(http.MethodGet, PathAuthorize, nil)
		req.URL.RawQuery = rawQuery
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusFound {
			checkOAuthError(t, rec, http.StatusBadRequest)
			return
		}
		loc, err := url.Parse(rec.Header().Get("Location"))
		if err != nil {
			t.Fatalf("?%s: 302 to an unparsable Location %q: %v", rawQuery, rec.Header().Get("Location"), err)
		}
		host := loc.Hostname()
		ip := net.ParseIP(host)
		if loc.Scheme != "http" || loc.User != nil || !(host == "localhost" || (ip != nil && ip.IsLoopback())) {
			t.Fatalf("?%s: 302 to %q, not an http:// loopback address", rawQuery, loc)
		}
		if strings.ContainsAny(rec.Header().Get("Location"), "\r\n") {
			t.Fatalf("?%s: Location holds a line break", rawQuery)
		}
		// The redirect carries a code or an OAuth error. (Parameters of the client's own redirect URI are kept, as
		// RFC 6749 asks, so a code may come beside an "error" the client put there itself.)
		lq := loc.Query()
		if e := lq.Get("error"); lq.Get("code") == "" && !slices.Contains(oauthErrors, e) {
			t.Fatalf("?%s: 302 to %q: want a code or an OAuth error", rawQuery, loc)
		}
	})
}

// FuzzSignInTarget opens the login page with arbitrary next_url values. A page with a sign-in form is shown only for
// a next_url on one of the workspace's app proxies, and the form returns to that proxy's own origin: whatever the
// value, the browser is never sent anywhere else (no open redirect). Never a 5xx.
func FuzzSignInTarget(f *testing.F) {
	w := startFuzzWorkspace(f)
	handler := w.routes()
	api := w.AppURL("api-app")
	for _, seed := range []string{api + "/", api + "/x?y=1#z", api, "http://evil.example.com/", "//evil.example.com",
		api + "@evil.example.com/", "http://" + strings.TrimPrefix(api, "http://") + "\\@evil.example.com/",
		api + "/%2f%2fevil.example.com", "javascript:alert(1)", api + "/.auth/callback?code=x", "", "http://[::1]:80/"} {
		f.Add(seed)
	}
	origins := map[string]bool{}
	for _, name := range w.AppNames() {
		origins[w.AppURL(name)] = true
	}
	f.Fuzz(func(t *testing.T, next string) {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathLogin+"?next_url="+url.QueryEscape(next), nil))
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q", rec.Code, next)
		}
		target, problem := w.sessions.signInTarget(next)
		hasForm := strings.Contains(rec.Body.String(), `name="csrf_token"`)
		if hasForm != (problem == "") {
			t.Fatalf("next_url %q: form shown %v, problem %q", next, hasForm, problem)
		}
		if problem != "" {
			return
		}
		back, err := url.Parse(target.url())
		if err != nil || !origins[back.Scheme+"://"+back.Host] || !strings.HasPrefix(target.next, "/") || back.User != nil {
			t.Fatalf("next_url %q returns to %q (%v)", next, target.url(), err)
		}
	})
}
