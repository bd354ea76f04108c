// Package workspace is an offline, in-process stand-in for the parts of Databricks an app and its callers touch:
// the workspace's OAuth endpoints, SCIM Me and the Apps API, and one Apps reverse proxy per app.
//
// Tests start it on free loopback ports with [Start] and talk to it with the real databricks-sdk-go; the emulator
// command (go run ./emulator) wraps it for humans. It reproduces the platform's behaviour as docs/platform.md
// describes it, including the failures (401, 403, 302, 502, 504), because those are what an app must be tested
// against. Where docs/platform.md marks a behaviour open (whether client-sent X-Forwarded-* headers or Authorization
// reach the app), it takes the strict side and strips them. What the platform does only on a bad day it plays on
// demand: faults ([Workspace.InjectFault]), revoked tokens ([Workspace.RevokeTokens]) and an unreachable workspace
// ([Workspace.Down]), in Go or over its control API (control.go).
package workspace

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"

	"github.com/databricks-sample/go-apps-api/emulator/runner"
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
// Their request headers are bounded as the app's are too: a client sending more gets 431, so hundreds of
// connections sending a megabyte of headers each cost the emulator a few tens of MiB, not a GiB.
const (
	DefaultMaxHeaderBytes    = 64 << 10
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
	LogKeepalive   time.Duration // how often an app's /logz/stream sends a keepalive frame; 15 s by default
	// RefreshTokenLifetime is how long a refresh token works after it is issued; 30 days by default.
	RefreshTokenLifetime time.Duration
	// Timeouts of every listener (workspace and proxies): to read a request's headers, to read the whole request
	// (a WebSocket is exempt once upgraded), and before an idle keep-alive connection is closed.
	ReadHeaderTimeout time.Duration // 10 s by default
	ReadTimeout       time.Duration // 60 s by default
	IdleTimeout       time.Duration // 120 s by default
	// DataDir keeps the workspace across restarts (persist.go): its files, apps, deployments, principals, grants,
	// keys and address; one workspace at a time may use it. Empty means a throw-away temp dir removed by Close.
	DataDir string
	// DiskQuota is how many bytes of workspace files each home folder, and /Shared, may hold; DefaultDiskQuota
	// (256 MiB) by default.
	DiskQuota int64
	// VolumeQuota is how many bytes of files each Unity Catalog volume may hold on this machine's disk;
	// DefaultVolumeQuota (1 GiB) by default. The platform's volumes live in cloud storage and have none: this bound
	// is the emulator's own, so that no principal fills the disk it runs on.
	VolumeQuota int64
	// AppStdout and AppStderr receive the output of the apps the workspace starts, each line labelled with the
	// app's name; nil discards it (it still reaches the app's log).
	AppStdout, AppStderr io.Writer
	// StartTimeout bounds how long a started app may take to listen (2 minutes by default); StopGrace is how long
	// a stopped app gets between SIGTERM and SIGKILL (the platform's 15 seconds by default).
	StartTimeout, StopGrace time.Duration
	// SQLEngine starts the engine behind the SQL warehouses (emulator/sqlengine/duckdb's Open); nil runs no
	// statement, each answering 501 with the reason. The engine is kept out of this package so that only the
	// programs that serve SQL link it.
	SQLEngine OpenSQLEngine
	// WarehouseTransition is how long a warehouse stays STARTING or STOPPING (2 s by default).
	WarehouseTransition time.Duration
	// UserEnv is the environment of the user running the emulator; nil means this process's. Deployed apps get
	// none of it; their installers get its pip, npm and uv configuration, proxy and certificates (build.go).
	UserEnv []string
	// ComputeDelay is how long an app's compute takes to start or stop (STARTING, STOPPING); 2 s by default.
	ComputeDelay time.Duration
	// computeHold, when set, holds each compute transition until a value is received from it: tests use it to
	// observe the transitional states whatever the machine's speed.
	computeHold chan struct{}
	// ports hands out the apps' ports; nil means the process's own (appPorts). Tests give a workspace its own.
	ports *portReservations
	// startWait bounds the wait for a started app to listen: StartTimeout, except in tests, which end it themselves
	// once the app has shown what they need, rather than guess how long that takes on a loaded machine.
	startWait func(ctx context.Context) (context.Context, context.CancelFunc)
}

