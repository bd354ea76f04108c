package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/databricks-sample/go-apps-api/caller/appclient"
)

// Mode names which credentials the caller uses. Each mode builds one *config.Config with an explicit auth type
// (caller/appauth has the page's three).
type Mode string

const (
	ModeLocal    Mode = "local"    // a Databricks CLI profile (databricks-cli), or a token cached by `callapp login`
	ModeExternal Mode = "external" // a service principal's client id and secret (oauth-m2m)
	ModeApp      Mode = "app"      // the service principal a Databricks App runs as, from the platform's env (oauth-m2m)
	ModeAuto     Mode = "auto"     // the SDK's default chain; the auth type it picked is reported
	// ModeFederated exchanges an identity provider's JWT for a Databricks token (file-oidc or env-oidc).
	ModeFederated Mode = "federated"
)

var modes = []Mode{ModeLocal, ModeExternal, ModeApp, ModeFederated, ModeAuto}

// String, Set and Type make a Mode a flag value: --mode takes only a known mode, and completes to them.
func (m *Mode) String() string { return string(*m) }
func (m *Mode) Type() string   { return "mode" }
func (m *Mode) Set(v string) error {
	if !slices.Contains(modes, Mode(v)) {
		return errors.New("want local, external, app, federated or auto")
	}
	*m = Mode(v)
	return nil
}

// options are the flags every command shares: the credentials, the app and the bounds. A command's own flags live
// in its file.
type options struct {
	mode              Mode
	profile           string
	host              string
	clientID          string
	clientSecretStdin bool
	oidcTokenFile     string   // federated mode
	scopes            []string // login, and local mode reusing a login's token
	url               string
	app               string
	timeout           time.Duration
	retries           int
	json              bool
}

// parsed is what the command line chose: the command, its run with its own flags bound, and the shared options.
type parsed struct {
	name string
	run  func(ctx context.Context, e *env) error
	opts *options
	own  any // the command's own flag values (*callCmd, …), nil for a command without any
}

// errHelp means the command line asked for help or a completion script, which parseArgs has printed.
var errHelp = errors.New("help printed")

const usageHint = "Run `callapp help` for usage.\n"

const exitCodesText = `
Exit codes: 0 ok, 1 other failure, 2 usage or incomplete configuration, 3 not authenticated (401, redirect to login,
no token), 4 permission denied (403), 5 not found (404, unknown or stopped app), 6 network, 7 server error.
`

// newRootCommand is the command line: callapp, the flags every command shares, and one subcommand per file
// (cmd_*.go). A subcommand's RunE only checks its arguments and records itself in p: run runs it, with the timeout
// and the failure handling every command shares.
func newRootCommand(p *parsed) *cobra.Command {
	o := p.opts
	root := &cobra.Command{
		Use:   "callapp",
		Short: "Call a Databricks App's /api/ routes with an OAuth bearer token",
		Long: `callapp calls a Databricks App's /api/ routes with an OAuth bearer token, in each of the ways the page
"Connect to a Databricks app using token authentication" describes, and explains what went wrong when it fails.

Credentials (--mode):
  local      a Databricks CLI profile: --profile, else DATABRICKS_CONFIG_PROFILE, else the default profile
             (` + "`databricks auth login --profile P --scopes a,b`" + `, CLI v0.287.0 or later, gives its token custom scopes);
             with --scopes, the token ` + "`callapp login`" + ` cached for that profile (or host) and scopes
  external   a service principal: DATABRICKS_HOST, DATABRICKS_CLIENT_ID (or --host, --client-id) and
             DATABRICKS_CLIENT_SECRET (env, or --client-secret-stdin; never a flag)
  app        inside a Databricks App: the app's own service principal from the platform's env
  federated  token federation: an identity provider's JWT (--oidc-token-file F, DATABRICKS_OIDC_TOKEN_FILEPATH or
             DATABRICKS_OIDC_TOKEN), exchanged at DATABRICKS_HOST (or --host) for a Databricks token of the service
             principal DATABRICKS_CLIENT_ID (or --client-id) whose federation policy trusts it; no secret
  auto       the SDK's default chain (the default); the auth type it picked is reported

Target: --url https://<app>.databricksapps.com, or --app NAME (looked up with GET /api/2.0/apps/NAME).
Paths must start with /api/: the Apps proxy accepts bearer tokens on /api/ routes only.
Flags go before or after the command; a command's own true/false flags (--no-browser) after it.`,
		Example: `  callapp --mode local --profile my-env --app api-app whoami
  callapp --mode external --url https://api-app-123.aws.databricksapps.com call POST /api/echo --data '{"hi":1}'
  curl -H "Authorization: Bearer $(callapp --profile my-env token)" https://…/api/whoami`,
		SilenceErrors: true, // run prints every error, as a failure with its exit code
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q (want one of %s)", args[0], strings.Join(commandNames(cmd), ", "))
			}
			return fmt.Errorf("no command (want one of %s)", strings.Join(commandNames(cmd), ", "))
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return o.check(cmd) },
	}
	fs := root.PersistentFlags()
	fs.Var(&o.mode, "mode", "credentials: local, external, app, federated or auto (default auto; app for serve)")
	fs.StringVar(&o.profile, "profile", "", "Databricks CLI profile (local and auto modes, login)")
	fs.StringVar(&o.host, "host", "", "workspace URL (external and federated modes, login); overrides DATABRICKS_HOST")
	fs.StringVar(&o.clientID, "client-id", "", "service principal client id (external and federated modes); overrides DATABRICKS_CLIENT_ID")
	fs.BoolVar(&o.clientSecretStdin, "client-secret-stdin", false, "read the client secret from stdin (external mode)")
	fs.StringVar(&o.oidcTokenFile, "oidc-token-file", "", "file holding an identity provider's JWT (federated mode); "+
		"overrides DATABRICKS_OIDC_TOKEN_FILEPATH")
	fs.StringSliceVar(&o.scopes, "scopes", nil, "comma-separated OAuth scopes (login; local mode then reuses that login's token)")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "bound for the whole command, retries included")
	fs.IntVar(&o.retries, "retries", 3, "retries of 429/502/503/504 and connection resets")
	fs.BoolVar(&o.json, "json", false, "machine-readable output")
	modeNames := make([]string, len(modes))
	for i, m := range modes {
		modeNames[i] = string(m)
	}
	_ = root.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions(modeNames, cobra.ShellCompDirectiveNoFileComp))
	root.SetFlagErrorFunc(flagError)
	root.SetHelpTemplate(root.HelpTemplate() + exitCodesText)

	root.AddCommand(newCallCommand(p), newWhoAmICommand(p), newTokenCommand(p), newLoginCommand(p),
		newDoctorCommand(p), newServeCommand(p))
	return root
}

