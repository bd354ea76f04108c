package workspace

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// Fault is a failure for the workspace to play on purpose, so that tests and workshops can provoke what a workspace
// or an app does only on a bad day: an error, a slow or stalled answer, a dropped connection, a huge body, a redirect.
//
// A workspace fault (App "") answers before the workspace's handler. An app fault answers in place of the app, after
// every check its proxy makes before forwarding (a token or browser session, CAN USE, scopes, a running app), so the
// proxy's own 401, 403 and 502 stay what they are. The proxy's own paths (/logz, /.auth/) and the emulator's control
// API are never faulted.
//
// A fault gives at most one answer: Status (an error), Redirect, BodyBytes, Stall or Reset. Without one it only
// delays the requests it matches, then passes them on. When several faults match a request, the first injected plays.
type Fault struct {
	App    string // "" for the workspace's own API; else the app whose answers the fault replaces
	Method string // "" for any method
	Path   string // an exact path, or a prefix ending in "/" ("/" is every path)
	// Principal is "" for any caller; else only requests that authenticate as this principal match: a user by user
	// name, a service principal by application id or name. At the workspace a bearer token says who calls; at an
	// app's proxy, a bearer token or a browser session.
	Principal string

	Status     int    // 400 to 599: answer this status with a Databricks error body, error_code from the status
	Message    string // the error body's message; by default the status text, saying the fault was injected
	RetryAfter string // a Retry-After header on the answer, such as "0" or "2"
	Redirect   string // answer 302 (or Status, a 3xx) to this location
	BodyBytes  int64  // answer 200 (or Status, a 2xx) with a text/plain body of this many bytes, made as it is sent
	Chunked    bool   // with BodyBytes: send no Content-Length, as an app streaming its answer does
	// Stall answers nothing until the client gives up or the workspace closes; at an app's proxy, until the proxy's
	// request timeout, when it answers 504 as for an app that hangs.
	Stall bool
	// Reset drops the client's connection with no answer (a TCP reset). Go's http.Transport sends an idempotent
	// request again by itself when a connection it had reused drops this way: a test of a client's own retries
	// should send on a fresh connection.
	Reset bool

	Delay time.Duration // wait this long first; at an app's proxy, at most its request timeout (then 504)
	Times int           // play on this many matching requests, then let them pass; 0 plays until cleared
}

// answers reports whether f answers the requests it matches, rather than only delaying them.
func (f Fault) answers() bool {
	return f.Status != 0 || f.Redirect != "" || f.BodyBytes > 0 || f.Stall || f.Reset
}

// InjectedFault is a fault the workspace plays until it is cleared or has played Times times.
type InjectedFault struct {
	id       string
	fault    Fault
	subject  string // the token subject that Principal names, or ""
	hits     atomic.Int64
	released chan struct{} // closed by Clear: the requests the fault holds go on
	cleared  sync.Once
	faults   *faults
}

// ID names the fault in the control API and in the workspace's log.
func (f *InjectedFault) ID() string { return f.id }

// Fault is the fault as injected, its Method in upper case.
func (f *InjectedFault) Fault() Fault { return f.fault }

// Hits is how many requests the fault has played on so far, a request it delayed and passed on included.
func (f *InjectedFault) Hits() int { return int(f.hits.Load()) }

// Clear stops the fault. Requests it is holding (a Delay or a Stall) go on at once, as if it had not matched them.
func (f *InjectedFault) Clear() {
	f.cleared.Do(func() {
		close(f.released)
		f.faults.remove(f)
	})
}

// claim counts a request the fault plays on, and reports false once it has played Times times.
func (f *InjectedFault) claim() (hit int64, ok bool) {
	for {
		n := f.hits.Load()
		if f.fault.Times > 0 && n >= int64(f.fault.Times) {
			return 0, false
		}
		if f.hits.CompareAndSwap(n, n+1) {
			return n + 1, true
		}
	}
}

// matches reports whether r, at the workspace (app "") or at app's proxy, is one of the fault's requests, its
// Principal aside.
func (f *InjectedFault) matches(app string, r *http.Request) bool {
	switch {
	case f.fault.App != app, f.fault.Method != "" && f.fault.Method != r.Method:
		return false
	case strings.HasSuffix(f.fault.Path, "/"):
		return strings.HasPrefix(r.URL.Path, f.fault.Path)
	default:
		return r.URL.Path == f.fault.Path
	}
}

// faults holds the faults injected and not cleared, in the order they were injected. Every request reads the list
// and only injecting or clearing changes it, so it is an immutable slice swapped whole.
type faults struct {
	mu     sync.Mutex // serialises changes
	active atomic.Pointer[[]*InjectedFault]
	nextID int

	// Set by Start: who sent a request, for a fault that names a Principal; when the workspace closes, which ends
	// the requests a fault holds; where a played fault is logged.
	authenticate func(r *http.Request) (*authResult, *tokenError)
	closing      <-chan struct{}
	logger       *slog.Logger
}