// Workspace is a running emulated workspace with its app proxies. It is safe for concurrent use.
//
// It wires subsystems that each own their state and lock (routes.go): OAuth and tokens (authServer), the browser
// sign-in (sessions), SCIM (scim), workspace files (workspaceFiles), the apps (appManager, whose deployments' installs
// are its builder's) and their permissions (appPermissions), the data services
// (dataServices), the setting (workspaceSettings), faults and the control API (faults, controlAPI). What it keeps
// itself is its own listener, the store of a lasting workspace and the files it writes for its users (the state
// file, the CLI profile).
//
// Lock order, where one lock is taken while another is held (every other lock is a leaf):
//
//	stateMu → appManager.mu → directory.mu, the data services' locks (data.go), sessions.mu → grants.mu, the ports'
//	stateMu → directory.mu, warehouses.mu, profileMu  (WriteState reads the whole workspace)
//	listenMu → the ports' lock  (Down and Up keep and release the workspace's port)
//
// No subsystem calls back into the one whose lock it was called under: the sign-in's proxyAt, the token endpoint's
// appAsksScope, the apps' stateChanged, the builder's privateFiles and its calls into the apps (withDeployment,
// setStatus, an app's log), and the Permissions API's publish take their locks holding none. The builder (build.go)
// and appPermissions have no lock of their own.
type Workspace struct {
	cfg     Config
	dir     *directory
	logger  *slog.Logger
	listen  listenTimeouts
	url     string
	dataDir string
	counts  requestCounts

	listenMu sync.Mutex   // guards server, upTimer, afterFunc and listenClosed: Down, Up and Close
	server   *http.Server // the workspace's own listener; nil while it is down
	handler  http.Handler // the workspace's routes, which Up serves again
	upTimer  stopper      // brings the workspace back up after a timed down (the control API's)
	// afterFunc starts upTimer: time.AfterFunc, except in tests, which fire it themselves.
	afterFunc func(time.Duration, func()) stopper
	// listenClosed is set once Close has begun: the workspace never listens again.
	listenClosed bool

	auth     *authServer        // OAuth, the identity providers and bearer tokens (auth.go)
	scim     *scim              // the directory's SCIM API (scim.go)
	sessions *sessions          // the browsers signed in to apps (sessions.go, login.go)
	files    *workspaceFiles    // the workspace files APIs (files.go)
	apps     *appManager        // the apps, their deployments, proxies and processes (model.go)
	perms    *appPermissions    // the Permissions API for apps, over the apps' settings (permissions_api.go)
	data     *dataServices      // warehouses, statements, Unity Catalog, volumes, Genie, secrets (data.go)
	settings *workspaceSettings // the scopes apps may ask of their users (settings.go)
	faults   faults             // the failures played on purpose (faults.go)
	control  *controlAPI        // the control API (control.go)

	removeDataDir bool
	dataLock      *Lock  // keeps a second emulator off a given data folder
	store         *store // saves a lasting workspace (persist.go)
	savedURL      string // where the saved workspace listened
	statePath     string
	stateMu       sync.Mutex // guards statePath; one state file write at a time

	ctx    context.Context // ends when Close starts: background deployments stop
	cancel context.CancelFunc
	tasks  sync.WaitGroup // background deployments and starts, statements

	profileMu sync.Mutex
	prof      *Profile
	closeErr  error
	closed    sync.Once
	wg        sync.WaitGroup // the servers and the isolation check: Close waits for them
}

