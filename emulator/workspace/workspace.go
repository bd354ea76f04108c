// Package workspace is an offline, in-process stand-in for the parts of Databricks an app and its callers touch:
// the workspace's OAuth endpoints, SCIM Me and the Apps API, and one Apps reverse proxy per app.
//
// Tests start it on free loopback ports with [Start] and talk to it with the real databricks-sdk-go; the emulator
// command (go run ./emulator) wraps it for humans. It reproduces the platform's behaviour as PLATFORM.md describes
// it, including the failures (401, 403, 302, 502, 504), because those are what an app must be tested against. Where
// PLATFORM.md marks a behaviour open (whether client-sent X-Forwarded-* headers or Authorization reach the app), it
// takes the strict side and strips them.
package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// Defaults the platform uses.
const (
	DefaultTokenLifetime  = time.Hour
	DefaultRequestTimeout = 120 * time.Second
	// DefaultRefreshTokenLifetime is how long a refresh token works: a workspace's OAuth app policy sets it
	// (refresh_token_ttl_in_minutes); after it, the CLI or SDK has to log in again.
	DefaultRefreshTokenLifetime = 30 * 24 * time.Hour
)

// Default timeouts of every emulator listener, the workspace's and each app proxy's: those of the app's own server.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// Options configure [Start]. Zero values take the defaults: the embedded model and the platform's timings.
type Options struct {
	Config         Config        // the principal model; the zero Config means [DefaultConfig]
	TokenLifetime  time.Duration // access token lifetime; 1 h by default, down to one second for refresh tests
	RequestTimeout time.Duration // how long the proxy waits for an app's response headers; 120 s by default
	Logger         *slog.Logger  // nil discards logs
	// RefreshTokenLifetime is how long a refresh token works after it is issued; 30 days by default.
	RefreshTokenLifetime time.Duration
	// Timeouts of every listener (workspace and proxies): to read a request's headers, to read the whole request
	// (a WebSocket is exempt once upgraded), and before an idle keep-alive connection is closed.
	ReadHeaderTimeout time.Duration // 10 s by default
	ReadTimeout       time.Duration // 60 s by default
	IdleTimeout       time.Duration // 120 s by default
	// DataDir holds the workspace files and the apps' deployments; empty means a temp dir removed by Close.
	DataDir string
}

// Workspace is a running emulated workspace with its app proxies. It is safe for concurrent use.
type Workspace struct {
	cfg     Config
	dir     *directory
	issuer  *issuer
	grants  *grants
	logger  *slog.Logger
	timeout time.Duration
	listen  listenTimeouts
	url     string
	dataDir string
	server  *http.Server
	apps    map[string]*appProxy
	counts  requestCounts

	removeDataDir bool

	profileMu sync.Mutex
	prof      *Profile
	closeErr  error
	closed    sync.Once
	wg        sync.WaitGroup
}

// Start validates the model, listens on 127.0.0.1 for the workspace and for each app's proxy, and serves until
// Close is called or ctx ends.
func Start(ctx context.Context, opts Options) (*Workspace, error) {
	if opts.Config.Workspace.ID == "" && len(opts.Config.Apps) == 0 {
		opts.Config = DefaultConfig()
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("emulator config: %w", err)
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = DefaultTokenLifetime
	}
	if opts.TokenLifetime < time.Second {
		return nil, fmt.Errorf("token lifetime %s: want at least 1s", opts.TokenLifetime)
	}
	if opts.RefreshTokenLifetime == 0 {
		opts.RefreshTokenLifetime = DefaultRefreshTokenLifetime
	}
	if opts.RefreshTokenLifetime < 0 {
		return nil, fmt.Errorf("refresh token lifetime %s: want a positive duration", opts.RefreshTokenLifetime)
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.RequestTimeout < 0 {
		return nil, fmt.Errorf("request timeout %s: want a positive duration", opts.RequestTimeout)
	}
	listen, err := newListenTimeouts(opts)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w := &Workspace{
		cfg:     opts.Config,
		dir:     newDirectory(opts.Config),
		grants:  newGrants(opts.RefreshTokenLifetime, opts.TokenLifetime),
		logger:  opts.Logger,
		timeout: opts.RequestTimeout,
		listen:  listen,
		apps:    map[string]*appProxy{},
	}

	if w.dataDir = opts.DataDir; w.dataDir == "" {
		dir, err := os.MkdirTemp("", "databricks-workspace-")
		if err != nil {
			return nil, fmt.Errorf("workspace data folder: %w", err)
		}
		w.dataDir, w.removeDataDir = dir, true
	} else if err := os.MkdirAll(w.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("workspace data folder: %w", err)
	}

	addr := opts.Config.Workspace.Host
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		w.removeData()
		return nil, fmt.Errorf("listen for the workspace on %s: %w", addr, err)
	}
	w.url = "http://" + ln.Addr().String()
	if w.issuer, err = newIssuer(w.url+"/oidc", opts.TokenLifetime); err != nil {
		_ = ln.Close()
		w.removeData()
		return nil, err
	}
	w.server = w.serve(ln, w.routes())

	for _, app := range opts.Config.Apps {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(app.Port)))
		if err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("listen for the proxy of app %q: %w", app.Name, err)
		}
		p := &appProxy{app: app, url: "http://" + ln.Addr().String(), ws: w}
		w.apps[app.Name] = p
		p.server = w.serve(ln, p.handler())
		if app.Upstream != "" {
			if err := w.SetUpstream(app.Name, app.Upstream); err != nil {
				_ = w.Close()
				return nil, err
			}
		}
	}
	w.grants.startSweeping(sweepInterval)
	context.AfterFunc(ctx, func() { _ = w.Close() })
	w.logger.Info("emulated workspace listening", "url", w.url, "workspace_id", opts.Config.Workspace.ID)
	return w, nil
}

