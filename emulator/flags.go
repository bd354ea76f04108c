package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// about is the emulator's help beyond its commands and flags, which cobra prints from their definitions.
const about = `Databricks Apps emulator: a local, offline Databricks workspace and Apps reverse proxy.

With no command it serves: the workspace and one proxy per app. emulator run also starts apps with the platform's
environment; emulator idp-token prints a token of one of the running emulator's identity providers.

The workspace also serves the Apps, Permissions and workspace files APIs: the real Databricks CLI logged in to it
can create apps, sync and deploy their code (which runs it as below), grant permissions and read the logs. And the
data an app reads as its user: a SQL warehouse (DuckDB underneath), Unity Catalog with its grants, row filters and
column masks, files in volumes, Genie spaces and secrets (docs/data.md).

Apps get DATABRICKS_APP_NAME, DATABRICKS_APP_PORT, DATABRICKS_HOST, DATABRICKS_WORKSPACE_ID, their own service
principal's DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET, and a TMPDIR of their own, removed once they have
exited (the platform throws an app's container away). On SIGINT or SIGTERM the emulator sends each app
SIGTERM and kills it 15 s later, as the platform does.`

// appLaunch is one app `run` starts.
type appLaunch struct {
	name    string
	appYAML string
	command []string
}

type options struct {
	command        string
	configFile     string
	stateFile      string
	profileDir     string
	dataDir        string
	fresh          bool
	tokenLifetime  time.Duration
	requestTimeout time.Duration
	computeDelay   time.Duration
	verbose        bool
	startTimeout   time.Duration
	upstreams      map[string]string
	launches       []*appLaunch
}

// newRootCommand is the emulator's command line. It serves with no command; serve and run record their options in
// *chosen for the caller of Execute to act on, idp-token does its work at once. getenv is the emulator's own
// environment: what the shell would have put in place of an unquoted $DATABRICKS_APP_PORT.
func newRootCommand(getenv func(string) string, chosen **options) *cobra.Command {
	serveCmd := func(use, short string) *cobra.Command {
		o := &options{command: "serve", upstreams: map[string]string{}}
		cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				if len(args) > 0 && !cmd.HasParent() {
					return fmt.Errorf("unknown command %q: want serve, run or idp-token (see --help)", args[0])
				}
				if len(args) > 0 {
					return fmt.Errorf("serve takes no arguments, got %q; to start an app use: emulator run -- COMMAND", args)
				}
				if err := o.check(getenv); err != nil {
					return err
				}
				*chosen = o
				return nil
			}}
		workspaceFlags(cmd.Flags(), o)
		cmd.Flags().Func("upstream", "forward the app named in `NAME=URL` to one you started yourself at URL (repeatable)", func(v string) error {
			name, url, ok := strings.Cut(v, "=")
			if !ok || name == "" || url == "" {
				return fmt.Errorf("want NAME=URL, got %q", v)
			}
			o.upstreams[name] = url
			return nil
		})
		return cmd
	}
	root := serveCmd("emulator", "A local, offline Databricks workspace and Apps reverse proxy")
	root.Long = about
	root.SilenceErrors, root.SilenceUsage = true, true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w (see --help)", err) })
	root.AddCommand(serveCmd("serve", "Serve the workspace and one proxy per app (the default)"),
		newRunCommand(getenv, chosen), newIdpTokenCommand())
	return root
}

// workspaceFlags are the flags of serve and run: the workspace and its proxies.
func workspaceFlags(fs *pflag.FlagSet, o *options) {
	fs.StringVar(&o.configFile, "config", "", "principal model `FILE`, JSON or YAML (default: the embedded one, see docs/emulator.md)")
	fs.StringVar(&o.stateFile, "state", "", "write the state JSON to `FILE` once everything listens (owner-only; removed on exit)")
	fs.StringVar(&o.profileDir, "profile-dir", "", "`DIR` where to write .databrickscfg and the databricks CLI stand-in (default: "+
		"profile/ in the data dir, a temp dir with --fresh); a new directory, or one holding none of your own "+
		".databrickscfg or databricks")
	fs.StringVar(&o.dataDir, "data-dir", "", "`DIR` where the workspace is kept across restarts: its apps, grants, files, "+
		"deployments, keys and address (default: "+dataDirName+" in $XDG_STATE_HOME, else in ~/.local/state; "+
		"~/Library/Application Support on macOS); one emulator at a time")
	fs.BoolVar(&o.fresh, "fresh", false, "a throw-away workspace instead, in a temp dir removed on exit (tests, demos)")
	fs.DurationVar(&o.tokenLifetime, "token-lifetime", workspace.DefaultTokenLifetime, "access token lifetime (e.g. 30s to exercise refresh)")
	fs.DurationVar(&o.requestTimeout, "request-timeout", workspace.DefaultRequestTimeout, "how long the proxy waits for an app, then answers 504")
	fs.DurationVar(&o.computeDelay, "compute-delay", workspace.DefaultComputeDelay, "how long an app's compute takes to "+
		"start or stop, in STARTING or STOPPING: the SDK's waiters and the CLI's spinners poll that long")
	fs.BoolVar(&o.verbose, "verbose", false, "log every request an app's proxy forwards (by default only those the app did not "+
		"answer: a sign-in redirect, a 400, 401, 403, 502, 504, a fault; the app logs its own answers)")
}

