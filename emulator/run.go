package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/databricks-sample/go-apps-api/app/logbuffer"
	"github.com/databricks-sample/go-apps-api/emulator/databrickscli"
	"github.com/databricks-sample/go-apps-api/emulator/sqlengine/duckdb"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// run is the whole program; main only wires it to the process. Under the name databricks it is the CLI stand-in.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && filepath.Base(args[0]) == workspace.CLIFileName {
		return databrickscli.Run(ctx, args[1:], getenv, stdout, stderr)
	}
	chosen, err := execute(ctx, args[1:], getenv, stdout, stderr)
	if err != nil {
		return err
	}
	if chosen == nil {
		return nil // help, or idp-token, which did its work
	}
	return serve(ctx, *chosen, stdout, stderr)
}

// serve starts the workspace (and, for run, the apps), reports where everything is, and waits for ctx to end or
// an app to exit.
func serve(ctx context.Context, o options, stdout, stderr io.Writer) (err error) {
	cfg := workspace.DefaultConfig()
	if o.configFile != "" {
		if cfg, err = workspace.LoadConfig(o.configFile); err != nil {
			return err
		}
	}
	if o.stateFile != "" {
		// One emulator per state file: a second one would overwrite the first's, and remove it on exit.
		lock, err := workspace.LockFile(stateLockPath(o.stateFile))
		if err != nil {
			return fmt.Errorf("state file %s: %w", o.stateFile, err)
		}
		defer lock.Release()
		_ = os.Remove(o.stateFile) // a stale state would point scripts at dead ports
		defer os.Remove(o.stateFile)
	}
	// The emulator logs a line per proxied request: batched, as the app's are, so a load test through the proxy
	// measures the proxy rather than write(2). The apps' stderr goes through the same buffer, to keep the order.
	logs := logbuffer.New(stderr, 100*time.Millisecond)
	defer logs.Close()
	stderr = logs
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug // every request the proxies forward, too
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// The workspace outlives ctx until the apps have stopped (Close stops them first), so they can drain through it.
	w, err := workspace.Start(context.WithoutCancel(ctx), workspace.Options{Config: cfg, TokenLifetime: o.tokenLifetime,
		RequestTimeout: o.requestTimeout, ComputeDelay: o.computeDelay, Logger: logger, DataDir: o.dataDir,
		StartTimeout: o.startTimeout, AppStdout: stdout, AppStderr: stderr, SQLEngine: duckdb.Open})
	if err != nil {
		return err
	}
	defer w.Close()
	for name, url := range o.upstreams {
		if err := w.SetUpstream(name, url); err != nil {
			return err
		}
	}

	profileDir := o.profileDir
	switch {
	case profileDir != "":
	case o.fresh:
		if profileDir, err = os.MkdirTemp("", "databricks-apps-emulator-"); err != nil {
			return fmt.Errorf("profile directory: %w", err)
		}
		defer os.RemoveAll(profileDir) // its refresh tokens die with this workspace anyway
	default:
		profileDir = filepath.Join(o.dataDir, "profile") // its token cache lasts as long as the workspace
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locate the emulator binary for the CLI stand-in: %w", err)
	}
	if _, err := w.WriteProfile(profileDir, self); err != nil {
		return err
	}

	instances, err := startApps(ctx, w, o, logger)
	if err != nil {
		return err
	}
	if o.stateFile != "" {
		if err := w.WriteState(o.stateFile); err != nil {
			return err
		}
		w.KeepStateFile(o.stateFile)
	}
	printSummary(stdout, w, o)

	// An app `run` started that exits on its own ends the emulator, so a script or CI job notices; an app the
	// workspace replaced (a deployment through the Apps API) or stopped (apps stop) does not.
	crashed := make(chan error, len(instances))
	for name, inst := range instances {
		go func() {
			<-inst.Done()
			if !inst.StoppedByWorkspace() {
				crashed <- fmt.Errorf("app %s exited: %v", name, inst.Err())
			}
		}()
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
		return nil
	case err := <-crashed:
		return err
	}
}