// Start validates the model, listens on 127.0.0.1 for the workspace and on a loopback address of its own for each
// app's proxy (addresses.go), and serves until Close is called or ctx ends.
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
	listen, err := newListenTimeouts(opts)
	if err := cmp.Or( // the first refusal
		orDefault(&opts.RefreshTokenLifetime, DefaultRefreshTokenLifetime, "refresh token lifetime", positiveDuration),
		orDefault(&opts.RequestTimeout, DefaultRequestTimeout, "request timeout", positiveDuration),
		orDefault(&opts.LogKeepalive, DefaultLogKeepalive, "log keepalive", positiveDuration),
		err,
		orDefault(&opts.VolumeQuota, DefaultVolumeQuota, "volume quota", "a number of bytes"),
		orDefault(&opts.DiskQuota, DefaultDiskQuota, "disk quota", "a number of bytes"),
		orDefault(&opts.ComputeDelay, DefaultComputeDelay, "compute delay", positiveDuration),
	); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = runner.StopGrace
	}
	for _, out := range []*io.Writer{&opts.AppStdout, &opts.AppStderr} {
		if *out == nil {
			*out = io.Discard
		}
	}
	w := &Workspace{
		cfg:    opts.Config,
		dir:    newDirectory(opts.Config),
		scim:   &scim{groups: opts.Config.Groups},
		logger: opts.Logger,
		listen: listen,
		files: &workspaceFiles{disk: newDiskUse(opts.DiskQuota, func(space string) string { return "/Workspace/" + space },
			"delete files you no longer need there (databricks workspace delete PATH)")},
		afterFunc: func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) },
	}
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.scim.dir = w.dir
	grants := newGrants(opts.RefreshTokenLifetime, opts.TokenLifetime)
	w.sessions = newSessions(opts.TokenLifetime, grants.revoke)
	w.settings = newWorkspaceSettings(opts.Config, w.logger)
	w.apps = &appManager{cfg: opts.Config, logger: w.logger, dir: w.dir, sessions: w.sessions, settings: w.settings,
		files: w.files, faults: &w.faults, changed: w.changed, stateChanged: w.stateChanged,
		serve: w.serve, ctx: w.ctx, tasks: &w.tasks, timeout: opts.RequestTimeout, logKeepalive: opts.LogKeepalive,
		ports: cmp.Or(opts.ports, appPorts), startWait: opts.startWait, stopGrace: opts.StopGrace,
		computeDelay: opts.ComputeDelay, computeHold: opts.computeHold,
		appStdout: &lockedWriter{w: opts.AppStdout}, appStderr: &lockedWriter{w: opts.AppStderr},
		byName: map[string]*appRecord{}}
	w.apps.build = &builder{userEnviron: opts.UserEnv, hidden: w.privateFiles, ctx: w.ctx, stderr: w.apps.appStderr,
		logger: w.logger, apps: w.apps}
	if w.apps.build.userEnviron == nil {
		w.apps.build.userEnviron = os.Environ()
	}
	if w.apps.startWait == nil {
		w.apps.startWait = func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, opts.StartTimeout)
		}
	}
	w.auth = &authServer{cfg: opts.Config, dir: w.dir, grants: grants, sessions: w.sessions, logger: w.logger,
		appScope: w.apps.appAsksScope}
	w.apps.auth = w.auth
	w.perms = &appPermissions{dir: w.dir, logger: w.logger, requireManage: w.apps.requireManage,
		publish: w.apps.publish, stateChanged: w.stateChanged}

	if err := w.openDataDir(opts.DataDir); err != nil {
		return nil, err
	}
	grants.changed = func() { w.changed("grants") }
	var ln net.Listener
	fail := func(err error) (*Workspace, error) { // undoes what Start did before it serves
		w.cancel()
		if w.data != nil {
			_ = w.data.close()
		}
		if ln != nil {
			_ = ln.Close()
		}
		w.releaseData()
		return nil, err
	}
	parts := w.subsystems()
	if err := w.store.load(parts[0]); err != nil { // the address: where to listen again
		return fail(err)
	}

	addr := opts.Config.Workspace.Host
	if addr == "" {
		addr = strings.TrimPrefix(w.savedURL, "http://")
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err = w.apps.ports.listen(addr)
	if err != nil {
		if w.savedURL != "" {
			return fail(fmt.Errorf("listen again on the saved workspace's address %s: %w (stop what listens there, "+
				"or start a fresh workspace with --fresh)", addr, err))
		}
		return fail(portTaken(fmt.Errorf("listen for the workspace on %s: %w", addr, err),
			"the model's workspace.host, such as 127.0.0.1:0"))
	}
	w.url = "http://" + ln.Addr().String()
	w.auth.url, w.apps.url = w.url, w.url
	w.faults.authenticate, w.faults.closing, w.faults.logger = w.auth.authenticate, w.ctx.Done(), w.logger
	w.control = &controlAPI{ws: w, url: w.url, logger: w.logger}
	w.sessions.url, w.sessions.dir, w.sessions.settings, w.sessions.apps = w.url, w.dir, w.settings, w.apps
	w.sessions.generation, w.sessions.logger = grants.generation, w.logger
	if w.auth.issuer, err = newIssuer(w.url+"/oidc", opts.TokenLifetime, grants.generation); err != nil {
		return fail(err)
	}
	w.auth.federation = newFederation(opts.Config, w.url, func() { w.changed("identity-providers") })
	if w.data, err = newDataServices(w.ctx, opts, w.dir, w.url, w.dataDir, &w.tasks, w.logger, w.changed); err != nil {
		return fail(err)
	}
	w.apps.data = w.data
	for _, part := range w.subsystems()[1:] {
		if err := w.store.load(part); err != nil {
			return fail(err)
		}
	}
	w.handler = w.routes()
	w.server = w.serve(ln, w.handler)

	if err := w.apps.addModelApps(opts.Config); err != nil {
		_ = w.Close()
		return nil, err
	}
	w.apps.restoreApps()
	w.store.start()
	for _, part := range w.subsystems() {
		w.changed(part.name) // saved at once: a workspace killed later comes back as it started
	}
	w.apps.warnConfusedDeputies() // the apps as they are now: the model's, and those a lasting workspace kept
	grants.startSweeping(sweepInterval)
	// Beside the start: the check starts the emulator's own executable in new namespaces, some 25 ms for a binary
	// of over 100 MB, which nothing the workspace serves waits for (a deployment that sandboxes waits for it). Close
	// waits for it, so that the check's temp folder is removed even when the workspace closes at once.
	w.wg.Go(w.apps.build.reportIsolation)
	context.AfterFunc(ctx, func() { _ = w.Close() })
	w.logger.Info("emulated workspace listening", "url", w.url, "workspace_id", opts.Config.Workspace.ID,
		"data", w.dataDir, "lasting", !w.removeDataDir)
	return w, nil
}

