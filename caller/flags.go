package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Mode names which credentials the caller uses. Each mode builds one *config.Config with an explicit auth type
// (caller/appauth has the page's three).
type Mode string

const (
	ModeLocal    Mode = "local"    // a Databricks CLI profile (databricks-cli), or a token cached by `caller login`
	ModeExternal Mode = "external" // a service principal's client id and secret (oauth-m2m)
	ModeApp      Mode = "app"      // the service principal a Databricks App runs as, from the platform's env (oauth-m2m)
	ModeAuto     Mode = "auto"     // the SDK's default chain; the auth type it picked is reported
	// ModeFederated exchanges an identity provider's JWT for a Databricks token (file-oidc or env-oidc).
	ModeFederated Mode = "federated"
)

var modes = []Mode{ModeLocal, ModeExternal, ModeApp, ModeFederated, ModeAuto}

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

// command is one subcommand: its own flags, its checks of them and its run.
type command interface {
	flags(fs *flag.FlagSet)
	// check validates the positional arguments and the command's own flags; set holds the flags given.
	check(o *options, args []string, set map[string]bool) error
	run(ctx context.Context, e *env) error
}

// newCommands lists the commands, each with fresh flag values.
func newCommands() map[string]command {
	return map[string]command{
		"call": &callCmd{}, "whoami": &whoamiCmd{}, "token": &tokenCmd{}, "login": &loginCmd{},
		"doctor": &doctorCmd{}, "serve": &serveCmd{},
	}
}

var commandNames = []string{"call", "whoami", "token", "login", "doctor", "serve"}

// targetCommands take --url or --app.
var targetCommands = []string{"call", "whoami", "token", "doctor"}

var errHelp = errors.New("help requested")

const usageHint = "Run `caller help` for usage.\n"

const usage = `caller: call a Databricks App's /api/ routes with an OAuth bearer token.

Usage:
  caller [flags] call [METHOD] PATH [--data JSON|@file]   one request; the app's answer is printed as it came
  caller [flags] whoami                                  GET /api/whoami: who the app saw you as (any other answer as it came)
  caller [flags] token                                   print the bearer token (for curl); nothing else prints it
  caller [flags] login --scopes sql,file.files,...       U2M login with custom scopes, token cached on disk
  caller [flags] doctor                                  run the troubleshooting checklist, one line per check
  caller [flags] serve                                   run as a Databricks App calling TARGET_APP / TARGET_APP_URL

Credentials (--mode):
  local     a Databricks CLI profile: --profile, else DATABRICKS_CONFIG_PROFILE, else the default profile
            (` + "`databricks auth login --profile P --scopes a,b`" + `, CLI v0.287.0 or later, gives its token custom scopes);
            with --scopes, the token ` + "`caller login`" + ` cached for that profile (or host) and scopes
  external  a service principal: DATABRICKS_HOST, DATABRICKS_CLIENT_ID (or --host, --client-id) and
            DATABRICKS_CLIENT_SECRET (env, or --client-secret-stdin; never a flag)
  app       inside a Databricks App: the app's own service principal from the platform's env
  federated token federation: an identity provider's JWT (--oidc-token-file F, DATABRICKS_OIDC_TOKEN_FILEPATH or
            DATABRICKS_OIDC_TOKEN), exchanged at DATABRICKS_HOST (or --host) for a Databricks token of the service
            principal DATABRICKS_CLIENT_ID (or --client-id) whose federation policy trusts it; no secret
  auto      the SDK's default chain (the default); the auth type it picked is reported

Target: --url https://<app>.databricksapps.com, or --app NAME (looked up with GET /api/2.0/apps/NAME).
Paths must start with /api/: the Apps proxy accepts bearer tokens on /api/ routes only.

Flags of every command:
`

// commonFlags declares the flags every command shares; mode and scopes need checking after parsing.
func commonFlags(fs *flag.FlagSet, o *options) (mode, scopes *string) {
	mode = fs.String("mode", "", "credentials: local, external, app, federated or auto (default auto; app for serve)")
	fs.StringVar(&o.profile, "profile", "", "Databricks CLI profile (local and auto modes, login)")
	fs.StringVar(&o.host, "host", "", "workspace URL (external mode, login); overrides DATABRICKS_HOST")
	fs.StringVar(&o.clientID, "client-id", "", "service principal client id (external mode); overrides DATABRICKS_CLIENT_ID")
	fs.BoolVar(&o.clientSecretStdin, "client-secret-stdin", false, "read the client secret from stdin (external mode)")
	fs.StringVar(&o.oidcTokenFile, "oidc-token-file", "", "file holding an identity provider's JWT (federated mode); "+
		"overrides DATABRICKS_OIDC_TOKEN_FILEPATH")
	scopes = fs.String("scopes", "", "comma-separated OAuth scopes (login; local mode then reuses that login's token)")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "bound for the whole command, retries included")
	fs.IntVar(&o.retries, "retries", 3, "retries of 429/502/503/504 and connection resets")
	fs.BoolVar(&o.json, "json", false, "machine-readable output")
	return mode, scopes
}

func targetFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.url, "url", "", "the app's URL, https://<app>.databricksapps.com")
	fs.StringVar(&o.app, "app", "", "the app's name, resolved to its URL through the Apps API")
}