// portHintAfter is how long an app whose command names no $DATABRICKS_APP_PORT may take to listen before the
// emulator says where it waits: long enough for most apps, short against the 2-minute wait for a cold `go run`.
const portHintAfter = 10 * time.Second

// startApps starts each launch with the platform's environment, through the same path as a deployment.
func startApps(ctx context.Context, w *workspace.Workspace, o options, logger *slog.Logger) (map[string]*workspace.Instance, error) {
	instances := map[string]*workspace.Instance{}
	for _, l := range o.launches {
		name := l.name
		if name == "" {
			name = w.AppNames()[0]
		}
		if w.AppURL(name) == "" {
			// An app the model does not have is created, as `databricks apps create` would: a new app runs under its
			// own name with no model to write.
			if err := w.CreateApp(name); err != nil {
				return instances, fmt.Errorf("--app %s: %w", name, err)
			}
			logger.Info("created an app the model does not have", "app", name, "manager", "the signed-in user")
		}
		if _, dup := instances[name]; dup {
			return instances, fmt.Errorf("--app %s given twice", name)
		}
		var launch workspace.Launch
		if l.appYAML != "" {
			var err error
			if launch, err = w.ReadAppYAML(name, l.appYAML); err != nil {
				return instances, err
			}
		}
		if len(l.command) > 0 {
			launch.Command = l.command
		}
		inst, err := startApp(ctx, w, name, launch, logger)
		if err != nil {
			return instances, err
		}
		instances[name] = inst
	}
	return instances, nil
}

// startApp is w.StartApp, explaining an app that does not listen where the emulator waits when its command does
// not name $DATABRICKS_APP_PORT: such an app must read the variable from its environment (a Node or Go app can),
// or the shell took the placeholder out before the emulator saw it and no check could tell (flags.go).
func startApp(ctx context.Context, w *workspace.Workspace, name string, l workspace.Launch, logger *slog.Logger) (*workspace.Instance, error) {
	if slices.ContainsFunc(l.Command, func(a string) bool { return strings.Contains(a, portVariable) }) {
		return w.StartApp(ctx, name, l)
	}
	hint := fmt.Sprintf("its command names no $%s, so it must listen on the port in its environment variable %s; "+
		"if it takes the port as an argument, %s", portVariable, portVariable, quotePortFix)
	slow := time.AfterFunc(portHintAfter, func() {
		logger.Warn("app not listening yet on its DATABRICKS_APP_PORT", "app", name, "after", portHintAfter, "hint", hint)
	})
	inst, err := w.StartApp(ctx, name, l)
	slow.Stop()
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("%w\n%s", err, "hint: "+hint)
	}
	return inst, err
}

func printSummary(stdout io.Writer, w *workspace.Workspace, o options) {
	s, stateFile := w.State(), o.stateFile
	fmt.Fprintf(stdout, "Emulated Databricks workspace %s (workspace id %s)\n", s.WorkspaceHost, s.WorkspaceID)
	if o.fresh {
		fmt.Fprintln(stdout, "  a fresh workspace, thrown away on exit")
	} else {
		fmt.Fprintf(stdout, "  kept in %s across restarts (--fresh for a throw-away one)\n", o.dataDir)
	}
	for _, name := range w.AppNames() {
		a := s.Apps[name]
		upstream := a.Upstream
		if upstream == "" {
			upstream = "not running (502)"
		}
		fmt.Fprintf(stdout, "  app %-12s %s -> %s\n", name, a.URL, upstream)
	}
	fmt.Fprintf(stdout, "  CLI profile %q in %s\n", s.Profile, s.ConfigFile)
	fmt.Fprintf(stdout, "    try: DATABRICKS_CONFIG_FILE=%s %s auth token --profile %s\n", s.ConfigFile, s.CLIPath, s.Profile)
	if stateFile != "" {
		fmt.Fprintf(stdout, "  state (with service principal credentials): %s\n", stateFile)
	}
	fmt.Fprintln(stdout, "Press Ctrl+C to stop.")
}

// stateLockPath is the lock file of a state file: beside it, hidden, since the state file itself is replaced on
// every write.
func stateLockPath(stateFile string) string {
	return filepath.Join(filepath.Dir(stateFile), "."+filepath.Base(stateFile)+".lock")
}
