package main

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/caller/appclient"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// The caller builds URLs from paths a person or, in serve, an HTTP request chooses. These fuzz targets and tests
// check that nothing chosen that way can leave /api/ on the fixed target app, or reach another host.

// fixedTarget is the target app of these tests. Nothing resolves it: serve's requests to it are answered in-process.
const fixedTarget = "https://api-app-1.aws.databricksapps.com"

// hostilePaths are paths serve and call must refuse: traversal, other hosts and schemes, encoded tricks.
var hostilePaths = []string{
	"", "/", "/health", "api/whoami", "/API/whoami", "/apix/whoami", "/api", "logz",
	"/api/../x", "/api/..", "/api/./whoami", "/api/x/../../logz", "/api/x/..", "/api/x/./y",
	"//host/api", "//evil.example/api/x", "/api//evil.example", "/api/x//y", "///api/x",
	"http://host/api", "https://evil.example/api/x", "http://evil.example/api/", "https:/evil.example/api/",
	"HTTP://evil.example/api/", "javascript:alert(1)", "file:///etc/passwd", "mailto:a@b.c",
	"/api/%2e%2e/x", "/api/%2E%2E/x", "/api/.%2e/x", "/api/%2e./x", "/api/%2e", "/api/x%2fy", "/api/x%2F..%2Fy",
	"/api/%2F/evil.example", "/api/%252e%252e/x", "/api/%25", "/api/x%5c..", "/api/x%5C..%5Cy", "/api/x%00",
	"\\\\host\\api", "/api/x\\..\\logz", "/api\\..\\x", "\\/evil.example/api/",
	"/api/x y", "/api/x\ty", "/api/x\n", "/api/x\r\nHost: evil.example", "/api/\x00", "/api/x\x7f",
	"/api/x#frag", "/api/x?y#z",
	"\xff/api/x",
	"/api/" + strings.Repeat("a", 3000),
}

// goodPaths are accepted and reach the target exactly as given.
var goodPaths = []string{
	"/api/whoami", "/api/items?x=1&y=2", "/api/a%20b", "/api/v1/users/me", "/api/x..y/z.json",
	"/api/search?q=a/b:c", "/api/search?q=../..//x", "/api/@evil.example", "/api/x:80", "/api/ümlaut",
}

// checkAccepted fails unless the URL apiURL made of p stays on base under /api/, whoever decodes it.
func checkAccepted(t *testing.T, base *url.URL, p, got string) {
	t.Helper()
	rawPath, _, _ := strings.Cut(p, "?")
	lower := strings.ToLower(rawPath)
	switch {
	case !strings.HasPrefix(p, "/api/"):
		t.Fatalf("accepted %q: not an /api/ path", p)
	case strings.Contains(rawPath, "//"), strings.ContainsAny(p, "\\#"):
		t.Fatalf("accepted %q: holds //, \\ or #", p)
	case strings.Contains(lower, "%2e"), strings.Contains(lower, "%2f"), strings.Contains(lower, "%5c"):
		t.Fatalf("accepted %q: encodes a dot, slash or backslash", p)
	}
	u, err := url.Parse(got)
	if err != nil {
		t.Fatalf("accepted %q as %q, which does not parse: %v", p, got, err)
	}
	if u.Scheme != base.Scheme || u.Host != base.Host || u.User != nil || u.Opaque != "" {
		t.Fatalf("accepted %q as %q: not on %s", p, got, base)
	}
	for _, decoded := range []string{u.Path, unescapedOr(u.Path)} { // once, as Go does, and twice, as some servers do
		if !strings.HasPrefix(decoded, "/api/") || !strings.HasPrefix(path.Clean(decoded)+"/", "/api/") {
			t.Fatalf("accepted %q as %q: path %q leaves /api/", p, got, decoded)
		}
		for _, seg := range strings.Split(decoded, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("accepted %q as %q: path %q has a %q segment", p, got, decoded, seg)
			}
		}
	}
	req, err := http.NewRequest(http.MethodGet, got, nil)
	if err != nil || req.URL.Host != base.Host || req.Host != base.Host {
		t.Fatalf("accepted %q as %q: a request to it would not go to %s (%v)", p, got, base.Host, err)
	}
}