// openDataDir makes the data folder (a temp one, removed by Close, when dir is empty), locks a given one against a
// second emulator, and makes the home folders.
func (w *Workspace) openDataDir(dir string) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "databricks-workspace-")
		if err != nil {
			return fmt.Errorf("workspace data folder: %w", err)
		}
		w.dataDir, w.removeDataDir = tmp, true
		w.apps.dataDir, w.apps.build.dataDir = tmp, tmp
		w.store = newStore("", w.logger, w.subsystems)
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("workspace data folder: %w", err)
		}
		w.dataDir, w.apps.dataDir, w.apps.build.dataDir = abs, abs, abs
		if err := os.MkdirAll(filepath.Join(abs, "workspace"), 0o700); err != nil {
			return fmt.Errorf("workspace data folder: %w", err)
		}
		if w.dataLock, err = LockFile(filepath.Join(abs, "emulator.lock")); err != nil {
			return fmt.Errorf("workspace data folder %s: %w", abs, err)
		}
		w.store = newStore(filepath.Join(abs, "workspace"), w.logger, w.subsystems)
	}
	w.files.dir, w.files.who = filepath.Join(w.dataDir, "files"), w.dir
	if err := w.files.makeHomeFolders(); err != nil {
		w.releaseData()
		return err
	}
	return nil
}

// listenTimeouts are the http.Server timeouts every emulator listener uses.
type listenTimeouts struct{ readHeader, read, idle time.Duration }

func newListenTimeouts(opts Options) (listenTimeouts, error) {
	t := listenTimeouts{readHeader: opts.ReadHeaderTimeout, read: opts.ReadTimeout, idle: opts.IdleTimeout}
	if err := cmp.Or(
		orDefault(&t.readHeader, DefaultReadHeaderTimeout, "read header timeout", positiveDuration),
		orDefault(&t.read, DefaultReadTimeout, "read timeout", positiveDuration),
		orDefault(&t.idle, DefaultIdleTimeout, "idle timeout", positiveDuration),
	); err != nil {
		return listenTimeouts{}, err
	}
	return t, nil
}

const positiveDuration = "a positive duration"

// orDefault gives an option left at zero its default, and refuses a negative one: "<what> <value>: want <want>".
func orDefault[T ~int64](v *T, def T, what, want string) error {
	if *v == 0 {
		*v = def
	}
	if *v < 0 {
		return fmt.Errorf("%s %v: want %s", what, *v, want)
	}
	return nil
}

