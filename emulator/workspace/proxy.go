package workspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// appProxy is one app's emulated Databricks Apps reverse proxy: it authenticates the caller, checks CAN_USE and
// scopes, and forwards with identity headers it set itself, having stripped any the client sent.
type appProxy struct {
	name      string
	url       string
	apps      *appManager
	logs      *appLog
	resumes   logResumes // where the app's log streams that just ended stopped (logz.go)
	server    *http.Server
	transport *http.Transport
	settings  atomic.Pointer[appSettings]
	forwarded *expiringCache[forwardedKey, string] // the forwarded user tokens issued so far

	mu       sync.RWMutex
	upstream *url.URL
}

// forwardedKey names a forwarded user token: one per caller token and version of the app's settings and of the
// workspace's allowed scopes, so a change of user_api_scopes or of the setting reaches the token of the next request.
type forwardedKey struct {
	caller   tokenHash
	settings *appSettings   // a new value on every change (see appSettings): the pointer is the version
	allowed  *allowedScopes // the same for the allowed scopes (settings.go)
}

// copyBuffers lends httputil.ReverseProxy the buffers it copies response bodies through. Without a pool it
// allocates and zeroes 32 KiB per request, which under load costs the proxy more than its own checks.
var copyBuffers httputil.BufferPool = &bufferPool{}

type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.pool.Put(&buf) }

// maxIdleUpstreamConns is how many idle connections to the app the proxy keeps: more than the concurrency of a load
// test or a parallel test suite, so that steady load never waits for a new connection.
const maxIdleUpstreamConns = 128

func newAppProxy(m *appManager, s *appSettings, url string) *appProxy {
	p := &appProxy{name: s.name, url: url, apps: m, logs: newAppLog(),
		forwarded: newExpiringCache[forwardedKey, string](maxCachedTokens)}
	p.settings.Store(s)
	return p
}

func (p *appProxy) setUpstream(raw string) error {
	if raw == "" {
		p.mu.Lock()
		p.upstream = nil
		p.mu.Unlock()
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("upstream of app %q: want a URL such as http://127.0.0.1:8000, got %q", p.name, raw)
	}
	p.mu.Lock()
	p.upstream = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	p.mu.Unlock()
	p.apps.logger.Info("app attached", "app", p.name, "upstream", p.upstream.String())
	return nil
}

// host is the proxy's loopback address, the host of its URL.
func (p *appProxy) host() string {
	u, _ := url.Parse(p.url)
	return u.Hostname()
}

// port is the proxy's own port, the one in its URL.
func (p *appProxy) port() int {
	u, _ := url.Parse(p.url)
	n, _ := strconv.Atoi(u.Port())
	return n
}

func (p *appProxy) upstreamURL() *url.URL {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.upstream
}

// forward is what the checks decided, handed to Rewrite through the request context.
type forward struct {
	upstream  *url.URL
	principal principal
	user      string // the principal as X-Forwarded-User spells it, once it is known
	requestID string
	token     string // the downscoped user token for X-Forwarded-Access-Token, or ""
	appAnswer bool   // the app answered, and the proxy passed its answer on
	appStatus int    // the status the app answered with (a 101 never reaches the status recorder: it is hijacked)
}

type forwardKey struct{}

func (p *appProxy) handler() http.Handler {
	p.transport = &http.Transport{
		Proxy:                 nil, // the app is local: never route it through HTTP_PROXY
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		ResponseHeaderTimeout: p.apps.timeout,
		MaxIdleConnsPerHost:   maxIdleUpstreamConns,
		IdleConnTimeout:       30 * time.Second,
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: p.transport,
		ModifyResponse: func(resp *http.Response) error {
			fwd := resp.Request.Context().Value(forwardKey{}).(*forward)
			fwd.appAnswer, fwd.appStatus = true, resp.StatusCode
			withoutEmulatorSetCookies(resp.Header) // an app may not set, replace or clear the proxy's own cookies
			return nil
		},
		BufferPool:   copyBuffers,
		ErrorHandler: p.upstreamError,
		ErrorLog:     slog.NewLogLogger(p.apps.logger.Handler(), slog.LevelWarn),
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if isLogsPath(r.URL.Path) {
			p.serveLogs(rw, r) // the platform's own paths: never forwarded, so neither access-logged nor given identity headers
			return
		}
		if isAuthPath(r.URL.Path) {
			p.serveAuth(rw, r) // the browser sign-in's callback and logout (sessions.go)
			return
		}
		rec := middleware.NewWrapResponseWriter(rw, r.ProtoMajor)
		start := time.Now()
		fwd := &forward{requestID: uuid.NewString()}
		defer p.logRequest(r, rec, fwd, start)
		if problem := pathProblem(r.URL); problem != "" {
			jsonhttp.WriteError(rec, &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
				Message: "the request path " + problem,
				Fix:     "send the path the app serves, with dot segments resolved, as browsers and HTTP clients do"})
			return
		}
		if !p.admit(rec, r, fwd) || p.playFault(rec, r, fwd.principal) {
			return
		}
		rp.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), forwardKey{}, fwd)))
	})
}