func unescapedOr(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// FuzzAPIURL: apiURL never panics, refuses only with errBadPath, and whatever it accepts stays on the target.
func FuzzAPIURL(f *testing.F) {
	base, err := parseAppURL(fixedTarget)
	require.NoError(f, err)
	tg := &appclient.Target{Base: base}
	for _, p := range append(append([]string{}, hostilePaths...), goodPaths...) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := tg.APIURL(p)
		if err != nil {
			if !errors.Is(err, appclient.ErrBadPath) {
				t.Fatalf("apiURL(%q): error %v is not errBadPath", p, err)
			}
			return
		}
		checkAccepted(t, base, p, got)
	})
}

// FuzzParseAppURL: --url and TARGET_APP_URL accept only an http(s) origin, and what they keep parses back to itself.
func FuzzParseAppURL(f *testing.F) {
	for _, s := range []string{fixedTarget, fixedTarget + "/", "http://127.0.0.1:8000", " https://a.example ",
		"https://a.example/api", "https://a.example?x", "https://a.example#f", "https://user:pw@a.example",
		"ftp://a.example", "//a.example", "a.example", "https://", "https:///x", "https://a.example\\@b.example",
		"https://[::1]:8000", "https://a.example:99999", "https://%2e%2e", "http://a.example/%2e%2e", "\x00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseAppURL(raw)
		if err != nil {
			var f *failure
			if !errors.As(err, &f) || f.Code != exitUsage {
				t.Fatalf("parseAppURL(%q): %v is not a usage failure", raw, err)
			}
			return
		}
		if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" ||
			u.User != nil || strings.ContainsAny(u.Host, "/\\@?#") {
			t.Fatalf("parseAppURL(%q) = %#v", raw, u)
		}
		again, err := parseAppURL(u.String())
		if err != nil || again.String() != u.String() {
			t.Fatalf("parseAppURL(%q) = %q, which parses to %v, %v", raw, u, again, err)
		}
	})
}

// serveFixture is `callapp serve` with a fixed target, its own service principal's token from the emulated workspace,
// and every request it sends to the target answered in-process and recorded. Nothing leaves the machine.
type serveFixture struct {
	handler http.Handler
	base    *url.URL

	// hold, when set before the first request, keeps each request to the target until it is closed; held tells of
	// each one held.
	hold, held chan struct{}

	mu   sync.Mutex
	sent []*url.URL // every request serve sent, wherever to
}

func newServeFixture(tb testing.TB) *serveFixture {
	tb.Helper()
	fx := &serveFixture{}
	ws, _ := emulated.Start(tb, workspace.Options{})
	env := emulated.AppEnv(ws, "caller-app")
	getenv := func(k string) string { return env[k] }
	opts := &options{mode: ModeApp, timeout: 20 * time.Second}
	s, err := newSession(tb.Context(), testEnv(opts, getenv))
	require.NoError(tb, err)
	fx.base, err = parseAppURL(fixedTarget)
	require.NoError(tb, err)
	s.client.HTTP.Transport = fx
	fx.handler = newServer(slog.New(slog.NewTextHandler(io.Discard, nil)), &targetResolver{session: s, resolved: &appclient.Target{Base: fx.base}}, opts.timeout)
	return fx
}