// serve serves h on ln until Close. Its timeouts close a connection whose client is idle or too slow, as the
// platform's front end and the app's own server do; a request that is being answered is never cut by them.
func (w *Workspace) serve(ln net.Listener, h http.Handler) *http.Server {
	srv := &http.Server{
		Handler:           h,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		ReadHeaderTimeout: w.listen.readHeader,
		ReadTimeout:       w.listen.read,
		IdleTimeout:       w.listen.idle,
		ErrorLog:          slog.NewLogLogger(w.logger.Handler(), slog.LevelWarn),
		// HTTP/2 without TLS (h2c) with prior knowledge, besides HTTP/1.1: the platform's proxy speaks both, and asks
		// apps to (docs/platform.md). The upgrade from HTTP/1.1 is withH2CUpgrade's.
		Protocols: new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
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

// Config is the model the workspace started from; the Apps and Permissions APIs change the apps since.
func (w *Workspace) Config() Config { return w.cfg }

// AppURL is the URL of the app's proxy, "http://127.0.0.N:PORT", or "" for an unknown app.
func (w *Workspace) AppURL(name string) string {
	if p := w.apps.proxyOf(name); p != nil {
		return p.url
	}
	return ""
}

// SetUpstream points an app's proxy at where the app listens, such as "http://127.0.0.1:8000". An empty
// upstreamURL detaches the app: its proxy answers 502 and the Apps API reports it UNAVAILABLE.
func (w *Workspace) SetUpstream(app, upstreamURL string) error {
	p := w.apps.proxyOf(app)
	if p == nil {
		return fmt.Errorf("set upstream: no app %q in the workspace", app)
	}
	return p.setUpstream(upstreamURL)
}

// Upstream is where an app's proxy forwards, or "" when the app is not attached.
func (w *Workspace) Upstream(app string) string {
	if p := w.apps.proxyOf(app); p != nil {
		if u := p.upstreamURL(); u != nil {
			return u.String()
		}
	}
	return ""
}

// AppNames lists the workspace's apps in creation order: the model's first.
func (w *Workspace) AppNames() []string { return w.apps.names() }

// CreateApp creates an app the model does not have, as the signed-in user creating it through the Apps API would:
// with a service principal of its own, the signed-in user as its manager (which includes CAN USE), no user
// authorization scopes and no resources. `emulator run --app NAME` uses it, so a new app runs under its own name
// with no model written by hand; its compute is active at once, as the model's apps' are, since run starts it.
func (w *Workspace) CreateApp(name string) error {
	if _, jerr := w.apps.createApp(w.dir.signedIn, apps.App{Name: name}, apps.ComputeStateActive, false); jerr != nil {
		return errors.New(jerr.Message)
	}
	return nil
}

// ReadAppYAML reads an app.yaml into a Launch for the named app. A valueFrom naming one of the app's app resources
// yields the name of the app it points at, as on the platform; other resource types are not emulated.
func (w *Workspace) ReadAppYAML(app, path string) (Launch, error) {
	return w.apps.readAppYAML(app, path)
}

// StartApp starts an app's process as the platform does (its own service principal's credentials and the
// platform's variables in its environment, a port of its own), waits until it listens, attaches it to the app's
// proxy and stops the instance it replaces. Deployments and `emulator run` both start apps through it.
func (w *Workspace) StartApp(ctx context.Context, app string, l Launch) (*Instance, error) {
	return w.apps.startApp(ctx, app, l)
}

// AppLogWriter returns a new writer into an app's log, for its stdout or its stderr (one writer each): what the app
// writes there is what `databricks apps logs` shows. For an unknown app it returns io.Discard.
func (w *Workspace) AppLogWriter(app string) io.Writer { return w.apps.logWriter(app) }

// AppLogSystem records a platform event in an app's log, such as "App started": the SYSTEM lines of
// `databricks apps logs`. It does nothing for an unknown app.
func (w *Workspace) AppLogSystem(app, msg string) { w.apps.logSystem(app, msg) }

// RevokeTokens revokes every token issued so far to a principal (a user's name, or a service principal's application
// id or name), as an admin does after a leak: its access tokens, the proxies' forwarded tokens of a user and its
// refresh tokens stop working at once, at the workspace's APIs and at every app's proxy, and a user's browser
// sessions end. What was granted before and is used after is refused too: an authorization code or a sign-in code
// not yet redeemed, and a redemption or a refresh under way, whose tokens carry the generation of their grant.
// Tokens issued afterwards work. Cached verifications do not matter: revocation is checked on every request.
func (w *Workspace) RevokeTokens(name string) error { return w.auth.revokeTokens(name) }

// privateFiles are the workspace's files that hold secrets, which no sandboxed app may see: the state file and the
// CLI profile's folder.
func (w *Workspace) privateFiles() []string {
	var hide []string
	w.stateMu.Lock()
	if w.statePath != "" {
		hide = append(hide, w.statePath)
	}
	w.stateMu.Unlock()
	if p, ok := w.profile(); ok {
		hide = append(hide, filepath.Dir(p.ConfigFile))
	}
	return hide
}

// RequestCount is how many requests the workspace (not the app proxies) served for a path, such as
// "/api/2.0/preview/scim/v2/Me" or "/oidc/v1/token", so tests can measure what a client costs the workspace.
func (w *Workspace) RequestCount(path string) int64 { return w.counts.get(path) }

// RequestCounts is [Workspace.RequestCount] for every path seen so far.
func (w *Workspace) RequestCounts() map[string]int64 { return w.counts.snapshot() }

// Close stops the apps the workspace started (SIGTERM, then SIGKILL after the grace period, while their proxies
// still answer so they can drain), then every listener at once: in-flight requests are cut, as when a workspace goes
// away. Log streams, which http.Server.Close does not reach once upgraded, are closed with 1001 first, and Close
// waits for them to end. Close works whether the workspace is up or [Workspace.Down].
func (w *Workspace) Close() error {
	w.closed.Do(func() {
		w.apps.stopAll() // sets closing: no app, proxy or process starts from here on
		w.cancel()
		w.tasks.Wait()
		proxies := w.apps.proxies()
		w.listenMu.Lock()
		w.listenClosed = true
		if w.upTimer != nil {
			w.upTimer.Stop()
		}
		servers := []*http.Server{w.server} // nil while down
		w.listenMu.Unlock()
		for _, p := range proxies {
			p.logs.close() // waits for the streams' close handshakes: not under the lock
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
		errs = append(errs, w.data.close()) // every statement has ended: the tasks were waited for
		w.auth.grants.stopSweeping()
		w.store.close()
		errs = append(errs, w.releaseData())
		w.closeErr = errors.Join(errs...)
	})
	return w.closeErr
}

// Down takes the workspace's own listener down, as when a workspace is unreachable: new connections are refused
// and open ones closed, requests in flight included. The apps' proxies keep serving, and every token stays valid.
// [Workspace.Up] brings it back; Down on a workspace that is down does nothing.
func (w *Workspace) Down() error { return w.down(0) }

// down is Down and, when upAfter is set, Up after that long: the control API's down, whose client cannot ask a
// workspace that is down for the Up.
func (w *Workspace) down(upAfter time.Duration) error {
	w.listenMu.Lock()
	defer w.listenMu.Unlock()
	if w.listenClosed {
		return fmt.Errorf("take the workspace down: %w", errClosing)
	}
	if w.upTimer != nil { // a Down after a timed down stays down; a timed down after one ends when it says
		w.upTimer.Stop()
		w.upTimer = nil
	}
	var err error
	if w.server != nil {
		err = w.server.Close()
		w.server = nil
		w.apps.ports.keep(w.port()) // no app of this process is given the port while the workspace is down
		w.logger.Info("workspace down: its listener is closed; the app proxies still serve", "url", w.url)
	}
	if upAfter > 0 {
		w.upTimer = w.afterFunc(upAfter, func() {
			if err := w.Up(); err != nil && !errors.Is(err, errClosing) {
				w.logger.Error("bring the workspace up again", "err", err)
			}
		})
	}
	return err
}

// Up listens again on the workspace's address after [Workspace.Down], with the same routes and state. It fails if
// another program took the port meanwhile; Up on a workspace that is up does nothing.
func (w *Workspace) Up() error {
	w.listenMu.Lock()
	defer w.listenMu.Unlock()
	if w.listenClosed {
		return fmt.Errorf("bring the workspace up: %w", errClosing)
	}
	if w.upTimer != nil {
		w.upTimer.Stop()
		w.upTimer = nil
	}
	if w.server != nil {
		return nil
	}
	addr := strings.TrimPrefix(w.url, "http://")
	w.apps.ports.release(w.port())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen again for the workspace on %s: %w", addr, err)
	}
	w.server = w.serve(ln, w.handler)
	w.logger.Info("workspace up again", "url", w.url)
	return nil
}

// stopper is a timer that can be stopped: a *time.Timer.
type stopper interface{ Stop() bool }

// port is the workspace's own port, the one in its URL.
func (w *Workspace) port() int {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(w.url, "http://"))
	n, _ := strconv.Atoi(port)
	return n
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

// releaseData removes the data folder if Start made it, and lets go of a given one.
func (w *Workspace) releaseData() error {
	if w.removeDataDir {
		return os.RemoveAll(w.dataDir)
	}
	return w.dataLock.Release()
}