// logRequest writes the access log line of a request: at Info when the answer is the proxy's own (a sign-in
// redirect, a refusal, a fault, an app that is unreachable or too slow, a failed upgrade), which the app did not give,
// and at Debug (emulator --verbose) when it passed the app's answer on, which the app logs itself. The line is handed to the logger's handler as a record, rather than through Logger.LogAttrs,
// which walks the stack on every call for a source line this log never prints.
func (p *appProxy) logRequest(r *http.Request, rec middleware.WrapResponseWriter, fwd *forward, start time.Time) {
	ctx := r.Context()
	level, status := slog.LevelInfo, statusOf(rec)
	if fwd.appAnswer {
		level, status = slog.LevelDebug, fwd.appStatus
	}
	h := p.apps.logger.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	now := time.Now()
	line := slog.NewRecord(now, level, "proxy request", 0) // 0: no source line
	line.AddAttrs(slog.String("app", p.name), slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", status), slog.String("user", fwd.user), slog.String("request_id", fwd.requestID),
		slog.Duration("duration", now.Sub(start).Round(time.Microsecond)))
	_ = h.Handle(ctx, line)
}

// admit runs the platform's checks in its order: a browser session outside /api/ (302), a session or a bearer
// token on /api/ (401), CAN_USE (403), the app's user authorization scopes (403), a running app (502). It fills fwd
// and reports whether to forward. A refusal is JSON on /api/ and a page for a browser elsewhere.
func (p *appProxy) admit(rw http.ResponseWriter, r *http.Request, fwd *forward) bool {
	res, answered := p.browserAuth(rw, r)
	if answered {
		return false
	}
	if res == nil {
		var terr *tokenError
		if res, terr = p.apps.auth.authenticate(r); res == nil {
			if terr == nil {
				writeUnauthorized(rw, "No access token: this app's /api/ routes need Authorization: Bearer <OAuth token>.", false)
			} else {
				writeUnauthorized(rw, "Invalid access token: "+terr.reason, true)
			}
			return false
		}
	}
	if res.session && !safeMethod(r.Method) {
		// A form or a fetch another origin's page sends carries the browser's session cookie with it; only the app's
		// own pages may change anything with it. A bearer token is not sent unasked, so it is not checked.
		if err := sameOriginOnly.Check(r); err != nil {
			p.refuse(rw, r, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
				Message: fmt.Sprintf("a %s from another origin's page, with the browser's session of app %s, is refused",
					r.Method, p.name),
				Fix: "send it from the app's own pages, or with Authorization: Bearer <token>"})
			return false
		}
	}
	who := res.principal
	fwd.principal = who
	fwd.user = identity.FormatUser(who.ID, p.apps.cfg.Workspace.ID)
	settings := p.settings.Load()
	if !mayUse(settings, who) {
		p.refuse(rw, r, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
			Message: fmt.Sprintf("%s does not have CAN USE permission on app %s", who.UserName, p.name),
			Fix: fmt.Sprintf("ask a manager of the app to grant it: databricks apps update-permissions %s --json "+
				"'{\"access_control_list\":[{\"%s\":\"%s\",\"permission_level\":\"CAN_USE\"}]}'",
				p.name, aclField(who), who.UserName)})
		return false
	}
	// One value of the workspace's allowed scopes for the whole request: the scopes checked are those forwarded.
	allowed := p.apps.settings.allowed.Load()
	scopes := allowed.effective(settings.userAPIScopes)
	needsUserToken := who.Kind == identity.KindUser && len(scopes) > 0
	if needsUserToken {
		if missing := coversScopes(res.claims.scopes(), scopes); len(missing) > 0 {
			p.refuse(rw, r, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
				Message: fmt.Sprintf("the token lacks scopes app %s requires: %s", p.name, strings.Join(missing, ", ")),
				Fix: fmt.Sprintf("get a user token with the scopes %s (an OAuth U2M login with custom scopes)",
					strings.Join(scopes, " "))})
			return false
		}
	}
	fwd.upstream = p.upstreamURL()
	if fwd.upstream == nil {
		p.refuseNotRunning(rw, r)
		return false
	}
	if needsUserToken {
		token, err := p.forwardedToken(res, settings, allowed)
		if err != nil {
			p.apps.logger.Error("issue the forwarded user token", "err", err)
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusInternalServerError, Code: jsonhttp.CodeInternal,
				Message: "the proxy could not issue the forwarded user token"})
			return false
		}
		fwd.token = token
	}
	return true
}