// listenTimeouts are the http.Server timeouts every emulator listener uses.
type listenTimeouts struct{ readHeader, read, idle time.Duration }

func newListenTimeouts(opts Options) (listenTimeouts, error) {
	t := listenTimeouts{readHeader: opts.ReadHeaderTimeout, read: opts.ReadTimeout, idle: opts.IdleTimeout}
	for _, d := range []struct {
		value *time.Duration
		def   time.Duration
		name  string
	}{
		{&t.readHeader, DefaultReadHeaderTimeout, "read header timeout"},
		{&t.read, DefaultReadTimeout, "read timeout"},
		{&t.idle, DefaultIdleTimeout, "idle timeout"},
	} {
		if *d.value == 0 {
			*d.value = d.def
		}
		if *d.value < 0 {
			return listenTimeouts{}, fmt.Errorf("%s %s: want a positive duration", d.name, *d.value)
		}
	}
	return t, nil
}

// serve serves h on ln until Close. Its timeouts close a connection whose client is idle or too slow, as the
// platform's front end and the app's own server do; a request that is being answered is never cut by them.
func (w *Workspace) serve(ln net.Listener, h http.Handler) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: w.listen.readHeader,
		ReadTimeout:       w.listen.read,
		IdleTimeout:       w.listen.idle,
		ErrorLog:          slog.NewLogLogger(w.logger.Handler(), slog.LevelWarn),
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.logger.Error("server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return srv
}

// URL is the workspace host, "http://127.0.0.1:PORT": what DATABRICKS_HOST is set to.
func (w *Workspace) URL() string { return w.url }

// WorkspaceID is the numeric id of the emulated workspace.
func (w *Workspace) WorkspaceID() string { return w.cfg.Workspace.ID }

// Config is the model the workspace runs.
func (w *Workspace) Config() Config { return w.cfg }

// AppURL is the URL of the app's proxy, or "" for an unknown app.
func (w *Workspace) AppURL(name string) string {
	if p, ok := w.apps[name]; ok {
		return p.url
	}
	return ""
}

// SetUpstream points an app's proxy at where the app listens, such as "http://127.0.0.1:8000". An empty
// upstreamURL detaches the app: its proxy answers 502 and the Apps API reports it UNAVAILABLE.
func (w *Workspace) SetUpstream(app, upstreamURL string) error {
	p, ok := w.apps[app]
	if !ok {
		return fmt.Errorf("set upstream: no app %q in the emulator config", app)
	}
	return p.setUpstream(upstreamURL)
}

// Upstream is where an app's proxy forwards, or "" when the app is not attached.
func (w *Workspace) Upstream(app string) string {
	if p, ok := w.apps[app]; ok {
		if u := p.upstreamURL(); u != nil {
			return u.String()
		}
	}
	return ""
}

// RequestCount is how many requests the workspace (not the app proxies) served for a path, such as
// "/api/2.0/preview/scim/v2/Me" or "/oidc/v1/token", so tests can measure what a client costs the workspace.
func (w *Workspace) RequestCount(path string) int64 { return w.counts.get(path) }

// RequestCounts is [Workspace.RequestCount] for every path seen so far.
func (w *Workspace) RequestCounts() map[string]int64 { return w.counts.snapshot() }

// Close stops every listener at once; in-flight requests are cut, as when a workspace goes away.
func (w *Workspace) Close() error {
	w.closed.Do(func() {
		servers := []*http.Server{w.server}
		for _, p := range w.apps {
			servers = append(servers, p.server)
			if p.transport != nil {
				defer p.transport.CloseIdleConnections()
			}
		}
		var errs []error
		for _, s := range servers {
			if s != nil {
				errs = append(errs, s.Close())
			}
		}
		w.wg.Wait()
		w.grants.stopSweeping()
		errs = append(errs, w.removeData())
		w.closeErr = errors.Join(errs...)
	})
	return w.closeErr
}

// requestCounts counts workspace requests per path.
type requestCounts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *requestCounts) add(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[path]++
}

func (c *requestCounts) get(path string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[path]
}

func (c *requestCounts) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// removeData removes the data folder if Start made it.
func (w *Workspace) removeData() error {
	if !w.removeDataDir {
		return nil
	}
	return os.RemoveAll(w.dataDir)
}
