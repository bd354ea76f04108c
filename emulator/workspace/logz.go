package workspace

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// Paths the platform serves on every app's host, for `databricks apps logs`. They belong to Databricks Apps, not to
// the app: no request to them reaches it.
const (
	PathAppLogs       = "/logz"
	PathAppLogsStream = "/logz/stream"
)

// DefaultLogKeepalive is how often /logz/stream sends its keepalive frame, a single 0x00 byte, while the log is quiet.
const DefaultLogKeepalive = 15 * time.Second

const (
	logSearchTimeout = 10 * time.Second // how long a stream waits for the client's first frame, the search term
	logWriteTimeout  = 10 * time.Second // how long one frame may take to reach a client before the stream is cut
	logMaxSearch     = 4 << 10
)

func isLogsPath(path string) bool { return path == PathAppLogs || path == PathAppLogsStream }

// serveLogs answers the log paths for a bearer holding CAN_MANAGE on the app. It writes its own log line, once the
// request is over (for a stream, when it ends), with the path only: never a header, so never the token.
func (p *appProxy) serveLogs(rw http.ResponseWriter, r *http.Request) {
	rec := middleware.NewWrapResponseWriter(rw, r.ProtoMajor)
	start := time.Now()
	var who principal
	ended := ""
	defer func() {
		user := ""
		if who.ID != "" {
			user = identity.FormatUser(who.ID, p.apps.cfg.Workspace.ID)
		}
		attrs := []any{"app", p.name, "method", r.Method, "path", r.URL.Path, "status", statusOf(rec), "user", user,
			"duration", time.Since(start).Round(time.Microsecond)}
		if ended != "" {
			attrs = append(attrs, "ended", ended)
		}
		p.apps.logger.Info("app logs request", attrs...)
	}()

	allowed := []string{http.MethodGet, http.MethodHead}
	if r.URL.Path == PathAppLogsStream {
		allowed = allowed[:1]
	}
	if !slices.Contains(allowed, r.Method) {
		rec.Header().Set("Allow", strings.Join(allowed, ", "))
		jsonhttp.WriteError(rec, &jsonhttp.Error{Status: http.StatusMethodNotAllowed, Code: jsonhttp.CodeMethodNotAllowed,
			Message: fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)})
		return
	}
	var ok bool
	if who, ok = p.admitLogs(rec, r); !ok {
		return
	}
	if r.URL.Path == PathAppLogs {
		p.serveLogPage(rec)
		return
	}
	ended = p.serveLogStream(rec, r, who)
}

// admitLogs lets through a token the workspace accepts whose principal holds CAN_MANAGE on the app. Without one, it
// sends the login page, as the platform does on these paths even to a bearer it refuses (docs/platform.md);
// without CAN_MANAGE, 403.
func (p *appProxy) admitLogs(rw http.ResponseWriter, r *http.Request) (principal, bool) {
	res, _ := p.apps.auth.authenticate(r)
	if res == nil {
		p.redirectToLogin(rw, r)
		return principal{}, false
	}
	if !p.apps.canManage(p.name, res.principal) {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
			Message: fmt.Sprintf("%s does not have CAN MANAGE permission on app %s", res.principal.UserName, p.name),
			Fix:     "an app's logs are for its managers: ask the app's owner to grant CAN MANAGE, or sign in as a manager"})
		return principal{}, false
	}
	return res.principal, true
}