// refuseNotRunning answers for an app with nothing to forward to: 503 while it starts, else 502 saying what brings
// it up (apps start for a stopped app, a deployment for one that never ran).
func (p *appProxy) refuseNotRunning(rw http.ResponseWriter, r *http.Request) {
	starting, stopped := p.apps.upState(p.name)
	fix := "deploy it (databricks apps deploy " + p.name + " --source-code-path /Workspace/…) or start it " +
		"under the emulator: go run ./emulator run --app " + p.name + " -- <command>"
	switch {
	case starting:
		rw.Header().Set("Retry-After", "1")
		p.refuse(rw, r, &jsonhttp.Error{Status: http.StatusServiceUnavailable, Code: jsonhttp.CodeUnavailable,
			Message: fmt.Sprintf("app %s is starting", p.name),
			Fix:     "try again in a moment; databricks apps get " + p.name + " says when it is RUNNING"})
		return
	case stopped:
		fix = "start it: databricks apps start " + p.name
	}
	p.refuse(rw, r, &jsonhttp.Error{Status: http.StatusBadGateway, Code: jsonhttp.CodeBadGateway,
		Message: fmt.Sprintf("app %s is not running", p.name), Fix: fix})
}

// forwardedToken is the user token forwarded to the app for the caller's token: issued on the first request with
// the app's effective user_api_scopes under allowed, the value of the workspace's setting the request was checked
// against, then the same token until it expires with the caller's. A revoked or rotated caller token never gets here
// (authenticate refuses it), and the app's copy is refused by the same checks: it carries the caller's grant and
// token generation, so a revocation after the caller was checked stops it too.
func (p *appProxy) forwardedToken(res *authResult, settings *appSettings, allowed *allowedScopes) (string, error) {
	// A caller authenticated otherwise than by a bearer token has no hash to key the cache by: it gets a new token
	// each time rather than another caller's.
	cacheable := res.tokenHash != tokenHash{}
	scopes := allowed.effective(settings.userAPIScopes)
	key := forwardedKey{caller: res.tokenHash, settings: settings, allowed: allowed}
	now := p.apps.auth.issuer.now()
	if token, ok := p.forwarded.get(key, now); ok && cacheable {
		return token, nil
	}
	token, expires, err := p.apps.auth.issuer.issueAtGeneration(res.claims.Generation, res.principal, res.claims.ClientID,
		res.claims.Grant, scopes, res.claims.ExpiresAt.Time)
	if err != nil {
		return "", err
	}
	if cacheable {
		p.forwarded.put(key, token, expires, now)
	}
	return token, nil
}

// aclField is the Permissions API field that names p.
func aclField(p principal) string {
	if p.Kind == identity.KindUser {
		return "user_name"
	}
	return "service_principal_name"
}

// redirectToLogin answers as the platform does a browser without a workspace session: 302 to the workspace's login
// page, which returns to the requested URL.
func (p *appProxy) redirectToLogin(rw http.ResponseWriter, r *http.Request) {
	login := p.apps.url + PathLogin + "?next_url=" + url.QueryEscape(p.url+r.URL.RequestURI())
	http.Redirect(rw, r, login, http.StatusFound)
}