// newRunCommand is `emulator run`: serve, and start apps as the platform does.
func newRunCommand(getenv func(string) string, chosen **options) *cobra.Command {
	o := &options{command: "run", upstreams: map[string]string{}}
	cmd := &cobra.Command{
		Use:   "run [flags] [--app NAME [--app-yaml FILE]]... [-- COMMAND...]",
		Short: "Serve, and start apps with the platform's environment",
		Long: "run serves as the emulator does with no command, and starts apps with the platform's environment: the " +
			"command after -- is the last --app's; $DATABRICKS_APP_PORT in it is replaced (quote it in a shell: " +
			"'$DATABRICKS_APP_PORT').",
		Example: "  emulator run -- go run ./app\n  emulator run --app caller-app --app-yaml caller/app.yaml --app api-app -- ./bin/app",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(o.launches) == 0 {
				o.launches = append(o.launches, &appLaunch{})
			}
			last := o.launches[len(o.launches)-1]
			last.command = args
			if err := checkPortNotExpanded(args, getenv(portVariable)); err != nil {
				return fmt.Errorf("app %s: %w", appLabel(last.name), err)
			}
			for _, l := range o.launches {
				if len(l.command) == 0 && l.appYAML == "" {
					return fmt.Errorf("app %s: give its command after -- or its app.yaml with --app-yaml", appLabel(l.name))
				}
			}
			if err := o.check(getenv); err != nil {
				return err
			}
			*chosen = o
			return nil
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false) // the app's command starts at the first argument that is not a flag
	workspaceFlags(fs, o)
	fs.DurationVar(&o.startTimeout, "start-timeout", 2*time.Minute, "how long an app may take to listen")
	fs.Func("app", "the `NAME` of an app to start (default: the first app of the model); repeat for several apps. "+
		"An app the model lacks is created, as databricks apps create would: its own service principal, the "+
		"signed-in user its manager and user", func(v string) error {
		o.launches = append(o.launches, &appLaunch{name: v})
		return nil
	})
	fs.Func("app-yaml", "read command and env from this app.yaml `FILE`, for the preceding --app", func(v string) error {
		if len(o.launches) == 0 {
			o.launches = append(o.launches, &appLaunch{})
		}
		last := o.launches[len(o.launches)-1]
		if last.appYAML != "" {
			return errors.New("one --app-yaml per --app")
		}
		last.appYAML = v
		return nil
	})
	return cmd
}

// check validates what serve and run share, and works out where a lasting workspace is kept.
func (o *options) check(getenv func(string) string) error {
	switch {
	case o.fresh && o.dataDir != "":
		return errors.New("--fresh and --data-dir exclude each other: a fresh workspace is a temp dir of its own")
	case !o.fresh && o.dataDir == "":
		dir, err := defaultDataDir(getenv)
		if err != nil {
			return err
		}
		o.dataDir = dir
	}
	if o.tokenLifetime < time.Second {
		return fmt.Errorf("--token-lifetime %s: want at least 1s", o.tokenLifetime)
	}
	if o.requestTimeout <= 0 {
		return fmt.Errorf("--request-timeout %s: want a positive duration", o.requestTimeout)
	}
	if o.computeDelay <= 0 {
		return fmt.Errorf("--compute-delay %s: want a positive duration", o.computeDelay)
	}
	return nil
}

// execute runs the command line args (without the program's name): the options serve or run chose, nil when it was
// help, or idp-token, which has done its work.
func execute(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (*options, error) {
	var chosen *options
	root := newRootCommand(getenv, &chosen)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		return nil, err
	}
	return chosen, nil
}

// appLabel names an --app in messages; an empty name is the model's first app.
func appLabel(name string) string {
	if name == "" {
		return "(default)"
	}
	return name
}

// portVariable is the variable the platform gives an app to listen on, and its placeholder in a command.
const portVariable = "DATABRICKS_APP_PORT"