// flagSet is the flag set of one command: the shared flags, --url and --app where they apply, and its own.
func flagSet(name string, cmd command, o *options) (fs *flag.FlagSet, mode, scopes *string) {
	fs = flag.NewFlagSet("caller "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	mode, scopes = commonFlags(fs, o)
	if slices.Contains(targetCommands, name) {
		targetFlags(fs, o)
	}
	cmd.flags(fs)
	return fs, mode, scopes
}

// printUsage writes the usage text with the flag lists generated from the flag sets, so the two cannot drift.
func printUsage(w io.Writer) {
	common := flag.NewFlagSet("caller", flag.ContinueOnError)
	commonFlags(common, &options{})
	targetFlags(common, &options{})
	common.SetOutput(w)
	fmt.Fprint(w, usage)
	common.PrintDefaults()
	cmds := newCommands()
	for _, name := range commandNames {
		own := flag.NewFlagSet(name, flag.ContinueOnError)
		cmds[name].flags(own)
		if !hasFlags(own) {
			continue
		}
		fmt.Fprintf(w, "\nFlags of %s:\n", name)
		own.SetOutput(w)
		own.PrintDefaults()
	}
	fmt.Fprint(w, exitCodesText)
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseArgs finds the command, then parses every flag, before and after it, with that command's flag set:
// `caller --mode local whoami --json`.
func parseArgs(args []string) (string, command, *options, error) {
	name, rest, err := splitCommand(args)
	if err != nil {
		return "", nil, nil, err
	}
	cmd := newCommands()[name]
	o := &options{}
	fs, mode, scopes := flagSet(name, cmd, o)
	positional, err := parseInterleaved(fs, rest, name)
	if err != nil {
		return "", nil, nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	o.mode = Mode(*mode)
	if o.mode == "" {
		o.mode = ModeAuto
		if name == "serve" {
			o.mode = ModeApp
		}
	}
	if !slices.Contains(modes, o.mode) {
		return "", nil, nil, fmt.Errorf("unknown --mode %q (want local, external, app, federated or auto)", *mode)
	}
	o.scopes = append(o.scopes, strings.FieldsFunc(*scopes, func(r rune) bool { return r == ',' || r == ' ' })...)
	slices.Sort(o.scopes)
	o.scopes = slices.Compact(o.scopes)
	if o.timeout <= 0 {
		return "", nil, nil, errors.New("--timeout must be positive")
	}
	if o.retries < 0 || o.retries > 10 {
		return "", nil, nil, errors.New("--retries must be between 0 and 10")
	}
	if o.url != "" && o.app != "" {
		return "", nil, nil, errors.New("give --url or --app, not both")
	}
	if err := cmd.check(o, positional, set); err != nil {
		return "", nil, nil, err
	}
	return name, cmd, o, nil
}

// splitCommand finds the command among args (flags may come first, with their values) and returns it and the rest.
func splitCommand(args []string) (string, []string, error) {
	all := flag.NewFlagSet("caller", flag.ContinueOnError)
	all.SetOutput(io.Discard)
	commonFlags(all, &options{})
	targetFlags(all, &options{})
	for _, cmd := range newCommands() {
		own := flag.NewFlagSet("", flag.ContinueOnError)
		cmd.flags(own)
		own.VisitAll(func(f *flag.Flag) {
			if all.Lookup(f.Name) == nil {
				all.Var(f.Value, f.Name, f.Usage)
			}
		})
	}
	remaining := args
	for {
		if err := all.Parse(remaining); err != nil {
			return "", nil, flagError(err, "")
		}
		remaining = all.Args()
		if len(remaining) == 0 {
			return "", nil, fmt.Errorf("no command (want one of %s)", strings.Join(commandNames, ", "))
		}
		if remaining[0] != "--" {
			break
		}
		remaining = remaining[1:]
	}
	name := remaining[0]
	if name == "help" {
		return "", nil, errHelp
	}
	if !slices.Contains(commandNames, name) {
		return "", nil, fmt.Errorf("unknown command %q (want one of %s)", name, strings.Join(commandNames, ", "))
	}
	at := len(args) - len(remaining)
	return name, append(append([]string{}, args[:at]...), args[at+1:]...), nil
}

// parseInterleaved parses flags and positional arguments in any order.
func parseInterleaved(fs *flag.FlagSet, args []string, name string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, flagError(err, name)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// flagError words a flag package error for a person: never with the value of --client-secret-stdin (a secret pasted
// there), and naming the commands a flag of another command belongs to.
func flagError(err error, command string) error {
	if errors.Is(err, flag.ErrHelp) {
		return errHelp
	}
	if strings.Contains(err.Error(), " for -client-secret-stdin:") {
		return errors.New("--client-secret-stdin takes no value: pipe the secret on stdin")
	}
	if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok && command != "" {
		name = strings.TrimPrefix(name, "-")
		var owners []string
		for _, c := range commandNames {
			fs, _, _ := flagSet(c, newCommands()[c], &options{})
			if fs.Lookup(name) != nil {
				owners = append(owners, c)
			}
		}
		if len(owners) > 0 {
			return fmt.Errorf("--%s applies to %s only", name, strings.Join(owners, " and "))
		}
	}
	return err
}

func noArgs(name string, args []string) error {
	if len(args) != 0 {
		return fmt.Errorf("%s takes no arguments, got %q", name, args)
	}
	return nil
}

const exitCodesText = `
Exit codes: 0 ok, 1 other failure, 2 usage or incomplete configuration, 3 not authenticated (401, redirect to login,
no token), 4 permission denied (403), 5 not found (404, unknown or stopped app), 6 network, 7 server error.
`