// pathProblem says why the proxy refuses a request path, or "" to forward it unchanged. It refuses a dot segment
// ("." or "..") anywhere, after decoding (%2e is a dot, %2f a slash) and also where some servers see one: after a
// backslash, or before a ";parameter". It refuses an /api/ prefix that is percent-encoded, too (/api%2fx, /%61pi/x).
//
// It refuses rather than resolving because the proxy's /api/ check and the app's router must read the same path.
// Browsers, curl and the SDK resolve dot segments before sending, so only a crafted request carries one; and a
// resolved /api%2f..%2fadmin is /admin to an app that decodes first but a single segment to one that does not, so
// no cleaned path is safe to forward. An encoded slash inside a segment (/api/files/a%2Fb) is data and is kept.
func pathProblem(u *url.URL) string {
	for rest := u.Path; rest != ""; {
		segment := rest
		if i := strings.IndexAny(rest, `/\`); i >= 0 {
			segment, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if name, _, _ := strings.Cut(segment, ";"); name == "." || name == ".." {
			return "holds a dot segment (. or ..), which the proxy does not resolve"
		}
	}
	if isAPIPath(u.Path) != isAPIPath(u.EscapedPath()) {
		return "spells its /api/ prefix with percent-encoding"
	}
	return ""
}

func isAPIPath(path string) bool { return path == "/api" || strings.HasPrefix(path, "/api/") }

// rewrite builds the request the app receives. httputil.ReverseProxy has already removed hop-by-hop headers and
// X-Forwarded-For/Host/Proto; this removes every other header ownedByProxy names, in any spelling, then sets its own.
func (p *appProxy) rewrite(pr *httputil.ProxyRequest) {
	fwd := pr.In.Context().Value(forwardKey{}).(*forward)
	pr.SetURL(fwd.upstream)
	for name := range pr.Out.Header {
		if ownedByProxy(name) {
			delete(pr.Out.Header, name)
		}
	}
	withoutEmulatorCookies(pr.Out.Header) // the app's own cookies pass; its session cookie is the proxy's
	h := pr.Out.Header
	who := fwd.principal
	// The app's own host, as the platform's proxy sets it: never the client's Host header or absolute-form URI.
	h.Set(identity.HeaderHost, strings.TrimPrefix(p.url, "http://"))
	h.Set(identity.HeaderUser, fwd.user)
	h.Set(identity.HeaderPreferredUsername, who.UserName)
	if who.Kind == identity.KindUser {
		h.Set(identity.HeaderEmail, who.Email)
	}
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		h.Set(identity.HeaderRealIP, ip)
	}
	h.Set(identity.HeaderRequestID, fwd.requestID)
	if fwd.token != "" {
		h.Set(identity.HeaderAccessToken, fwd.token)
	}
}

// forwardedPrefix covers the identity headers and any other X-Forwarded-* a client may send.
const forwardedPrefix = "x-forwarded-"

// ownedByProxy reports whether the emulator strips a client-sent header before forwarding: the headers it sets
// (identity.ForwardedHeaders), any other X-Forwarded-*, Forwarded, and the caller's Authorization. Whether the real
// proxy strips client-sent X-Forwarded-* and whether it passes Authorization on are open (docs/platform.md);
// stripping them is the safe choice, so an app that passes here depends on neither. Underscores count as dashes:
// servers that map headers to CGI-style variables (HTTP_X_FORWARDED_USER) would accept X_Forwarded_User.
func ownedByProxy(name string) bool {
	n := strings.ReplaceAll(name, "_", "-")
	if (len(n) >= len(forwardedPrefix) && strings.EqualFold(n[:len(forwardedPrefix)], forwardedPrefix)) ||
		strings.EqualFold(n, "Forwarded") ||
		strings.EqualFold(n, "Authorization") {
		return true
	}
	for _, h := range identity.ForwardedHeaders {
		if strings.EqualFold(n, h) {
			return true
		}
	}
	return false
}

// upstreamError turns a failed forward into the platform's answers: 504 when the app is too slow, 502 otherwise.
func (p *appProxy) upstreamError(rw http.ResponseWriter, r *http.Request, err error) {
	// The answer is the proxy's, even after the app's (a 101 whose upgrade then fails). A fault's wait has no forward.
	if fwd, ok := r.Context().Value(forwardKey{}).(*forward); ok {
		fwd.appAnswer = false
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		p.apps.logger.Info("client went away before the app answered", "app", p.name, "path", r.URL.Path)
		rw.WriteHeader(499) // never seen by the client; keeps the access log honest
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		p.apps.logger.Warn("app timed out", "app", p.name, "path", r.URL.Path, "timeout", p.apps.timeout)
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusGatewayTimeout, Code: jsonhttp.CodeGatewayTimeout,
			Message: fmt.Sprintf("app %s did not answer within %s", p.name, p.apps.timeout),
			Fix:     "answer sooner, or stream the response; the platform gives up after the same time"})
	default:
		p.apps.logger.Warn("app unreachable", "app", p.name, "path", r.URL.Path, "err", err)
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusBadGateway, Code: jsonhttp.CodeBadGateway,
			Message: fmt.Sprintf("app %s is not reachable", p.name),
			Fix:     "check the app is running and listens on $DATABRICKS_APP_PORT"})
	}
}

// withH2CUpgrade serves the HTTP/1.1 requests that ask to upgrade to h2c (Upgrade: h2c, RFC 7540 section 3.2) over
// HTTP/2, as `curl --http2` sends them; the server's Protocols take h2c with prior knowledge, and everything else
// (a WebSocket upgrade included) goes to h unchanged. The upgrading request is read whole before it is answered, so
// its body is bounded.
func withH2CUpgrade(h http.Handler) http.Handler {
	upgrade := h2c.NewHandler(h, &http2.Server{})
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "h2c") {
			h.ServeHTTP(rw, r)
			return
		}
		r.Body = http.MaxBytesReader(rw, r.Body, maxH2CUpgradeBody)
		upgrade.ServeHTTP(rw, r)
	})
}

// maxH2CUpgradeBody bounds the body of a request that upgrades to h2c; clients send none (curl upgrades only
// requests without one).
const maxH2CUpgradeBody = 1 << 20