// quotePortFix is what to do about a port the shell substituted.
const quotePortFix = "put it in single quotes, '$" + portVariable + "', so that the shell leaves it to the emulator, " +
	"which replaces it with the app's port"

// checkPortNotExpanded refuses a command in which the shell, not the emulator, replaced $DATABRICKS_APP_PORT: the
// app would then listen on no port or on another one while the emulator waits for it on its own. It looks only at
// ports the command spells out, after "--port" (or "-p", "--server.port", any "--…port"), after "--port=", or
// after the colon of an address ("0.0.0.0:8000", ":8000": gunicorn's --bind, the caller's --listen), and refuses
//   - such a port left empty: the option last or followed by an empty argument, a "--…port" followed by another
//     option, nothing after the "=" or the colon (the shell's expansion of an unset variable);
//   - such a port equal to DATABRICKS_APP_PORT in the emulator's own environment (shellPort), in a command that
//     names no $DATABRICKS_APP_PORT (the expansion of a variable left over in the developer's shell).
//
// A script given to sh -c is one argument: its words are looked at too, so a double-quoted script is caught.
func checkPortNotExpanded(command []string, shellPort string) error {
	words := commandWords(command)
	placeholder := slices.ContainsFunc(command, func(a string) bool { return strings.Contains(a, portVariable) })
	for i, w := range words {
		next := ""
		if i+1 < len(words) {
			next = words[i+1]
		}
		port, ok := spelledPort(w, next)
		switch {
		case !ok:
		case port == "":
			if isPortOption(w) {
				w = strings.TrimSpace(w + " " + next)
			}
			return fmt.Errorf("the command has %q with no port: if you wrote $%s there, your shell replaced it "+
				"with nothing before the emulator saw the command; %s", w, portVariable, quotePortFix)
		case port == shellPort && !placeholder:
			return fmt.Errorf("the command has port %s, the value of %s in your shell: the shell put it in place of "+
				"$%s before the emulator saw the command, and the app would listen there, not on the port the "+
				"emulator gives it; %s", port, portVariable, portVariable, quotePortFix)
		}
	}
	return nil
}

// commandWords splits the arguments, and the words of each (a sh -c script), keeping an empty argument as "".
func commandWords(command []string) []string {
	var words []string
	for _, arg := range command {
		if strings.TrimSpace(arg) == "" {
			words = append(words, "")
			continue
		}
		for _, w := range strings.Fields(arg) {
			if w == `""` || w == "''" {
				w = ""
			}
			words = append(words, w)
		}
	}
	return words
}

// spelledPort returns the port word spells out (next is the word after it), and whether it spells one at all.
func spelledPort(word, next string) (port string, ok bool) {
	if isPortOption(word) {
		// "-p" also means other things (mkdir -p -m 700): only a "--…port" may not be followed by an option.
		if strings.HasPrefix(next, "-") && strings.HasSuffix(strings.ToLower(word), "port") {
			return "", true
		}
		return next, true
	}
	if name, value, found := strings.Cut(word, "="); found {
		if isPortOption(name) {
			return value, true
		}
		word = value
	}
	if m := addressPort.FindStringSubmatch(word); m != nil {
		return m[1], true
	}
	return "", false
}

// isPortOption tells an option that takes a port: -p, --port, --http-port, --server.port (Streamlit), ….
func isPortOption(word string) bool {
	if !strings.HasPrefix(word, "-") || strings.Contains(word, "=") {
		return false
	}
	name := strings.ToLower(strings.TrimLeft(word, "-"))
	return name == "p" || strings.HasSuffix(name, "port")
}

// addressPort is a listen address and its port, which may be empty: "0.0.0.0:8000", "localhost:", "[::]:", ":".
var addressPort = regexp.MustCompile(`^(?:localhost|[0-9.]+|\[[0-9a-fA-F:]*\])?:([0-9]*)$`)

// dataDirName is the emulator's folder in the user's state directory.
const dataDirName = "databricks-apps-emulator"

// defaultDataDir is where a lasting workspace is kept: the user's state directory, as the XDG Base Directory
// specification names it on Linux ($XDG_STATE_HOME, else ~/.local/state), or macOS's Application Support.
func defaultDataDir(getenv func(string) string) (string, error) {
	if dir := getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, dataDirName), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("HOME is not set, so the emulator has nowhere to keep its workspace: give --data-dir " +
			"DIR, or --fresh for a throw-away workspace")
	}
	if runtime.GOOS == "darwin" {
		return filepath.Join(home, "Library", "Application Support", dataDirName), nil
	}
	return filepath.Join(home, ".local", "state", dataDirName), nil
}
