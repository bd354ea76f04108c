package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/databricks-sample/go-apps-api/app/logbuffer"
	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

const (
	// defaultAppName is the name /api/health reports off the platform, which sets DATABRICKS_APP_NAME.
	defaultAppName   = "api-app"
	defaultLocalAddr = "127.0.0.1:8000"
	// The platform sends SIGTERM and kills the app 15 s later: drain well inside that.
	shutdownGrace = 10 * time.Second
	// Forwarded headers are a few kilobytes at most (the user's access token is the longest).
	maxHeaderBytes = 64 << 10
	// How long a log line may wait in the buffer before it is written out.
	logFlushInterval = 100 * time.Millisecond
)

// settings is everything the app reads from its flags and environment.
type settings struct {
	addr          string
	addrFrom      string // where addr came from, for the message when it is taken
	appName       string
	workspaceHost string
	workspaceID   string
	clientID      string
	clientSecret  string
	// The app's resources, which app.yaml's valueFrom resolves: the SQL warehouse's id and the volume's path.
	warehouseID      string
	reportsVolume    string
	workspaceTimeout time.Duration
	// readHeaderTimeout closes connections whose request headers take longer (slow-header clients).
	readHeaderTimeout time.Duration
}

// loadSettings resolves the listen address and the platform's variables. The address is, in order: the --addr flag,
// APP_LISTEN_ADDR, 0.0.0.0:$DATABRICKS_APP_PORT (the platform), else 127.0.0.1:8000. Off the platform the app binds to
// loopback: it trusts X-Forwarded-* headers, so it must not be reachable except through a proxy that sets them.
func loadSettings(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "listen address (default: APP_LISTEN_ADDR, else 0.0.0.0:$DATABRICKS_APP_PORT, else "+defaultLocalAddr+")")
	if err := fs.Parse(args[1:]); err != nil {
		return settings{}, err
	}
	if fs.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	s := settings{
		addr:              *addr,
		addrFrom:          "--addr",
		appName:           getenv("DATABRICKS_APP_NAME"),
		workspaceHost:     sdkconfig.NormaliseHost(getenv("DATABRICKS_HOST")),
		workspaceID:       getenv("DATABRICKS_WORKSPACE_ID"),
		clientID:          getenv("DATABRICKS_CLIENT_ID"),
		clientSecret:      getenv("DATABRICKS_CLIENT_SECRET"),
		warehouseID:       getenv("WAREHOUSE_ID"),
		reportsVolume:     getenv("REPORTS_VOLUME"),
		workspaceTimeout:  30 * time.Second,
		readHeaderTimeout: 10 * time.Second,
	}
	if s.addr == "" {
		s.addr, s.addrFrom = getenv("APP_LISTEN_ADDR"), "APP_LISTEN_ADDR"
	}
	if s.addr == "" {
		if port := getenv("DATABRICKS_APP_PORT"); port != "" {
			s.addr, s.addrFrom = net.JoinHostPort("0.0.0.0", port), "DATABRICKS_APP_PORT"
		} else {
			s.addr, s.addrFrom = defaultLocalAddr, "the default"
		}
	}
	if s.appName == "" {
		s.appName = defaultAppName
	}
	if v := getenv("APP_WORKSPACE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return settings{}, fmt.Errorf("APP_WORKSPACE_TIMEOUT=%q: want a positive duration such as 30s", v)
		}
		s.workspaceTimeout = d
	}
	if v := getenv("APP_READ_HEADER_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return settings{}, fmt.Errorf("APP_READ_HEADER_TIMEOUT=%q: want a positive duration such as 10s", v)
		}
		s.readHeaderTimeout = d
	}
	return s, nil
}

// run starts the app and serves until ctx is cancelled, then drains in-flight requests for up to 10 s.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s, err := loadSettings(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logs := logbuffer.New(stdout, logFlushInterval)
	defer logs.Close()
	logger := slog.New(slog.NewJSONHandler(logs, nil))

	ws := newWorkspace(s, logger)
	srv := &http.Server{
		Handler:           NewServer(logger, s.appName, ws),
		ReadHeaderTimeout: s.readHeaderTimeout,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// TLS ends at the Databricks proxy, which may speak HTTP/2 without TLS (h2c) to the app.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)

	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return listenError(s, err)
	}
	logger.Info("listening", "addr", ln.Addr().String(), "app", s.appName, "version", version,
		"workspace", s.workspaceHost, "service_principal_configured", s.clientID != "")
	_ = logs.Flush() // tell whoever waits for this line at once
	go ws.warmUp(ctx)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down", "grace", shutdownGrace.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// listenError says where the app could not listen and why; for a port another program holds, how to choose another.
func listenError(s settings, err error) error {
	err = fmt.Errorf("listen on %s (from %s): %w", s.addr, s.addrFrom, err)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w\nanother program listens there (an earlier run of the app?): stop it, or choose another "+
			"address with --addr or APP_LISTEN_ADDR, such as --addr 127.0.0.1:8001", err)
	}
	return err
}
