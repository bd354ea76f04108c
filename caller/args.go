package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// Mode names which credentials the caller uses. Each mode builds one *config.Config with an explicit auth type.
type Mode string

const (
	ModeLocal    Mode = "local"    // a Databricks CLI profile (databricks-cli), or a token cached by `caller login`
	ModeExternal Mode = "external" // a service principal's client id and secret (oauth-m2m)
	ModeApp      Mode = "app"      // the service principal a Databricks App runs as, from the platform's env (oauth-m2m)
	ModeAuto     Mode = "auto"     // the SDK's default chain; the auth type it picked is reported
)

var modes = []Mode{ModeLocal, ModeExternal, ModeApp, ModeAuto}

// options is the parsed command line.
type options struct {
	command string
	args    []string // positional arguments after the command

	mode              Mode
	profile           string
	host              string
	clientID          string
	clientSecretStdin bool
	scopes            []string // login, and local mode reusing a login's token
	url               string
	app               string
	data              string
	repeat            int // call and whoami: send the request this many times and print a summary; 0 means once, with the answer
	timeout           time.Duration
	retries           int
	json              bool
	noBrowser         bool
	port              int    // login's loopback redirect port; 0 tries 8020-8040 like the Databricks CLI
	listen            string // serve's address; empty means APP_LISTEN_ADDR, DATABRICKS_APP_PORT or 127.0.0.1:8002
}

var commands = []string{"call", "whoami", "token", "login", "doctor", "serve"}

var errHelp = errors.New("help requested")

const usageHint = "Run `caller help` for usage.\n"

const usage = `caller: call a Databricks App's /api/ routes with an OAuth bearer token.

Usage:
  caller [flags] call [METHOD] PATH [--data JSON|@file]   one request; the response is printed
  caller [flags] whoami                                  GET /api/whoami: who the app saw you as
  caller [flags] token                                   print the bearer token (for curl); nothing else prints it
  caller [flags] login --scopes sql,file.files,...       U2M login with custom scopes, token cached on disk
  caller [flags] doctor                                  run the troubleshooting checklist, one line per check
  caller [flags] serve                                   run as a Databricks App calling TARGET_APP / TARGET_APP_URL

Credentials (--mode):
  local     a Databricks CLI profile: --profile, else DATABRICKS_CONFIG_PROFILE, else the default profile;
            with --scopes, the token ` + "`caller login`" + ` cached for that profile (or host) and scopes
  external  a service principal: DATABRICKS_HOST, DATABRICKS_CLIENT_ID (or --host, --client-id) and
            DATABRICKS_CLIENT_SECRET (env, or --client-secret-stdin; never a flag)
  app       inside a Databricks App: the app's own service principal from the platform's env
  auto      the SDK's default chain (the default); the auth type it picked is reported

Target: --url https://<app>.databricksapps.com, or --app NAME (looked up with GET /api/2.0/apps/NAME).
Paths must start with /api/: the Apps proxy accepts bearer tokens on /api/ routes only.

Flags:
`

// defineFlags declares every flag on fs, filling o; mode and scopes need checking after parsing.
func defineFlags(fs *flag.FlagSet, o *options) (mode, scopes *string) {
	mode = fs.String("mode", "", "credentials: local, external, app or auto (default auto; app for serve)")
	fs.StringVar(&o.profile, "profile", "", "Databricks CLI profile (local and auto modes, login)")
	fs.StringVar(&o.host, "host", "", "workspace URL (external mode, login); overrides DATABRICKS_HOST")
	fs.StringVar(&o.clientID, "client-id", "", "service principal client id (external mode); overrides DATABRICKS_CLIENT_ID")
	fs.BoolVar(&o.clientSecretStdin, "client-secret-stdin", false, "read the client secret from stdin (external mode)")
	scopes = fs.String("scopes", "", "comma-separated OAuth scopes (login; local mode then reuses that login's token)")
	fs.StringVar(&o.url, "url", "", "the app's URL, https://<app>.databricksapps.com")
	fs.StringVar(&o.app, "app", "", "the app's name, resolved to its URL through the Apps API")
	fs.StringVar(&o.data, "data", "", "request body for call: JSON, or @file")
	fs.IntVar(&o.repeat, "repeat", 0, "call, whoami: send the request N times in a row over one token, print count, statuses and p50/p99 latency")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "bound for the whole command, retries included")
	fs.IntVar(&o.retries, "retries", 3, "retries of 429/502/503/504 and connection resets")
	fs.BoolVar(&o.json, "json", false, "machine-readable output")
	fs.BoolVar(&o.noBrowser, "no-browser", false, "login: print the authorization URL instead of opening a browser")
	fs.IntVar(&o.port, "port", 0, "login: loopback redirect port (default 8020, then up to 8040)")
	fs.StringVar(&o.listen, "listen", "", "serve: listen address (default APP_LISTEN_ADDR, else 0.0.0.0:$DATABRICKS_APP_PORT, else 127.0.0.1:8002)")
	return mode, scopes
}