func (fs *faults) add(f *InjectedFault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.nextID++
	f.id = strconv.Itoa(fs.nextID)
	f.faults = fs
	next := append(fs.list(), f)
	fs.active.Store(&next)
}

func (fs *faults) remove(f *InjectedFault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	next := slices.DeleteFunc(fs.list(), func(g *InjectedFault) bool { return g == f })
	fs.active.Store(&next)
}

// list returns a copy of the faults injected and not cleared, in the order they were injected.
func (fs *faults) list() []*InjectedFault {
	if l := fs.active.Load(); l != nil {
		return slices.Clone(*l)
	}
	return nil
}

// match finds the first fault that plays on r at the workspace (app "") or at app's proxy, and counts the hit.
// caller says who sent r; it is asked only when a fault names a Principal.
func (fs *faults) match(app string, r *http.Request, caller func() (principal, bool)) (*InjectedFault, int64) {
	l := fs.active.Load()
	if l == nil || len(*l) == 0 {
		return nil, 0
	}
	var who *principal
	for _, f := range *l {
		if !f.matches(app, r) {
			continue
		}
		if f.subject != "" {
			if who == nil {
				p, _ := caller() // no one (the zero principal) when the request does not authenticate
				who = &p
			}
			if who.UserName != f.subject {
				continue
			}
		}
		if hit, ok := f.claim(); ok {
			return f, hit
		}
	}
	return nil, 0
}

// InjectFault starts playing f on the requests it matches and returns it, to count its hits and clear it. It refuses
// a fault that names an unknown app or principal, or whose fields contradict one another.
func (w *Workspace) InjectFault(f Fault) (*InjectedFault, error) {
	f.Method = strings.ToUpper(f.Method)
	subject, err := w.checkFault(f)
	if err != nil {
		return nil, fmt.Errorf("inject fault: %w", err)
	}
	injected := &InjectedFault{fault: f, subject: subject, released: make(chan struct{})}
	w.faults.add(injected)
	w.logger.Info("fault injected", "fault", injected.id, "app", f.App, "method", f.Method, "path", f.Path,
		"principal", subject, "answer", injected.describe(), "times", f.Times)
	return injected, nil
}

// Faults lists the faults being played, in the order they were injected, spent ones included until cleared.
func (w *Workspace) Faults() []*InjectedFault { return w.faults.list() }

// ClearFaults clears every fault; the requests they hold go on at once.
func (w *Workspace) ClearFaults() {
	for _, f := range w.faults.list() {
		f.Clear()
	}
}

// checkFault says what is wrong with f, if anything, and returns the token subject its Principal names.
func (w *Workspace) checkFault(f Fault) (subject string, err error) {
	if f.App != "" && w.apps.settingsOf(f.App) == nil {
		return "", fmt.Errorf("no app %q in the workspace; its apps are %s", f.App, strings.Join(w.AppNames(), ", "))
	}
	if f.Method != "" && strings.IndexFunc(f.Method, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return "", fmt.Errorf("method %q: want an HTTP method such as GET, or none for any", f.Method)
	}
	if !strings.HasPrefix(f.Path, "/") || strings.ContainsAny(f.Path, "?#") {
		return "", fmt.Errorf("path %q: want a path such as %s, or a prefix ending in / such as /api/ (/ is every path)",
			f.Path, PathSCIMMe)
	}
	if f.Principal != "" {
		p, ok := w.dir.named(f.Principal)
		if !ok {
			return "", fmt.Errorf("no user or service principal %q in the workspace", f.Principal)
		}
		subject = p.UserName
	}
	switch {
	case f.Times < 0:
		return "", fmt.Errorf("times %d: want a count of requests, or 0 to play until cleared", f.Times)
	case f.Delay < 0:
		return "", fmt.Errorf("delay %s: want a positive duration, or 0", f.Delay)
	case f.BodyBytes < 0:
		return "", fmt.Errorf("body bytes %d: want a size in bytes", f.BodyBytes)
	case f.Chunked && f.BodyBytes == 0:
		return "", errors.New("chunked goes with body bytes: the size of the body to stream")
	}
	var answers []string
	for _, a := range []struct {
		name string
		set  bool
	}{
		{"an error status", f.Status != 0 && f.Redirect == "" && f.BodyBytes == 0},
		{"a redirect", f.Redirect != ""}, {"body bytes", f.BodyBytes > 0}, {"a stall", f.Stall}, {"a reset", f.Reset},
	} {
		if a.set {
			answers = append(answers, a.name)
		}
	}
	errorStatus := f.Status != 0 && f.Redirect == "" && f.BodyBytes == 0
	switch {
	case len(answers) > 1:
		return "", fmt.Errorf("a fault gives one answer, not %s", strings.Join(answers, " and "))
	case !f.answers() && f.Delay == 0:
		return "", errors.New("the fault does nothing: give a status, a redirect, body bytes, a stall, a reset or a delay")
	case errorStatus && (f.Status < 400 || f.Status > 599):
		return "", fmt.Errorf("status %d: want an error status, 400 to 599 (a 3xx goes with a redirect, a 2xx with body bytes)",
			f.Status)
	case f.Redirect != "" && f.Status != 0 && !slices.Contains([]int{301, 302, 303, 307, 308}, f.Status):
		return "", fmt.Errorf("status %d with a redirect: want 301, 302, 303, 307 or 308 (302 by default)", f.Status)
	case f.BodyBytes > 0 && f.Status != 0 && (f.Status < 200 || f.Status > 299):
		return "", fmt.Errorf("status %d with body bytes: want a 2xx (200 by default)", f.Status)
	case f.Message != "" && !errorStatus:
		return "", errors.New("a message goes with an error status: it is the error body's message")
	case f.RetryAfter != "" && (!f.answers() || f.Stall || f.Reset):
		return "", errors.New("retry after goes with an answer: a status, a redirect or a body")
	case strings.ContainsAny(f.RetryAfter, "\r\n"):
		return "", errors.New("retry after: want one header value, such as 2")
	}
	if f.Redirect != "" {
		if _, err := url.Parse(f.Redirect); err != nil {
			return "", fmt.Errorf("redirect %q: want a URL or a path", f.Redirect)
		}
	}
	return subject, nil
}

