package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/config/experimental/auth"
	"github.com/databricks/databricks-sdk-go/credentials/u2m"
	"github.com/databricks/databricks-sdk-go/credentials/u2m/cache"
	"github.com/databricks/databricks-sdk-go/httpclient"
	"github.com/pkg/browser"
	"golang.org/x/oauth2"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
)

// login is the page's custom-scope U2M flow: authorization code + PKCE with client_id=databricks-cli and a loopback
// redirect, done in-process by the SDK's credentials/u2m, with the token (and its refresh token) cached on disk.
type login struct {
	auth      *u2m.PersistentAuth
	cachePath string
}

// loginKey keys the cache by profile (or host) and scopes, so a token with custom scopes never stands in for another
// login, and `--mode local --profile P --scopes S` finds the one `login --profile P --scopes S` stored.
type loginKey struct {
	u2m.BasicWorkspaceOAuthArgument
	key string
}

func (k loginKey) GetCacheKey() string { return k.key }

// newLogin prepares the login of profile (or host) with scopes. When workspace is not nil, the SDK's requests to the
// workspace (OAuth discovery, the token exchange, refreshes) go through it, retried for up to timeout; else through
// the SDK's own client.
func newLogin(ctx context.Context, host, profile string, scopes []string, getenv func(string) string, openURL func(string) error, port int,
	workspace http.RoundTripper, timeout time.Duration) (*login, error) {
	arg, err := u2m.NewProfileWorkspaceOAuthArgument(host, profile)
	if err != nil {
		return nil, usageErrorf("login: %v", err)
	}
	home := getenv("HOME")
	if home == "" {
		return nil, usageErrorf("login: HOME is not set, so there is nowhere to cache the token")
	}
	l := &login{cachePath: filepath.Join(home, ".databricks-caller", "token-cache.json")}
	opts := []u2m.PersistentAuthOption{
		u2m.WithOAuthArgument(loginKey{arg, orDefault(profile, host) + " scopes=" + strings.Join(scopes, ",")}),
		u2m.WithScopes(scopes),
		u2m.WithTokenCache(&fileTokenCache{path: l.cachePath}),
		u2m.WithPort(port),
	}
	if openURL != nil {
		opts = append(opts, u2m.WithBrowser(openURL))
	}
	if workspace != nil {
		api := httpclient.NewApiClient(httpclient.ClientConfig{Transport: workspace, RetryTimeout: timeout, HTTPTimeout: timeout})
		opts = append(opts, u2m.WithHttpClient(&http.Client{Transport: workspace, Timeout: timeout}),
			u2m.WithOAuthEndpointSupplier(&u2m.BasicOAuthEndpointSupplier{Client: api}))
	}
	if l.auth, err = u2m.NewPersistentAuth(ctx, opts...); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	return l, nil
}

// tokenSource gives the cached token (refreshed with its refresh token when it nears expiry) to a Config.
func (l *login) tokenSource() auth.TokenSource {
	return auth.TokenSourceFn(func(context.Context) (*oauth2.Token, error) {
		t, err := l.auth.Token()
		if errors.Is(err, cache.ErrNotFound) {
			return nil, fmt.Errorf("no token cached in %s for these scopes: log in first", l.cachePath)
		}
		return t, err
	})
}

// loginTarget is how the command line names the login: by profile when there is one, else by host.
func loginTarget(profile, host string) string {
	if profile == "" {
		return "--host " + host
	}
	return "--profile " + profile
}

func loginCommand(profile, host string, scopes []string) string {
	return fmt.Sprintf("caller login %s --scopes %s", loginTarget(profile, host), strings.Join(scopes, ","))
}

