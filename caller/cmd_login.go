package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/databricks/databricks-sdk-go/config"
	"github.com/pkg/browser"
	"github.com/spf13/cobra"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
	"github.com/databricks-sample/go-apps-api/caller/appauth"
)

// loginCmd is `callapp login --scopes …`: the page's custom-scope U2M flow in-process (caller/appauth's Login), for
// when the Databricks CLI is older than v0.287.0 or not at hand; `databricks auth login --scopes` is the first way.
type loginCmd struct {
	noBrowser bool
	port      int // the loopback redirect port; 0 tries 8020-8040 like the Databricks CLI
}

func newLoginCommand(p *parsed) *cobra.Command {
	c := &loginCmd{}
	cmd := &cobra.Command{
		Use:     "login --scopes a,b,...",
		Short:   "U2M login with custom scopes, token cached on disk",
		Example: "  callapp --profile my-env login --scopes sql,file.files,dashboards.genie",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.port < 0 || c.port > 65535 {
				return errors.New("--port must be a TCP port")
			}
			p.choose(cmd, c, c.run)
			return nil
		},
	}
	cmd.Flags().BoolVar(&c.noBrowser, "no-browser", false, "print the authorization URL instead of opening a browser")
	cmd.Flags().IntVar(&c.port, "port", 0, "loopback redirect port (default 8020, then up to 8040)")
	return cmd
}

// loginOptions are what `callapp login` adds to a login that local mode only reads from the cache.
type loginOptions struct {
	openURL   func(string) error
	port      int
	workspace *workspaceTransport // the login's requests to the workspace, retried for up to --timeout
}

// newLogin prepares the login of profile (or host) with the command's scopes, its token cached under HOME.
func newLogin(ctx context.Context, e *env, host, profile string, lo loginOptions) (*appauth.Login, error) {
	home := e.getenv("HOME")
	if home == "" {
		return nil, usageErrorf("login: HOME is not set, so there is nowhere to cache the token")
	}
	o := appauth.LoginOptions{Profile: profile, CacheFile: filepath.Join(home, ".databricks-caller", "token-cache.json"),
		OpenURL: lo.openURL, Port: lo.port}
	if lo.workspace != nil {
		o.Transport, o.Timeout = lo.workspace, e.opts.timeout
	}
	l, err := appauth.NewLogin(ctx, host, e.opts.scopes, o)
	if err != nil {
		return nil, usageErrorf("login: %v", err)
	}
	return l, nil
}

// loginTarget is how the command line names the login: by profile when there is one, else by host.
func loginTarget(profile, host string) string {
	if profile == "" {
		return "--host " + host
	}
	return "--profile " + profile
}

// loginCommand is the in-process login that gets a token with scopes.
func loginCommand(profile, host string, scopes []string) string {
	return fmt.Sprintf("callapp login %s --scopes %s", loginTarget(profile, host), strings.Join(scopes, ","))
}

// cliLoginCommand is the Databricks CLI's login with scopes (v0.287.0 and later): local mode then uses its token.
func cliLoginCommand(profile, host string, scopes []string) string {
	target := "--profile " + cmp.Or(profile, "DEFAULT")
	if profile == "" && host != "" {
		target = "--host " + host
	}
	return fmt.Sprintf("databricks auth login %s --scopes %s", target, strings.Join(scopes, ","))
}