// serveLogPage answers GET /logz with the kept records as plain text, one "time [SOURCE] message" line each, as
// the CLI prints them. Plain text with nosniff, because the app's output is not trusted to be HTML.
func (p *appProxy) serveLogPage(rw http.ResponseWriter) {
	var b bytes.Buffer
	for _, rec := range p.logs.records() {
		at := time.UnixMicro(int64(math.Round(rec.Timestamp * 1e6))).UTC()
		fmt.Fprintf(&b, "%s [%s] %s", at.Format("2006-01-02T15:04:05.000Z07:00"), rec.Source, rec.Message)
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("X-Content-Type-Options", "nosniff")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(b.Bytes())
}

// serveLogStream upgrades GET /logz/stream to a websocket and streams the log. It returns why the stream ended.
func (p *appProxy) serveLogStream(rw http.ResponseWriter, r *http.Request, who principal) string {
	if r.Header.Get("Upgrade") == "" {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusUpgradeRequired, Code: jsonhttp.CodeInvalidParameter,
			Message: PathAppLogsStream + " is a websocket",
			Fix:     "connect with a websocket client, as `databricks apps logs " + p.name + "` does"})
		return ""
	}
	if origin := r.Header.Get("Origin"); !p.isOwnOrigin(origin) {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
			Message: fmt.Sprintf("the websocket's Origin %q is not the app's origin %s", origin, p.url),
			Fix:     "send Origin: " + p.url + ", as `databricks apps logs` does"})
		return ""
	}
	// isOwnOrigin did the origin check: coder/websocket's own would compare the Origin with the Host header the
	// client chose, ignore the scheme, and let a handshake without Origin through.
	conn, err := websocket.Accept(rw, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return "handshake failed" // Accept has answered the client
	}
	return p.streamLogs(conn, who, r.Header.Get("User-Agent"))
}

// isOwnOrigin reports whether a handshake's Origin is the app's own, scheme and host. Browsers always send Origin on
// a websocket, so this is what keeps another site's page from reading the logs with the user's credentials; the
// emulator also refuses a missing Origin, since whether the platform does is unknown and the CLI always sends one.
func (p *appProxy) isOwnOrigin(origin string) bool {
	u, err := url.Parse(origin)
	own, _ := url.Parse(p.url) // built by Start from a listener address
	return err == nil && u.User == nil && (u.Path == "" || u.Path == "/") && u.RawQuery == "" &&
		strings.EqualFold(u.Scheme, own.Scheme) && strings.EqualFold(u.Host, own.Host)
}

// streamLogs runs the protocol of `databricks apps logs`: the client sends a search term; the stream sends the kept
// records that match, as JSON text frames, then each new matching record, with a 0x00 frame as keepalive while the
// log is quiet. It ends when the client closes (or stops reading), and closes with 1001 when the workspace closes
// and with 1013 when the client falls so far behind that the log dropped it. It returns why it ended.
//
// A stream that reconnects (the CLI's --follow does, about two seconds after it starts) resumes where the previous
// one stopped rather than sending the kept records again: see logResumes.
func (p *appProxy) streamLogs(conn *websocket.Conn, who principal, userAgent string) string {
	defer conn.CloseNow()
	backlog, f, ok := p.logs.follow()
	if !ok {
		_ = conn.Close(websocket.StatusGoingAway, errLogClosed.Error())
		return errLogClosed.Error()
	}
	defer p.logs.unfollow(f)

	// Cancelling a read would cut the socket; so a workspace closing while the stream waits for the search term
	// closes it from here instead, cleanly, and the read returns.
	closing := make(chan struct{})
	var dropped string
	stop := context.AfterFunc(f.ctx, func() {
		defer close(closing)
		dropped = closeDropped(conn, f)
	})
	conn.SetReadLimit(logMaxSearch)
	ctx, cancel := context.WithTimeout(context.Background(), logSearchTimeout)
	typ, term, err := conn.Read(ctx)
	cancel()
	if !stop() {
		<-closing
		return dropped
	}
	if err != nil {
		return "no search term: " + err.Error()
	}
	if typ != websocket.MessageText {
		_ = conn.Close(websocket.StatusUnsupportedData, "send the search term as a text frame")
		return "binary search term"
	}
	matches := logSearch(string(term))
	resume := logResumeKey{principal: who.UserName, search: string(term), userAgent: userAgent}
	var last uint64 // the last record this stream has dealt with, sent or not matching
	if after, ok := p.resumes.take(resume, p.logs.now()); ok {
		backlog = slices.DeleteFunc(backlog, func(rec logRecord) bool { return rec.seq <= after })
		last = after
	}
	defer func() { p.resumes.put(resume, last, p.logs.now()) }()

	// The client sends nothing more but control frames: CloseRead answers them, and ends gone when the client closes.
	gone := conn.CloseRead(context.Background())
	send := func(frame []byte) error {
		ctx, cancel := context.WithTimeout(gone, logWriteTimeout)
		defer cancel()
		return conn.Write(ctx, websocket.MessageText, frame)
	}
	sendRecord := func(rec logRecord) error {
		if !matches(rec) {
			last = rec.seq
			return nil
		}
		frame, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if err := send(frame); err != nil {
			return err
		}
		last = rec.seq
		return nil
	}

	for _, rec := range backlog {
		if err := sendRecord(rec); err != nil {
			return "client gone: " + err.Error()
		}
	}
	keepalive := time.NewTicker(p.apps.logKeepalive)
	defer keepalive.Stop()
	for {
		select {
		case <-gone.Done():
			return "client closed"
		case <-f.ctx.Done():
			return closeDropped(conn, f)
		case <-keepalive.C:
			if err := send([]byte{0}); err != nil {
				return "client gone: " + err.Error()
			}
		case rec := <-f.records:
			if err := sendRecord(rec); err != nil {
				return "client gone: " + err.Error()
			}
		}
	}
}

