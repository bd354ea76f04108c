package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/spf13/cobra"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/inflight"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/caller/appclient"
)

// serveCmd runs the caller as a Databricks App: the third scenario of the page, one app calling another with its own
// service principal. The target app is fixed by configuration (TARGET_APP, the name an app resource yields through
// valueFrom, or TARGET_APP_URL); a request chooses only an /api/ path on it.
type serveCmd struct {
	listen string // empty means APP_LISTEN_ADDR, DATABRICKS_APP_PORT or 127.0.0.1:8002
}

func newServeCommand(p *parsed) *cobra.Command {
	c := &serveCmd{}
	cmd := &cobra.Command{
		Use:     "serve",
		Short:   "Run as a Databricks App calling TARGET_APP / TARGET_APP_URL",
		Example: "  TARGET_APP=api-app callapp serve",
		Args:    noArgs,
		RunE:    p.chooses(c, c.run),
	}
	cmd.Flags().StringVar(&c.listen, "listen", "", "listen address (default APP_LISTEN_ADDR, else 0.0.0.0:$DATABRICKS_APP_PORT, else 127.0.0.1:8002)")
	return cmd
}

func (c *serveCmd) run(ctx context.Context, e *env) error {
	logger := slog.New(slog.NewJSONHandler(e.out.stderr, nil))
	fail := func(err error) error {
		f := asFailure(ctx, err)
		logger.Error("serve failed", "error", f.Summary)
		return f
	}
	quiet := *e
	quiet.stdin, quiet.out = strings.NewReader(""), &output{stdout: discard{}, stderr: discard{}}
	s, err := newSession(ctx, &quiet)
	if err != nil {
		return fail(err)
	}
	s.client.MaxBody = maxServeBody
	targetApp, targetURL := e.getenv("TARGET_APP"), e.getenv("TARGET_APP_URL")
	if (targetApp == "") == (targetURL == "") {
		return fail(usageErrorf("serve needs TARGET_APP (an app name, e.g. `valueFrom` an app resource in app.yaml) or TARGET_APP_URL, exactly one"))
	}
	resolver := &targetResolver{session: s, name: targetApp, timeout: e.opts.timeout}
	if targetURL != "" {
		base, err := parseAppURL(targetURL)
		if err != nil {
			return fail(err)
		}
		resolver.resolved = &appclient.Target{Base: base}
	}

	// As the app does: --listen, APP_LISTEN_ADDR (the emulator keeps apps on loopback with it), the platform's port on
	// every interface (the Apps proxy connects from outside the container), else loopback.
	addr := cmp.Or(c.listen, e.getenv("APP_LISTEN_ADDR"))
	if addr == "" {
		addr = "127.0.0.1:8002"
		if port := e.getenv("DATABRICKS_APP_PORT"); port != "" {
			addr = "0.0.0.0:" + port
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", addr, err))
	}
	srv := &http.Server{
		Handler:           newServer(logger, resolver, e.opts.timeout),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10, // as the app's: a client sending more gets 431, not a megabyte held per connection
		Protocols:         new(http.Protocols),
	}
	// TLS ends at the Apps proxy, which may speak HTTP/2 in cleartext (h2c) to the app.
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)

	logger.Info("caller serving", "addr", ln.Addr().String(), "mode", string(s.creds.mode), "target_app", targetApp, "target_url", targetURL)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fail(err)
	case <-ctx.Done():
	}
	// The platform sends SIGTERM and kills 15 s later: drain well inside that.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fail(fmt.Errorf("shutdown: %w", err))
	}
	logger.Info("caller stopped")
	return nil
}

const (
	// maxServeBody is the largest answer of the target serve reads: serve holds one per call and sends it back
	// inside its own JSON answer, so it reads less than `callapp call` does.
	maxServeBody = 1 << 20
	// maxCallsInFlight bounds the calls serve works on at once (each holds up to a few times maxServeBody), and
	// callSlotWait how long one over it waits for a slot before the 503.
	maxCallsInFlight = 8
	callSlotWait     = 2 * time.Second
)