// printUsage writes the usage text with the flag list generated from defineFlags, so the two cannot drift.
func printUsage(w io.Writer) {
	fs := flag.NewFlagSet("caller", flag.ContinueOnError)
	defineFlags(fs, &options{})
	fs.SetOutput(w)
	fmt.Fprint(w, usage)
	fs.PrintDefaults()
	fmt.Fprint(w, exitCodesText)
}

// parseArgs accepts flags before and after the command, like `caller --mode local whoami --json`.
func parseArgs(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("caller", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	mode, scopes := defineFlags(fs, o)

	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			if strings.Contains(err.Error(), " for -client-secret-stdin:") {
				// The flag package quotes the value it could not parse: a secret pasted there must not reach stderr.
				return nil, errors.New("--client-secret-stdin takes no value: pipe the secret on stdin")
			}
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	if len(positional) == 0 {
		return nil, fmt.Errorf("no command (want one of %s)", strings.Join(commands, ", "))
	}
	if positional[0] == "help" {
		return nil, errHelp
	}
	o.command, o.args = positional[0], positional[1:]
	if !slices.Contains(commands, o.command) {
		return nil, fmt.Errorf("unknown command %q (want one of %s)", o.command, strings.Join(commands, ", "))
	}

	o.mode = Mode(*mode)
	if o.mode == "" {
		o.mode = ModeAuto
		if o.command == "serve" {
			o.mode = ModeApp
		}
	}
	if !slices.Contains(modes, o.mode) {
		return nil, fmt.Errorf("unknown --mode %q (want local, external, app or auto)", *mode)
	}
	for _, s := range strings.FieldsFunc(*scopes, func(r rune) bool { return r == ',' || r == ' ' }) {
		o.scopes = append(o.scopes, s)
	}
	slices.Sort(o.scopes)
	o.scopes = slices.Compact(o.scopes)
	if o.timeout <= 0 {
		return nil, errors.New("--timeout must be positive")
	}
	if o.retries < 0 || o.retries > 10 {
		return nil, errors.New("--retries must be between 0 and 10")
	}
	if o.url != "" && o.app != "" {
		return nil, errors.New("give --url or --app, not both")
	}

	switch o.command {
	case "call":
		if len(o.args) < 1 || len(o.args) > 2 {
			return nil, errors.New("call takes [METHOD] PATH, for example `call GET /api/whoami`")
		}
		if len(o.args) == 2 {
			method := strings.ToUpper(o.args[0])
			if !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead}, method) {
				return nil, fmt.Errorf("unsupported method %q", o.args[0])
			}
			o.args[0] = method
		}
	case "login":
		if len(o.args) != 0 {
			return nil, fmt.Errorf("login takes no arguments, got %q", o.args)
		}
		if o.port < 0 || o.port > 65535 {
			return nil, errors.New("--port must be a TCP port")
		}
	default:
		if len(o.args) != 0 {
			return nil, fmt.Errorf("%s takes no arguments, got %q", o.command, o.args)
		}
	}
	if o.data != "" && o.command != "call" {
		return nil, errors.New("--data applies to call only")
	}
	repeatSet := false
	fs.Visit(func(f *flag.Flag) { repeatSet = repeatSet || f.Name == "repeat" })
	if repeatSet {
		if o.command != "call" && o.command != "whoami" {
			return nil, errors.New("--repeat applies to call and whoami only")
		}
		if o.repeat < 1 || o.repeat > maxRepeat {
			return nil, fmt.Errorf("--repeat must be between 1 and %d", maxRepeat)
		}
	}
	return o, nil
}

// callRequest is the method, path and body of `call`.
func (o *options) callRequest() (method, path string, body []byte, err error) {
	path = o.args[len(o.args)-1]
	method = http.MethodGet
	if o.data != "" {
		method = http.MethodPost
		body = []byte(o.data)
		if name, ok := strings.CutPrefix(o.data, "@"); ok {
			if body, err = os.ReadFile(name); err != nil {
				return "", "", nil, usageErrorf("--data %s: %v", o.data, err)
			}
		}
	}
	if len(o.args) == 2 {
		method = o.args[0]
	}
	return method, path, body, nil
}

const exitCodesText = `
Exit codes: 0 ok, 1 other failure, 2 usage or incomplete configuration, 3 not authenticated (401, redirect to login,
no token), 4 permission denied (403), 5 not found (404, unknown or stopped app), 6 network, 7 server error.
`
