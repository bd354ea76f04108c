package appauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/config/experimental/auth"
	"github.com/databricks/databricks-sdk-go/credentials/u2m"
	"github.com/databricks/databricks-sdk-go/credentials/u2m/cache"
	"github.com/databricks/databricks-sdk-go/httpclient"
	"golang.org/x/oauth2"

	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
)

// Login is the page's custom-scope flow, for an app with user authorization whose scopes a plain login may not
// carry: authorization code + PKCE against the workspace's /oidc/v1/token with client_id=databricks-cli and a
// loopback redirect, done in-process by the SDK's credentials/u2m. The token and its refresh token are cached in a
// file, so a later run reuses them without a browser. (`databricks auth login --scopes a,b`, CLI v0.287.0 and later,
// does the same for a CLI profile; Local then uses it.)
type Login struct {
	auth *u2m.PersistentAuth
	host string
	// CacheFile is where the token is kept.
	CacheFile string
}

// LoginOptions are a login's settings beyond the workspace and the scopes.
type LoginOptions struct {
	Profile   string             // names the login in the cache next to its scopes; "" names it by host
	CacheFile string             // the owner-only token cache (required)
	OpenURL   func(string) error // shows the authorization URL to the user; nil opens the default browser
	Port      int                // the loopback redirect port; 0 tries 8020-8040, as the Databricks CLI does
	// Transport, when set, carries the login's requests to the workspace (OAuth discovery, the code exchange,
	// refreshes), each bounded by Timeout; else the SDK's own client does.
	Transport http.RoundTripper
	Timeout   time.Duration
}

// ErrNotLoggedIn is the error of a Login's token when nobody has logged in with these scopes yet.
var ErrNotLoggedIn = errors.New("no token cached for these scopes: log in first")

// loginKey keys the cache by profile (or host) and scopes, so a token with custom scopes never stands in for another
// login's.
type loginKey struct {
	u2m.BasicWorkspaceOAuthArgument
	key string
}

func (k loginKey) GetCacheKey() string { return k.key }

// NewLogin prepares the login to host with scopes; nothing talks to the workspace until Run or a token is needed.
func NewLogin(ctx context.Context, host string, scopes []string, o LoginOptions) (*Login, error) {
	host = sdkconfig.NormaliseHost(host)
	arg, err := u2m.NewProfileWorkspaceOAuthArgument(host, o.Profile)
	if err != nil {
		return nil, err
	}
	if o.CacheFile == "" {
		return nil, errors.New("a login needs a token cache file")
	}
	name := o.Profile
	if name == "" {
		name = host
	}
	opts := []u2m.PersistentAuthOption{
		u2m.WithOAuthArgument(loginKey{arg, name + " scopes=" + strings.Join(scopes, ",")}),
		u2m.WithScopes(scopes),
		u2m.WithTokenCache(&FileTokenCache{Path: o.CacheFile}),
		u2m.WithPort(o.Port),
	}
	if o.OpenURL != nil {
		opts = append(opts, u2m.WithBrowser(o.OpenURL))
	}
	if o.Transport != nil {
		api := httpclient.NewApiClient(httpclient.ClientConfig{Transport: o.Transport, RetryTimeout: o.Timeout, HTTPTimeout: o.Timeout})
		opts = append(opts, u2m.WithHttpClient(&http.Client{Transport: o.Transport, Timeout: o.Timeout}),
			u2m.WithOAuthEndpointSupplier(&u2m.BasicOAuthEndpointSupplier{Client: api}))
	}
	a, err := u2m.NewPersistentAuth(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &Login{auth: a, host: host, CacheFile: o.CacheFile}, nil
}

// Run logs in: it shows the authorization URL, waits for the browser's redirect to the loopback port and caches the
// token.
func (l *Login) Run() error { return l.auth.Challenge() }

// Token is the cached token, refreshed with its refresh token when it nears expiry.
func (l *Login) Token() (*oauth2.Token, error) {
	t, err := l.auth.Token()
	if errors.Is(err, cache.ErrNotFound) {
		return nil, fmt.Errorf("%w (cache %s)", ErrNotLoggedIn, l.CacheFile)
	}
	return t, err
}

// Refresh gets a new token with the refresh token now, as after a 401.
func (l *Login) Refresh() error {
	_, err := l.auth.ForceRefreshToken()
	return err
}

// Config is the login's *config.Config: cfg.Authenticate(req) sets the cached token with the login's scopes.
func (l *Login) Config() *config.Config {
	return &config.Config{
		Host:        l.host,
		AuthType:    AuthExternalBrowser,
		Credentials: config.NewTokenSourceStrategy(AuthExternalBrowser, auth.TokenSourceFn(func(context.Context) (*oauth2.Token, error) { return l.Token() })),
		Loaders:     []config.Loader{sdkconfig.ExplicitOnly{}},
	}
}
