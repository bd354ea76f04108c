// Package databrickscli is an offline stand-in for the `databricks` CLI, for demos and tests against the Databricks
// Apps emulator only.
//
// databricks-sdk-go's databricks-cli auth type runs `databricks version` and then `databricks auth token --profile P
// [--force-refresh]` (or `--host H`) and reads the token JSON it prints. The stand-in answers exactly those, for the
// emulated workspace's signed-in user, through the workspace's real authorize + PKCE + token endpoints (the SDK's
// own u2m package, as the real CLI does). Where the real CLI says "run databricks auth login", the stand-in logs in
// by itself: the emulated workspace approves the signed-in user without a browser.
//
// The emulator binary becomes the stand-in when it runs under the name databricks (see emulator/main.go).
package databrickscli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/credentials/u2m"
	"golang.org/x/oauth2"

	"github.com/databricks-sample/go-apps-api/caller/appauth"
	"github.com/databricks-sample/go-apps-api/emulator/browser"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// Version is what `databricks version` prints. It claims the CLI release whose flags it implements (--profile,
// --force-refresh), so the SDK uses them; the build suffix says it is not that CLI.
const Version = "v0.296.0+emulator"

const usage = `databricks: an OFFLINE STAND-IN for the Databricks CLI, shipped with the Databricks Apps emulator.
It exists for demos and tests against the emulated workspace only; it is not the Databricks CLI and never talks
to a real workspace. Install the real CLI for anything else: https://docs.databricks.com/dev-tools/cli/

Usage:
  databricks version
  databricks auth token --profile NAME [--force-refresh]
  databricks auth token --host http://127.0.0.1:PORT [--force-refresh]
  databricks auth login --profile NAME [--host http://127.0.0.1:PORT] [--scopes a,b]

auth token prints {"access_token","token_type","expiry"} for the emulated workspace's signed-in user, logging in
through the workspace's authorize + PKCE + token endpoints when it has no usable refresh token. Profiles are read
from $DATABRICKS_CONFIG_FILE, else the .databrickscfg next to this binary, else ~/.databrickscfg; the token cache
is the token-cache.json next to this binary (owner-only).

auth login logs in again, as the signed-in user, and stores the profile (with --scopes, its scopes = a,b, as the CLI
does since v0.287.0): auth token --profile NAME then returns a token with exactly those scopes.
`

// loginTimeout bounds a whole token request, login included: the SDK waits for the stand-in synchronously.
const loginTimeout = 60 * time.Second

// Run is the stand-in's main. args excludes the program name. Its profile and token cache are beside its binary.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locate the stand-in: %w", err)
	}
	return run(ctx, args, getenv, self, stdout, stderr)
}

// run is Run with self, the stand-in's own path: its folder holds the profile and the token cache.
func run(ctx context.Context, args []string, getenv func(string) string, self string, stdout, stderr io.Writer) error {
	home := filepath.Dir(self)
	switch {
	case len(args) == 0 || isHelp(args[0]):
		_, _ = io.WriteString(stdout, usage)
		return nil
	case args[0] == "version" || args[0] == "--version":
		_, _ = fmt.Fprintf(stdout, "Databricks CLI %s\n", Version)
		return nil
	case len(args) >= 2 && args[0] == "auth" && args[1] == "token":
		return authToken(ctx, args[2:], getenv, home, stdout, stderr)
	case len(args) >= 2 && args[0] == "auth" && args[1] == "login":
		return authLogin(ctx, args[2:], getenv, self, stdout, stderr)
	}
	return fmt.Errorf("the emulator's CLI stand-in supports only `version`, `auth token` and `auth login`, not %q (see --help)",
		strings.Join(args, " "))
}

func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "help" }

type tokenOutput struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	Expiry      string `json:"expiry"`
}

