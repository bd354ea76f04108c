package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/databricks-sample/go-apps-api/emulator/clistandin"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// run is the whole program; main only wires it to the process. Under the name databricks it is the CLI stand-in.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && filepath.Base(args[0]) == workspace.CLIFileName {
		return clistandin.Run(ctx, args[1:], getenv, stdout, stderr)
	}
	args = args[1:]
	command := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		command, args = args[0], args[1:]
	}
	switch command {
	case "serve", "run":
	case "idp-token":
		err := idpToken(ctx, args, stdout)
		if errors.Is(err, flag.ErrHelp) {
			_, _ = io.WriteString(stdout, usage)
			return nil
		}
		return err
	case "help":
		_, _ = io.WriteString(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q: want serve, run or idp-token (see --help)", command)
	}

	opts, err := parseFlags(command, args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = io.WriteString(stdout, usage)
		return nil
	}
	if err != nil {
		return err
	}
	return serve(ctx, opts, stdout, stderr)
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
		_ = os.Remove(o.stateFile) // a stale state would point scripts at dead ports
		defer os.Remove(o.stateFile)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	// The workspace outlives ctx until the apps have stopped (Close stops them first), so they can drain through it.
	w, err := workspace.Start(context.WithoutCancel(ctx), workspace.Options{Config: cfg, TokenLifetime: o.tokenLifetime,
		RequestTimeout: o.requestTimeout, Logger: logger, DataDir: o.dataDir, StartTimeout: o.startTimeout,
		AppStdout: stdout, AppStderr: stderr})
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
	if profileDir == "" {
		if profileDir, err = os.MkdirTemp("", "databricks-apps-emulator-"); err != nil {
			return fmt.Errorf("profile directory: %w", err)
		}
		defer os.RemoveAll(profileDir) // its refresh tokens die with this workspace anyway
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locate the emulator binary for the CLI stand-in: %w", err)
	}
	if _, err := w.WriteProfile(profileDir, self); err != nil {
		return err
	}

	instances, err := startApps(ctx, w, o)
	if err != nil {
		return err
	}
	if o.stateFile != "" {
		if err := w.WriteState(o.stateFile); err != nil {
			return err
		}
		w.KeepStateFile(o.stateFile)
	}
	printSummary(stdout, w, o.stateFile)

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

// startApps starts each launch with the platform's environment, through the same path as a deployment.
func startApps(ctx context.Context, w *workspace.Workspace, o options) (map[string]*workspace.Instance, error) {
	instances := map[string]*workspace.Instance{}
	for _, l := range o.launches {
		name := l.name
		if name == "" {
			name = w.AppNames()[0]
		}
		if w.AppURL(name) == "" {
			return instances, fmt.Errorf("--app %s: no such app in the emulator config", name)
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
		inst, err := w.StartApp(ctx, name, launch)
		if err != nil {
			return instances, err
		}
		instances[name] = inst
	}
	return instances, nil
}

func printSummary(stdout io.Writer, w *workspace.Workspace, stateFile string) {
	s := w.State()
	fmt.Fprintf(stdout, "Emulated Databricks workspace %s (workspace id %s)\n", s.WorkspaceHost, s.WorkspaceID)
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