// newServer is the caller app's whole API surface.
func newServer(logger *slog.Logger, resolver *targetResolver, timeout time.Duration) http.Handler {
	r := chi.NewRouter()
	// GetHead answers HEAD on the GET routes as GET does; net/http drops the body.
	r.Use(logRequests(logger), middleware.GetHead)
	r.Route("/api", func(r chi.Router) {
		r.Get("/health", func(w http.ResponseWriter, _ *http.Request) {
			jsonhttp.Write(w, http.StatusOK, map[string]string{"status": "ok"})
		})
		r.With(inflight.Limit(maxCallsInFlight, callSlotWait)).Get("/call", handleCall(resolver, timeout).ServeHTTP)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.WriteError(w, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeEndpointNotFound,
			Message: "no route " + r.URL.Path, Fix: "try GET /api/call?path=/api/whoami"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.WriteError(w, &jsonhttp.Error{Status: http.StatusMethodNotAllowed, Code: jsonhttp.CodeMethodNotAllowed,
			Message: r.Method + " is not allowed on " + r.URL.Path})
	})
	return r
}

// handleCall calls the target app's path with the caller app's own service principal and returns what the target
// answered, which identity the caller used, and who asked.
func handleCall(resolver *targetResolver, timeout time.Duration) http.Handler {
	type callerIdentity struct {
		Mode      Mode   `json:"mode"`
		AuthType  string `json:"auth_type"`
		Principal string `json:"principal"`
		ClientID  string `json:"client_id,omitempty"`
	}
	type targetInfo struct {
		App  string `json:"app,omitempty"`
		URL  string `json:"url"`
		Path string `json:"path"`
	}
	type result struct {
		Target      targetInfo         `json:"target"`
		CallerUsed  callerIdentity     `json:"caller_identity"`
		RequestedBy *identity.Identity `json:"requested_by,omitempty"`
		Status      int                `json:"status"`
		Response    jsonRawOrString    `json:"response"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Query().Get("path")
		if path == "" {
			path = "/api/whoami"
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		t, err := resolver.get(ctx)
		if err != nil {
			writeFailure(w, http.StatusBadGateway, jsonhttp.CodeBadGateway, asFailure(ctx, err))
			return
		}
		u, err := t.APIURL(path)
		if err != nil {
			jsonhttp.WriteError(w, &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
				Message: err.Error(), Fix: "pass an /api/ path of the target app, e.g. ?path=/api/whoami"})
			return
		}
		s := resolver.session
		resp, err := s.client.Do(ctx, http.MethodGet, u, nil)
		if err != nil {
			writeFailure(w, http.StatusBadGateway, jsonhttp.CodeBadGateway, s.explain(ctx, err, t))
			return
		}
		res := result{
			Target:     targetInfo{App: t.Name, URL: t.Base.String(), Path: path},
			CallerUsed: callerIdentity{Mode: s.creds.mode, AuthType: s.creds.authType(), Principal: s.creds.principal, ClientID: shownClientID(s.creds.clientID)},
			Status:     resp.Status,
			Response:   jsonRawOrString(bodyJSON(resp.Body)),
		}
		// Who called the caller app, as its own proxy says. Only shown: the caller acts as itself, never as them.
		if who, err := identity.FromHeaders(r.Header); err == nil {
			res.RequestedBy = &who
		}
		jsonhttp.Write(w, http.StatusOK, res)
	})
}

// jsonRawOrString is a body already made valid JSON by bodyJSON.
type jsonRawOrString []byte

func (j jsonRawOrString) MarshalJSON() ([]byte, error) { return j, nil }

func writeFailure(w http.ResponseWriter, status int, code string, f *failure) {
	jsonhttp.WriteError(w, &jsonhttp.Error{Status: status, Code: code, Message: f.Summary, Fix: strings.Join(f.Checks, "; ")})
}

// targetResolver looks the target app up through the Apps API on first use and keeps the answer; a failed lookup
// is retried on the next request, so the caller app starts even while the target is still deploying. Requests that
// arrive during a lookup wait for that one (each only as long as its own context allows) instead of queueing
// behind a lock for a lookup each.
type targetResolver struct {
	session *session
	name    string
	timeout time.Duration // bounds one lookup

	mu       sync.Mutex
	resolved *appclient.Target
	inflight *resolution  // the lookup under way, if any
	waiting  atomic.Int32 // requests waiting for a lookup, for tests to know they all are
}

// resolution is one lookup; done is closed once t or err is set.
type resolution struct {
	done chan struct{}
	t    *appclient.Target
	err  error
}

func (tr *targetResolver) get(ctx context.Context) (*appclient.Target, error) {
	tr.mu.Lock()
	if tr.resolved != nil {
		t := tr.resolved
		tr.mu.Unlock()
		return t, nil
	}
	r := tr.inflight
	if r == nil {
		r = &resolution{done: make(chan struct{})}
		tr.inflight = r
		// The lookup is shared, so it must not end with the request that happened to start it.
		go tr.resolve(context.WithoutCancel(ctx), r)
	}
	tr.mu.Unlock()
	tr.waiting.Add(1)
	defer tr.waiting.Add(-1)
	select {
	case <-r.done:
		return r.t, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// resolve runs one lookup and publishes it: kept when it worked, forgotten when it failed so the next request tries
// again.
func (tr *targetResolver) resolve(ctx context.Context, r *resolution) {
	ctx, cancel := context.WithTimeout(ctx, tr.timeout)
	defer cancel()
	r.t, r.err = tr.session.resolveApp(ctx, tr.name)
	if r.err != nil {
		r.err = asFailure(ctx, r.err) // judged by the lookup's own deadline, not a waiting request's
	}
	tr.mu.Lock()
	if r.err == nil {
		tr.resolved = r.t
	}
	tr.inflight = nil
	tr.mu.Unlock()
	close(r.done)
}

// logRequests logs one line per request: never a header value, so never a token.
func logRequests(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			logger.Info("request", "method", r.Method, "path", r.URL.Path, "status", cmp.Or(ww.Status(), http.StatusOK),
				"duration_ms", time.Since(start).Milliseconds(), "request_id", r.Header.Get(identity.HeaderRequestID))
		})
	}
}