// closeDropped closes the socket of a follower the log dropped: 1013 (try again later) for a reader that fell
// behind, which the CLI answers by reconnecting when it follows, and 1001 (going away) when the workspace closes.
// It returns why.
func closeDropped(conn *websocket.Conn, f *logFollower) string {
	why := context.Cause(f.ctx)
	code := websocket.StatusGoingAway
	if errors.Is(why, errFollowerLagged) {
		code = websocket.StatusTryAgainLater
	}
	_ = conn.Close(code, why.Error())
	return why.Error()
}

// logSearch matches the records whose message contains term, ignoring case; "" matches every record. The
// platform's search syntax is not documented; a plain substring serves `databricks apps logs --search ERROR`.
func logSearch(term string) func(logRecord) bool {
	term = strings.ToLower(term)
	return func(rec logRecord) bool {
		return term == "" || strings.Contains(strings.ToLower(rec.Message), term)
	}
}

// logResumeWindow is how soon after a log stream ends a new one of the same client resumes after it. The CLI's
// --follow reconnects about 200 ms after its first connection ends (its read deadline for the tail cuts it at 2 s)
// and sends exactly what it sent the first time: same token, search term and User-Agent. Nothing in the protocol
// says "resume"; only the timing tells a reconnect from a new `databricks apps logs`, which a person starts seconds
// later and which gets the kept records again.
const logResumeWindow = 2 * time.Second

// maxLogResumes bounds the streams remembered per app.
const maxLogResumes = 1000

// logResumeKey names a client of an app's log stream, as far as the server can tell one.
type logResumeKey struct{ principal, search, userAgent string }

// logResumes remembers, for a short while after each log stream ends, the last record it dealt with.
type logResumes struct {
	mu    sync.Mutex
	ended map[logResumeKey]logResumePoint
}

type logResumePoint struct {
	after uint64
	at    time.Time
}

// put remembers where a stream of key stopped, at now.
func (r *logResumes) put(key logResumeKey, after uint64, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended == nil {
		r.ended = map[logResumeKey]logResumePoint{}
	}
	if len(r.ended) >= maxLogResumes {
		for k, p := range r.ended {
			if now.Sub(p.at) > logResumeWindow {
				delete(r.ended, k)
			}
		}
		if len(r.ended) >= maxLogResumes {
			return // a reconnect then sends the kept records again: never worse than no resuming at all
		}
	}
	r.ended[key] = logResumePoint{after: after, at: now}
}

// take returns where the last stream of key stopped, if it ended within logResumeWindow of now, and forgets it.
func (r *logResumes) take(key logResumeKey, now time.Time) (after uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, found := r.ended[key]
	delete(r.ended, key)
	if !found || now.Sub(p.at) > logResumeWindow {
		return 0, false
	}
	return p.after, true
}