func authToken(ctx context.Context, args []string, getenv func(string) string, home string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("databricks auth token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("profile", "", "profile in the config file")
	host := fs.String("host", "", "workspace host, when no profile is used")
	forceRefresh := fs.Bool("force-refresh", false, "refresh the token even if the cached one is still valid")
	_ = fs.String("account-id", "", "ignored: the emulator has no account host")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 1 && *host == "" && *profile == "" {
		*host = fs.Arg(0) // `databricks auth token HOST`, as the real CLI accepts
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	var scopes []string
	var err error
	var arg u2m.OAuthArgument
	switch {
	case *profile != "":
		cfgFile := configFile(getenv, home)
		section, err := readProfile(cfgFile, *profile)
		if err != nil {
			return err
		}
		if section["host"] == "" {
			return fmt.Errorf("profile %q in %s has no host", *profile, cfgFile)
		}
		scopes = strings.FieldsFunc(section["scopes"], func(r rune) bool { return r == ',' || r == ' ' })
		if arg, err = u2m.NewProfileWorkspaceOAuthArgument(strings.TrimRight(section["host"], "/"), *profile); err != nil {
			return fmt.Errorf("profile %q: %w", *profile, err)
		}
	case *host != "":
		if arg, err = u2m.NewBasicWorkspaceOAuthArgument(strings.TrimRight(*host, "/")); err != nil {
			return err
		}
	default:
		return errors.New("pass --profile NAME or --host URL")
	}

	var token *oauth2.Token
	err = withAuth(ctx, arg, scopes, home, func(ctx context.Context, auth *u2m.PersistentAuth) error {
		var err error
		if *forceRefresh {
			token, err = auth.ForceRefreshToken()
		} else {
			token, err = auth.Token()
		}
		if err != nil {
			// No cached token, or its refresh token died with an earlier emulator: log in again, as
			// `databricks auth login` would, the emulated workspace approving the signed-in user at once.
			token, err = login(ctx, auth, arg)
		}
		return err
	})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(tokenOutput{AccessToken: token.AccessToken, TokenType: token.Type(),
		Expiry: token.Expiry.Format(time.RFC3339Nano)})
}

// withAuth runs do with the SDK's u2m login of arg, the whole of it bounded by loginTimeout; a failure of the
// headless browser ends it with the browser's error as the cause.
func withAuth(ctx context.Context, arg u2m.OAuthArgument, scopes []string, home string,
	do func(context.Context, *u2m.PersistentAuth) error) error {
	ctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	auth, err := newAuth(ctx, arg, scopes, home, fail)
	if err != nil {
		return err
	}
	defer auth.Close()
	return do(ctx, auth)
}

// newAuth is the SDK's u2m login of arg with scopes, its browser the emulator's headless one, its cache next to the
// stand-in.
func newAuth(ctx context.Context, arg u2m.OAuthArgument, scopes []string, home string, fail context.CancelCauseFunc) (*u2m.PersistentAuth, error) {
	if err := checkReachable(ctx, hostOf(arg)); err != nil {
		return nil, err
	}
	port, err := workspace.FreePort()
	if err != nil {
		return nil, err
	}
	auth, err := u2m.NewPersistentAuth(ctx,
		u2m.WithOAuthArgument(arg),
		u2m.WithTokenCache(&appauth.FileTokenCache{Path: filepath.Join(home, workspace.TokenCacheName)}),
		u2m.WithBrowser(browser.Headless(fail)),
		u2m.WithPort(port),
		u2m.WithScopes(scopes),
	)
	if err != nil {
		return nil, fmt.Errorf("set up the login: %w", err)
	}
	return auth, nil
}

// login runs the authorize + PKCE + token flow and returns the token it cached.
func login(ctx context.Context, auth *u2m.PersistentAuth, arg u2m.OAuthArgument) (*oauth2.Token, error) {
	if err := auth.Challenge(); err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		return nil, fmt.Errorf("log in to %s: %w", hostOf(arg), err)
	}
	token, err := auth.Token()
	if err != nil {
		return nil, fmt.Errorf("get a token after logging in: %w", err)
	}
	return token, nil
}

// authLogin is `databricks auth login --profile P [--host H] [--scopes a,b]`: it stores the profile, with its
// scopes as the CLI does since v0.287.0 (none: the default all-apis), and logs in with them, replacing the cached
// token, so that auth token --profile P returns a token with exactly those scopes. A profile it creates names the
// stand-in (self) as its databricks_cli_path, as the emulator's own profile does, so that the SDK runs the stand-in
// for it rather than whichever databricks comes first on PATH.
func authLogin(ctx context.Context, args []string, getenv func(string) string, self string, stdout, stderr io.Writer) error {
	home := filepath.Dir(self)
	fs := flag.NewFlagSet("databricks auth login", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("profile", "", "profile to store in the config file")
	host := fs.String("host", "", "workspace host; default: the profile's")
	scopeList := fs.String("scopes", "", "comma-separated OAuth scopes; default all-apis")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *profile == "" || fs.NArg() > 0 {
		return errors.New("the stand-in's auth login takes --profile NAME [--host URL] [--scopes a,b]")
	}
	cfgFile := configFile(getenv, home)
	scopes := strings.FieldsFunc(*scopeList, func(r rune) bool { return r == ',' || r == ' ' })
	h, err := writeProfile(cfgFile, *profile, strings.TrimRight(*host, "/"), strings.Join(scopes, ","), self)
	if err != nil {
		return err
	}
	arg, err := u2m.NewProfileWorkspaceOAuthArgument(h, *profile)
	if err != nil {
		return fmt.Errorf("profile %q: %w", *profile, err)
	}
	err = withAuth(ctx, arg, scopes, home, func(ctx context.Context, auth *u2m.PersistentAuth) error {
		_, err := login(ctx, auth, arg)
		return err
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "Profile %s was successfully saved\n", *profile)
	return err
}

// checkReachable fails fast when no emulator listens: the SDK's HTTP client would retry for the whole timeout.
func checkReachable(ctx context.Context, host string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+workspace.PathOIDCDiscovery, nil)
	if err != nil {
		return fmt.Errorf("workspace host %q: %w", host, err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return fmt.Errorf("the workspace %s is not reachable (is the emulator running?): %w", host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the workspace %s has no OAuth discovery document (HTTP %d): is it the emulator?", host, resp.StatusCode)
	}
	return nil
}

func hostOf(arg u2m.OAuthArgument) string {
	if w, ok := arg.(u2m.WorkspaceOAuthArgument); ok {
		return w.GetWorkspaceHost()
	}
	return "the workspace"
}

// configFile follows the CLI's lookup, with the stand-in's own directory first after the environment: the
// emulator writes the profile there, and the SDK does not pass its config file path to the CLI it runs.
func configFile(getenv func(string) string, home string) string {
	if f := getenv("DATABRICKS_CONFIG_FILE"); f != "" {
		return f
	}
	local := filepath.Join(home, workspace.ProfileFileName)
	if _, err := os.Stat(local); err == nil {
		return local
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".databrickscfg")
	}
	return local
}