// RoundTrip records where serve sent a request and answers it as the target app would, without a network.
func (fx *serveFixture) RoundTrip(r *http.Request) (*http.Response, error) {
	u := *r.URL
	fx.mu.Lock()
	fx.sent = append(fx.sent, &u)
	fx.mu.Unlock()
	if fx.hold != nil {
		fx.held <- struct{}{}
		<-fx.hold
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"ok":true}`)), Request: r}, nil
}

// get asks serve for GET /api/call?<rawQuery> and returns the answer and what serve sent to the target meanwhile.
func (fx *serveFixture) get(rawQuery string) (*httptest.ResponseRecorder, []*url.URL) {
	fx.mu.Lock()
	before := len(fx.sent)
	fx.mu.Unlock()
	req := httptest.NewRequest(http.MethodGet, "/api/call", nil)
	req.URL.RawQuery = rawQuery
	rec := httptest.NewRecorder()
	fx.handler.ServeHTTP(rec, req)
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return rec, append([]*url.URL(nil), fx.sent[before:]...)
}

// check asserts serve's answer to rawQuery: 400 and nothing sent, or 200 and one request to the target's /api/.
func (fx *serveFixture) check(t *testing.T, rawQuery string) (status int) {
	t.Helper()
	rec, sent := fx.get(rawQuery)
	for _, u := range sent {
		if u.Scheme != fx.base.Scheme || u.Host != fx.base.Host {
			t.Fatalf("?%s: serve sent a request to %s, not the fixed target %s", rawQuery, u, fx.base)
		}
	}
	if testkit.JWT.MatchString(rec.Body.String()) {
		t.Fatalf("?%s: serve's answer holds a token", rawQuery)
	}
	switch rec.Code {
	case http.StatusBadRequest:
		var e jsonhttp.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != jsonhttp.CodeInvalidParameter {
			t.Fatalf("?%s: 400 without the error shape: %s", rawQuery, rec.Body)
		}
		if len(sent) != 0 {
			t.Fatalf("?%s: refused with 400 but sent %v", rawQuery, sent)
		}
	case http.StatusOK:
		if len(sent) != 1 {
			t.Fatalf("?%s: 200 after %d requests to the target", rawQuery, len(sent))
		}
		q, _ := url.ParseQuery(rawQuery)
		p := q.Get("path")
		if p == "" {
			p = "/api/whoami"
		}
		checkAccepted(t, fx.base, p, sent[0].String())
	default:
		t.Fatalf("?%s: status %d: %s", rawQuery, rec.Code, rec.Body)
	}
	return rec.Code
}

// FuzzServePath sends arbitrary `path` parameters to serve's GET /api/call, both query-escaped and raw as a client
// may write them: serve answers 400 and sends nothing, or sends one request to the fixed target's /api/.
func FuzzServePath(f *testing.F) {
	fx := newServeFixture(f)
	for _, p := range append(append([]string{}, hostilePaths...), goodPaths...) {
		f.Add(p)
	}
	f.Add("/api/whoami&path=//evil.example/api/x")
	f.Add("%2Fapi%2F..%2Fx")
	f.Add("/api/x;/../y")
	f.Add("/api/\xff\xfe") // accepted: not UTF-8, but sent percent-encoded to the target's /api/
	f.Fuzz(func(t *testing.T, p string) {
		fx.check(t, "path="+url.QueryEscape(p))
		fx.check(t, "path="+p)
	})
}

// TestServeRefusesHostilePaths: each hostile path gets 400 from serve and nothing is fetched from anywhere; written
// raw into the query (so serve decodes it once more) it is refused too or decodes to a harmless /api/ path on the
// target. The good paths reach the fixed target unchanged.
func TestServeRefusesHostilePaths(t *testing.T) {
	t.Parallel()
	fx := newServeFixture(t)
	tried, refused := 0, 0
	for _, p := range hostilePaths {
		if p == "" {
			continue // an empty path means the default, /api/whoami
		}
		q := "path=" + url.QueryEscape(p)
		rec, sent := fx.get(q)
		tried++
		if assert.Equal(t, http.StatusBadRequest, rec.Code, "?%s: %s", q, rec.Body) {
			refused++
		}
		assert.Empty(t, sent, "?%s", q)
		assert.Contains(t, rec.Body.String(), jsonhttp.CodeInvalidParameter, "?%s", q)

		tried++
		if fx.check(t, "path="+p) == http.StatusBadRequest {
			refused++
		}
	}
	for _, p := range goodPaths {
		rec, sent := fx.get("path=" + url.QueryEscape(p))
		assert.Equal(t, http.StatusOK, rec.Code, "%s: %s", p, rec.Body)
		if assert.Len(t, sent, 1, p) {
			want, err := url.Parse(fixedTarget + p)
			require.NoError(t, err)
			assert.Equal(t, want.String(), sent[0].String())
		}
	}
	t.Logf("serve: %d hostile requests, %d refused with 400 (the rest decoded to safe /api/ paths), 0 sent off-target; %d good paths",
		tried, refused, len(goodPaths))
}

// serve answers HEAD on its GET routes as GET does.
func TestServeAnswersHead(t *testing.T) {
	t.Parallel()
	fx := newServeFixture(t)
	for _, path := range []string{"/api/health", "/api/call?path=/api/whoami"} {
		t.Run(path, func(t *testing.T) {
			get, head := httptest.NewRecorder(), httptest.NewRecorder()
			fx.handler.ServeHTTP(get, httptest.NewRequest(http.MethodGet, path, nil))
			fx.handler.ServeHTTP(head, httptest.NewRequest(http.MethodHead, path, nil))
			require.Equal(t, http.StatusOK, get.Code, get.Body.String())
			assert.Equal(t, get.Code, head.Code, head.Body.String())
			assert.Equal(t, get.Header().Get("Content-Type"), head.Header().Get("Content-Type"))
		})
	}
}