func (c *loginCmd) run(ctx context.Context, e *env) error {
	opts, out := e.opts, e.out
	if len(opts.scopes) == 0 {
		return usageErrorf("login needs --scopes, for example --scopes sql,file.files,dashboards.genie " +
			"(for the default all-apis scope, `databricks auth login` is enough)")
	}
	profile := cmp.Or(opts.profile, e.getenv("DATABRICKS_CONFIG_PROFILE"))
	host := sdkconfig.NormaliseHost(opts.host)
	if host == "" {
		if f := profileProblem(e.getenv, "login", profile, true); f != nil {
			return f
		}
		cfg := &config.Config{Profile: profile, ConfigFile: configFilePath(e.getenv), Loaders: []config.Loader{config.ConfigFile}}
		if err := cfg.EnsureResolved(); err != nil {
			return usageErrorf("login: %v", err)
		}
		host = sdkconfig.NormaliseHost(cfg.Host)
	}
	var redirect string // where the browser comes back to, once the URL is shown
	openURL := func(u string) error {
		redirect = redirectOf(u)
		// The URL is printed whatever happens, with --json as well: the browser may not open (no display, a remote
		// shell), and with --no-browser it is the only way on. It is not a secret.
		problem := noBrowserReason(e.getenv, runtime.GOOS)
		if !c.noBrowser && problem == "" {
			if err := openBrowser(ctx, e.getenv, u); err != nil {
				problem = fmt.Sprintf("the browser did not open (%v)", err)
			}
		}
		switch {
		case c.noBrowser || problem != "":
			if problem != "" {
				fmt.Fprintf(out.stderr, "No browser here: %s.\n", problem)
			}
			fmt.Fprintf(out.stderr, "Open this URL in a browser on this machine to log in to %s:\n  %s\n", host, u)
			if e.getenv("SSH_CONNECTION") != "" {
				fmt.Fprintf(out.stderr, "Over SSH, forward the redirect's port first: %s\n", sshForward(redirect))
			}
		default:
			fmt.Fprintf(out.stderr, "Log in to %s in the browser that opened; if none did, open:\n  %s\n", host, u)
		}
		fmt.Fprintf(out.stderr, "Waiting up to %s (--timeout) for the browser to come back to %s; Ctrl+C stops.\n",
			opts.timeout, redirect)
		return nil
	}
	// The login's requests to the workspace go through a transport that remembers one that got no answer, so an
	// unreachable workspace is reported as such (exit 6), not as a failed login.
	workspace := &workspaceTransport{base: e.transport, proxy: e.proxy}
	l, err := newLogin(ctx, e, host, profile, loginOptions{openURL: openURL, port: c.port, workspace: workspace})
	if err != nil {
		return err
	}
	if err := l.Run(); err != nil {
		hostSource := "--host"
		if opts.host == "" {
			hostSource = "the host of profile " + cmp.Or(profile, "DEFAULT")
		}
		timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded)
		if f := workspace.unreachable("login to "+host, hostSource, timedOut); f != nil {
			return f
		}
		if timedOut && redirect != "" {
			return &failure{Code: exitAuth,
				Summary: fmt.Sprintf("login to %s: the browser did not come back to %s within %s (--timeout)", host, redirect, opts.timeout),
				Checks: []string{"the URL above was opened in a browser on this machine, and the sign-in finished",
					"over SSH, the redirect's port is forwarded to this machine: " + sshForward(redirect),
					"a slower sign-in has the time it needs: --timeout 5m"}}
		}
		return &failure{Code: exitAuth, Summary: fmt.Sprintf("login to %s: %v", host, err),
			Checks: []string{"the browser reached the loopback redirect (http://localhost:8020-8040, or --port)",
				"the workspace allows the OAuth app databricks-cli and the scopes " + strings.Join(opts.scopes, ",")}}
	}
	t, err := l.Token()
	if err != nil {
		return &failure{Code: exitAuth, Summary: fmt.Sprintf("login to %s: reading the new token: %v", host, err)}
	}
	granted := opts.scopes
	if claims, err := identity.DecodeClaims(t.AccessToken); err == nil && len(claims.Scopes) > 0 {
		granted = claims.Scopes
	}
	next := fmt.Sprintf("callapp --mode local %s --scopes %s --app <app-name> whoami",
		loginTarget(profile, host), strings.Join(opts.scopes, ","))
	out.result(fmt.Sprintf("Logged in to %s with scopes %s.\nThe token is cached in %s (owner-only); it expires %s and refreshes itself.\nUse it: %s\n",
		host, strings.Join(granted, " "), l.CacheFile, t.Expiry.Format("2006-01-02 15:04:05 MST"), next),
		map[string]any{"host": host, "profile": profile, "scopes": granted, "cache": l.CacheFile, "expires_at": t.Expiry})
	return nil
}

// noBrowserReason is why no browser can open here, "" when one may: on Linux and the BSDs a browser needs a display.
func noBrowserReason(getenv func(string) string, goos string) string {
	switch goos {
	case "darwin", "windows":
		return ""
	}
	if getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "" && getenv("BROWSER") == "" {
		return "there is no display (DISPLAY and WAYLAND_DISPLAY are not set)"
	}
	return ""
}

// redirectOf is the loopback address an authorization URL sends the browser back to.
func redirectOf(authorizeURL string) string {
	if u, err := url.Parse(authorizeURL); err == nil {
		if r := u.Query().Get("redirect_uri"); r != "" {
			return r
		}
	}
	return "http://localhost:8020"
}

// sshForward is the ssh option that brings a remote browser's redirect to this machine.
func sshForward(redirect string) string {
	port := "8020"
	if u, err := url.Parse(redirect); err == nil && u.Port() != "" {
		port = u.Port()
	}
	return fmt.Sprintf("ssh -L %s:localhost:%s <this machine>", port, port)
}

// openBrowser opens u in $BROWSER when it is set, as the Databricks CLI does, else in the system's browser.
func openBrowser(ctx context.Context, getenv func(string) string, u string) error {
	if b := getenv("BROWSER"); b != "" {
		return exec.CommandContext(ctx, b, u).Run()
	}
	return browser.OpenURL(u)
}
