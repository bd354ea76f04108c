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
	"strconv"
	"strings"
	"sync"

	"github.com/databricks-sample/go-apps-api/emulator/clistandin"
	"github.com/databricks-sample/go-apps-api/emulator/runner"
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
	case "help":
		_, _ = io.WriteString(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q: want serve or run (see --help)", command)
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
	// The workspace outlives ctx until the apps have stopped (deferred below), so they can drain through it.
	w, err := workspace.Start(context.WithoutCancel(ctx), workspace.Options{Config: cfg, TokenLifetime: o.tokenLifetime,
		RequestTimeout: o.requestTimeout, Logger: logger})
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

	apps, err := startApps(ctx, w, o, stdout, stderr)
	defer stopApps(apps, logger)
	if err != nil {
		return err
	}
	if o.stateFile != "" {
		if err := w.WriteState(o.stateFile); err != nil {
			return err
		}
	}
	printSummary(stdout, w, o.stateFile)

	exited := make(chan error, len(apps))
	for name, a := range apps {
		go func() {
			<-a.Done()
			exited <- fmt.Errorf("app %s exited: %v", name, a.Err())
		}()
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
		return nil
	case err := <-exited:
		return err
	}
}

// startApps starts each launch with the platform's environment and attaches it to its proxy once it listens.
func startApps(ctx context.Context, w *workspace.Workspace, o options, stdout, stderr io.Writer) (map[string]*runner.App, error) {
	apps := map[string]*runner.App{}
	cfg := w.Config()
	out, errOut := &lockedWriter{w: stdout}, &lockedWriter{w: stderr}
	for _, l := range o.launches {
		name := l.name
		if name == "" {
			name = cfg.Apps[0].Name
		}
		app, ok := cfg.App(name)
		if !ok {
			return apps, fmt.Errorf("--app %s: no such app in the emulator config", name)
		}
		if _, dup := apps[name]; dup {
			return apps, fmt.Errorf("--app %s given twice", name)
		}
		command, env, dir := l.command, []string(nil), ""
		if l.appYAML != "" {
			yamlCommand, yamlEnv, yamlDir, err := readAppYAML(l.appYAML, app)
			if err != nil {
				return apps, err
			}
			env, dir = yamlEnv, yamlDir
			if len(command) == 0 {
				command = yamlCommand
			}
		}
		port, err := workspace.FreePort()
		if err != nil {
			return apps, err
		}
		sp, _ := cfg.ServicePrincipal(app.ServicePrincipal)
		platformEnv := []string{
			"DATABRICKS_APP_NAME=" + name,
			"DATABRICKS_HOST=" + w.URL(),
			"DATABRICKS_WORKSPACE_ID=" + cfg.Workspace.ID,
			"DATABRICKS_CLIENT_ID=" + sp.ApplicationID,
			"DATABRICKS_CLIENT_SECRET=" + sp.Secret,
		}
		a, err := runner.Start(runner.Spec{Name: name, Command: command, Dir: dir, Port: port,
			Env:    append(env, platformEnv...), // the platform's variables win over app.yaml's
			Stdout: &prefixWriter{out: out, prefix: []byte("[" + name + "] ")},
			Stderr: &prefixWriter{out: errOut, prefix: []byte("[" + name + "] ")}})
		if err != nil {
			return apps, err
		}
		apps[name] = a
		waitCtx, cancel := context.WithTimeout(ctx, o.startTimeout)
		err = a.WaitListening(waitCtx, "127.0.0.1:"+strconv.Itoa(port))
		cancel()
		if err != nil {
			return apps, err
		}
		if err := w.SetUpstream(name, "http://127.0.0.1:"+strconv.Itoa(port)); err != nil {
			return apps, err
		}
	}
	return apps, nil
}

// stopApps stops every app at once, each with the platform's grace period.
func stopApps(apps map[string]*runner.App, logger *slog.Logger) {
	var wg sync.WaitGroup
	for name, a := range apps {
		wg.Go(func() {
			if err := a.Stop(runner.StopGrace); err != nil {
				logger.Warn("stop app", "app", name, "err", err)
			}
		})
	}
	wg.Wait()
}

func printSummary(stdout io.Writer, w *workspace.Workspace, stateFile string) {
	s := w.State()
	fmt.Fprintf(stdout, "Emulated Databricks workspace %s (workspace id %s)\n", s.WorkspaceHost, s.WorkspaceID)
	for _, app := range w.Config().Apps {
		a := s.Apps[app.Name]
		upstream := a.Upstream
		if upstream == "" {
			upstream = "not running (502)"
		}
		fmt.Fprintf(stdout, "  app %-12s %s -> %s\n", app.Name, a.URL, upstream)
	}
	fmt.Fprintf(stdout, "  CLI profile %q in %s\n", s.Profile, s.ConfigFile)
	fmt.Fprintf(stdout, "    try: DATABRICKS_CONFIG_FILE=%s %s auth token --profile %s\n", s.ConfigFile, s.CLIPath, s.Profile)
	if stateFile != "" {
		fmt.Fprintf(stdout, "  state (with service principal credentials): %s\n", stateFile)
	}
	fmt.Fprintln(stdout, "Press Ctrl+C to stop.")
}