// choose records the command that runs, with its own flag values; its RunE calls it once its arguments are checked.
func (p *parsed) choose(cmd *cobra.Command, own any, run func(context.Context, *env) error) {
	p.name, p.own, p.run = cmd.Name(), own, run
}

// targetFlags are --url and --app, for the commands that call an app.
func targetFlags(fs *pflag.FlagSet, o *options) {
	fs.StringVar(&o.url, "url", "", "the app's URL, https://<app>.databricksapps.com")
	fs.StringVar(&o.app, "app", "", "the app's name, resolved to its URL through the Apps API")
}

// check validates the shared options once the command is known, and fills in what depends on it.
func (o *options) check(cmd *cobra.Command) error {
	if o.mode == "" {
		o.mode = ModeAuto
		if cmd.Name() == "serve" {
			o.mode = ModeApp
		}
	}
	var scopes []string
	for _, s := range o.scopes { // --scopes "sql, file.files" and --scopes "sql file.files" too
		scopes = append(scopes, strings.Fields(s)...)
	}
	slices.Sort(scopes)
	o.scopes = slices.Compact(scopes)
	switch {
	case o.timeout <= 0:
		return errors.New("--timeout must be positive")
	case o.retries < 0 || o.retries > 10:
		return errors.New("--retries must be between 0 and 10")
	case o.url != "" && o.app != "":
		return errors.New("give --url or --app, not both")
	}
	if o.url != "" {
		if _, err := appclient.ParseAppURL(o.url); err != nil {
			return fmt.Errorf("--url %w", err)
		}
	}
	return nil
}

// parseArgs parses the command line with the command definitions: flags before and after the command, help and
// completion (printed to stdout, then errHelp).
func parseArgs(args []string, stdout io.Writer) (*parsed, error) {
	p := &parsed{opts: &options{}}
	root := newRootCommand(p)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(io.Discard)
	if err := root.Execute(); err != nil {
		return nil, err
	}
	if p.run == nil { // help, or a completion script
		return nil, errHelp
	}
	return p, nil
}

// flagError words a flag the command line got wrong for a person: never with the value given to
// --client-secret-stdin (a secret pasted there), and naming the commands a flag of another command belongs to.
func flagError(cmd *cobra.Command, err error) error {
	var invalid *pflag.InvalidValueError
	var unknown *pflag.NotExistError
	switch {
	case errors.As(err, &invalid) && invalid.GetFlag().Name == "client-secret-stdin":
		return errors.New("--client-secret-stdin takes no value: pipe the secret on stdin")
	case errors.As(err, &unknown) && unknown.GetSpecifiedShortnames() != "":
		// -client-secret-stdin=…: a long flag with one dash, read as shorthands. Its value is not repeated.
		name, _, _ := strings.Cut(unknown.GetSpecifiedShortnames(), "=")
		if name == "client-secret-stdin" {
			return errors.New("--client-secret-stdin takes no value: pipe the secret on stdin")
		}
		return fmt.Errorf("unknown flag -%s: flags take two dashes, --%s", name, name)
	case errors.As(err, &unknown):
		name := unknown.GetSpecifiedName()
		var owners []string
		for _, c := range cmd.Root().Commands() {
			if c.LocalFlags().Lookup(name) != nil {
				owners = append(owners, c.Name())
			}
		}
		switch {
		case len(owners) == 0:
		case !cmd.HasParent():
			return fmt.Errorf("--%s is a flag of %s: give it after the command", name, joinAnd(owners))
		default:
			return fmt.Errorf("--%s applies to %s only", name, joinAnd(owners))
		}
	}
	return err
}

// commandNames are the commands a person can run.
func commandNames(root *cobra.Command) []string {
	var names []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() && c.Name() != "help" && c.Name() != "completion" {
			names = append(names, c.Name())
		}
	}
	return names
}

// noArgs is the Args check of a command that takes none.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) != 0 {
		return fmt.Errorf("%s takes no arguments, got %q", cmd.Name(), args)
	}
	return nil
}

// chooses is the RunE of a command with no checks beyond its Args: it records the command, own and run.
func (p *parsed) chooses(own any, run func(context.Context, *env) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		p.choose(cmd, own, run)
		return nil
	}
}

// joinAnd is "a", "a and b", "a, b and c".
func joinAnd(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}