// describe names the fault's answer in the log and in the control API.
func (f *InjectedFault) describe() string {
	var a string
	switch ff := f.fault; {
	case ff.Stall:
		a = "stall"
	case ff.Reset:
		a = "reset"
	case ff.Redirect != "":
		a = fmt.Sprintf("redirect %d", cmp.Or(ff.Status, http.StatusFound))
	case ff.BodyBytes > 0:
		a = fmt.Sprintf("body of %d bytes", ff.BodyBytes)
	case ff.Status != 0:
		a = "status " + strconv.Itoa(ff.Status)
	default:
		a = "pass on"
	}
	if f.fault.Delay > 0 {
		a = "delay " + f.fault.Delay.String() + ", then " + a
	}
	return a
}

// play plays the first matching workspace fault before the workspace's handler. A fault's Principal is resolved
// by authenticate, as requireToken resolves a token: a request without a valid token matches none.
func (fs *faults) play(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if isControlPath(r.URL.Path) {
			next.ServeHTTP(rw, r)
			return
		}
		f, hit := fs.match("", r, func() (principal, bool) {
			res, _ := fs.authenticate(r)
			if res == nil {
				return principal{}, false
			}
			return res.principal, true
		})
		if f == nil {
			next.ServeHTTP(rw, r)
			return
		}
		fs.log(f, hit, r)
		released, err := f.hold(r.Context(), r, fs.closing)
		switch {
		case released:
			next.ServeHTTP(rw, r)
		case err != nil:
			resetConnection(rw) // the client went away, or the workspace is closing: no one to answer
		case !f.answer(rw, r):
			next.ServeHTTP(rw, r)
		}
	})
}

// playFault plays the first matching fault of the app on r in place of the app, and reports whether it answered.
// The proxy's request timeout bounds a Delay or a Stall: then it answers 504, as for an app that is too slow.
func (p *appProxy) playFault(rw http.ResponseWriter, r *http.Request, who principal) bool {
	f, hit := p.apps.faults.match(p.name, r, func() (principal, bool) { return who, true })
	if f == nil {
		return false
	}
	p.apps.faults.log(f, hit, r)
	ctx, cancel := context.WithTimeout(r.Context(), p.apps.timeout)
	defer cancel()
	released, err := f.hold(ctx, r, p.apps.ctx.Done())
	switch {
	case released:
		return false
	case errors.Is(err, errClosing):
		resetConnection(rw)
		return true
	case err != nil:
		p.upstreamError(rw, r, err) // 504 after the timeout, or 499 in the log for a client that went away
		return true
	}
	return f.answer(rw, r)
}

func (fs *faults) log(f *InjectedFault, hit int64, r *http.Request) {
	fs.logger.Info("fault played", "fault", f.id, "app", f.fault.App, "method", r.Method, "path", r.URL.Path,
		"answer", f.describe(), "hit", hit)
}