func cmdLogin(ctx context.Context, opts *options, getenv func(string) string, out *output) error {
	if len(opts.scopes) == 0 {
		return usageErrorf("login needs --scopes, for example --scopes sql,file.files,dashboards.genie " +
			"(for the default all-apis scope, `databricks auth login` is enough)")
	}
	profile := firstNonEmpty(opts.profile, getenv("DATABRICKS_CONFIG_PROFILE"))
	host := sdkconfig.NormaliseHost(opts.host)
	if host == "" {
		cfg := &config.Config{Profile: profile, ConfigFile: configFilePath(getenv), Loaders: []config.Loader{config.ConfigFile}}
		if err := cfg.EnsureResolved(); err != nil {
			return usageErrorf("login: %v", err)
		}
		if host = sdkconfig.NormaliseHost(cfg.Host); host == "" {
			return usageErrorf("login needs a workspace: --host https://<workspace-url>, or --profile with a host in %s", cfg.ConfigFile)
		}
	}
	openURL := func(u string) error {
		// Print the URL too, with --json as well: the browser may not open (no display, a remote shell), and with
		// --no-browser the URL is the only way on. It is not a secret.
		fmt.Fprintf(out.stderr, "Log in with your browser; if it does not open, visit:\n  %s\n", u)
		if !opts.noBrowser {
			_ = browser.OpenURL(u)
		}
		return nil
	}
	// The SDK's requests to the workspace go through a transport that remembers one that got no answer, so an
	// unreachable workspace is reported as such (exit 6), not as a failed login.
	workspace := &workspaceTransport{proxy: proxyFromEnv(getenv)}
	workspace.base = newTransport(workspace.proxy)
	l, err := newLogin(ctx, host, profile, opts.scopes, getenv, openURL, opts.port, workspace, opts.timeout)
	if err != nil {
		return err
	}
	if err := l.auth.Challenge(); err != nil {
		hostSource := "--host"
		if opts.host == "" {
			hostSource = "the host of profile " + orDefault(profile, "DEFAULT")
		}
		timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded)
		if f := workspace.unreachable("login to "+host, hostSource, timedOut); f != nil {
			return f
		}
		return &failure{Code: exitAuth, Summary: fmt.Sprintf("login to %s: %v", host, err),
			Checks: []string{"the browser reached the loopback redirect (http://localhost:8020-8040, or --port)",
				"the workspace allows the OAuth app databricks-cli and the scopes " + strings.Join(opts.scopes, ",")}}
	}
	t, err := l.auth.Token()
	if err != nil {
		return &failure{Code: exitAuth, Summary: fmt.Sprintf("login to %s: reading the new token: %v", host, err)}
	}
	granted := opts.scopes
	if claims, err := identity.DecodeClaims(t.AccessToken); err == nil && len(claims.Scopes) > 0 {
		granted = claims.Scopes
	}
	next := fmt.Sprintf("caller --mode local %s --scopes %s --app <app-name> whoami",
		loginTarget(profile, host), strings.Join(opts.scopes, ","))
	out.result(fmt.Sprintf("Logged in to %s with scopes %s.\nThe token is cached in %s (owner-only); it expires %s and refreshes itself.\nUse it: %s\n",
		host, strings.Join(granted, " "), l.cachePath, t.Expiry.Format("2006-01-02 15:04:05 MST"), next),
		map[string]any{"host": host, "profile": profile, "scopes": granted, "cache": l.cachePath, "expires_at": t.Expiry})
	return nil
}

// fileTokenCache is a u2m token cache in one JSON file, readable by its owner only (0600 in a 0700 directory). It
// refuses to read a file others can read: a refresh token is a long-lived credential.
type fileTokenCache struct {
	path string
	mu   sync.Mutex
}

type tokenCacheFile struct {
	Version int                      `json:"version"`
	Tokens  map[string]*oauth2.Token `json:"tokens"`
}

func (c *fileTokenCache) Lookup(key string) (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := c.read()
	if err != nil {
		return nil, err
	}
	t, ok := f.Tokens[key]
	if !ok {
		return nil, cache.ErrNotFound
	}
	return t, nil
}

func (c *fileTokenCache) Store(key string, t *oauth2.Token) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := c.read()
	if err != nil {
		return err
	}
	if t == nil {
		delete(f.Tokens, key)
	} else {
		f.Tokens[key] = t
	}
	dir := filepath.Dir(c.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	body, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".token-cache-*") // created 0600
	if err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return fmt.Errorf("token cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	// Rename is atomic: a concurrent reader sees the old file or the new one, never half of one.
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	return nil
}

func (c *fileTokenCache) read() (*tokenCacheFile, error) {
	f := &tokenCacheFile{Version: 1, Tokens: map[string]*oauth2.Token{}}
	info, err := os.Stat(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token cache: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("token cache %s is readable by others (mode %o): run `chmod 600 %s`", c.path, info.Mode().Perm(), c.path)
	}
	body, err := os.ReadFile(c.path)
	if err != nil {
		return nil, fmt.Errorf("token cache: %w", err)
	}
	if err := json.Unmarshal(body, f); err != nil {
		return nil, fmt.Errorf("token cache %s is corrupt (delete it and log in again): %w", c.path, err)
	}
	if f.Tokens == nil {
		f.Tokens = map[string]*oauth2.Token{}
	}
	return f, nil
}