// hold keeps a request for the fault's Delay, or for good if it stalls, until ctx ends (err is its error), the
// workspace closes (errClosing) or the fault is cleared (released).
//
// It reads the request's body first (up to maxHeldBody) and gives the handler the same bytes after. net/http notices
// a client that hangs up, or a listener that Down closed, only once the handler has read the body: unread, a held
// POST would outlive its client and run its handler when the fault is cleared, for no one.
func (f *InjectedFault) hold(ctx context.Context, r *http.Request, closing <-chan struct{}) (released bool, err error) {
	if !f.fault.Stall && f.fault.Delay == 0 {
		return false, nil
	}
	if r.Body != nil && r.Body != http.NoBody {
		read, _ := io.ReadAll(io.LimitReader(r.Body, maxHeldBody)) // an error is read again from the rest
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(read), r.Body), r.Body}
	}
	var elapsed <-chan time.Time // never, for a stall
	if !f.fault.Stall {
		t := time.NewTimer(f.fault.Delay)
		defer t.Stop()
		elapsed = t.C
	}
	select {
	case <-elapsed:
		return false, nil
	case <-f.released:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-closing:
		return false, errClosing
	}
}

// answer sends the fault's answer and reports whether it sent one: a fault that only delays sends none.
func (f *InjectedFault) answer(rw http.ResponseWriter, r *http.Request) bool {
	ff := f.fault
	if !ff.answers() {
		return false
	}
	if ff.RetryAfter != "" {
		rw.Header().Set("Retry-After", ff.RetryAfter)
	}
	switch {
	case ff.Reset:
		resetConnection(rw)
	case ff.Redirect != "":
		http.Redirect(rw, r, ff.Redirect, cmp.Or(ff.Status, http.StatusFound))
	case ff.BodyBytes > 0:
		writeBody(rw, cmp.Or(ff.Status, http.StatusOK), ff.BodyBytes, ff.Chunked)
	default: // an error status; a stall never gets here: it only ends without an answer
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: ff.Status, Code: errorCodeOf(ff.Status),
			Message: cmp.Or(ff.Message, http.StatusText(ff.Status)+" (a fault injected in the emulator)")})
	}
	return true
}

// maxHeldBody is how much of a held request's body hold reads ahead: a workspace file import and its form.
const maxHeldBody = MaxFileSize + 1<<20

// errorCodes are the error_code Databricks sends with an error status.
var errorCodes = map[int]string{
	http.StatusBadRequest:            jsonhttp.CodeInvalidParameter,
	http.StatusUnauthorized:          jsonhttp.CodeUnauthenticated,
	http.StatusForbidden:             jsonhttp.CodePermissionDenied,
	http.StatusNotFound:              jsonhttp.CodeNotFound,
	http.StatusMethodNotAllowed:      jsonhttp.CodeMethodNotAllowed,
	http.StatusConflict:              "RESOURCE_CONFLICT",
	http.StatusRequestEntityTooLarge: jsonhttp.CodeTooLarge,
	http.StatusUnsupportedMediaType:  jsonhttp.CodeUnsupportedMedia,
	http.StatusTooManyRequests:       "REQUEST_LIMIT_EXCEEDED",
	http.StatusNotImplemented:        "NOT_IMPLEMENTED",
	http.StatusBadGateway:            jsonhttp.CodeBadGateway,
	http.StatusServiceUnavailable:    jsonhttp.CodeUnavailable,
	http.StatusGatewayTimeout:        jsonhttp.CodeGatewayTimeout,
}

// errorCodeOf is the error_code Databricks sends with an error status: BAD_REQUEST or INTERNAL_ERROR for one it
// has no code of its own for.
func errorCodeOf(status int) string {
	if code, ok := errorCodes[status]; ok {
		return code
	}
	if status < 500 {
		return "BAD_REQUEST"
	}
	return jsonhttp.CodeInternal
}

// bodyChunk is what a BodyBytes answer repeats: '<', which a JSON encoder that escapes HTML writes as six bytes,
// the worst case for a client that re-encodes what it reads.
var bodyChunk = bytes.Repeat([]byte{'<'}, 64<<10)

// writeBody streams n bytes of text, made as they are sent, until the client stops reading.
func writeBody(rw http.ResponseWriter, status int, n int64, chunked bool) {
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !chunked {
		rw.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	}
	rw.WriteHeader(status)
	if chunked {
		_ = http.NewResponseController(rw).Flush() // headers out now: even a small body goes without a length
	}
	for n > 0 {
		chunk := bodyChunk[:min(n, int64(len(bodyChunk)))]
		if _, err := rw.Write(chunk); err != nil {
			return
		}
		n -= int64(len(chunk))
	}
}

// resetConnection drops the client's connection with no answer, as a network failure does: with a TCP reset, so
// that the client reads "connection reset by peer" rather than a clean end of the stream.
func resetConnection(rw http.ResponseWriter) {
	conn, _, err := http.NewResponseController(rw).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // a connection that cannot be handed over (HTTP/2): abort the response instead
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
