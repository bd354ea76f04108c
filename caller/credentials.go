package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/config"
	"golang.org/x/oauth2"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
	"github.com/databricks-sample/go-apps-api/caller/appauth"
)

// credentials holds the one *config.Config of a mode. The SDK caches its token and refreshes it in the background;
// refresh throws the Config away so the next request gets a fresh token (after a 401).
type credentials struct {
	mode      Mode
	principal string // who the token is for, as far as the configuration says: "profile my-env", "service principal abc"
	clientID  string // external and app modes
	profile   string // local mode
	loginHint string // the command that gets a token when none can be obtained
	build     func() (*config.Config, error)
	// forceRefresh, when set, runs before a rebuild: the cached login token must be refreshed explicitly.
	forceRefresh func() error
	// lookup, when set, are the credentials that look the app up with the Apps API: a token holding only an app's
	// user authorization scopes may not call it (that takes apps or all-apis), so local mode with --scopes looks the
	// app up with the profile's own token and calls the app with the scoped one.
	lookup *credentials

	// workspace is the transport of the SDK's own requests (host metadata, OAuth discovery, the token endpoint): it
	// remembers a request that got no answer, so a failed token fetch blames the network, not the credentials.
	workspace *workspaceTransport

	mu  sync.Mutex
	cfg *config.Config
	// resolving lets one goroutine at a time into the SDK's first resolution of a Config: EnsureResolved reads its
	// "resolved" flag without a lock, so two first requests at once (serve) race.
	resolving sync.Mutex
}

// newCredentials checks that the mode has what it needs and prepares its Config, one of caller/appauth's where the
// mode is one of the page's ways; nothing talks to the network yet.
func newCredentials(ctx context.Context, e *env) (*credentials, error) {
	wt := &workspaceTransport{base: e.transport, proxy: e.proxy}
	plumb := func(cfg *config.Config) *config.Config {
		// Shorten the SDK's own retries (300 s by default) to the command's timeout. That alone does not bound a
		// token fetch (the SDK resolves and discovers with context.Background(), one retry budget per step): token
		// stops waiting when ctx ends.
		secs := int((e.opts.timeout + time.Second - 1) / time.Second)
		cfg.RetryTimeoutSeconds, cfg.HTTPTimeoutSeconds, cfg.HTTPTransport = secs, secs, wt
		cfg.Loaders = append(cfg.Loaders, noDebugHeaders{})
		return cfg
	}
	c, err := modeCredentials(ctx, e, wt, plumb)
	if err != nil {
		return nil, err
	}
	c.workspace = wt
	if c.lookup != nil {
		c.lookup.workspace = wt
	}
	return c, nil
}

func modeCredentials(ctx context.Context, e *env, wt *workspaceTransport, plumb func(*config.Config) *config.Config) (*credentials, error) {
	opts, getenv := e.opts, e.getenv
	switch opts.mode {
	case ModeLocal:
		return localCredentials(ctx, e, wt, plumb)
	case ModeExternal, ModeApp:
		return m2mCredentials(e, plumb)
	case ModeFederated:
		return federatedCredentials(e, plumb)
	default:
		// The chain reads the config file when the environment has no workspace, or a profile is named: say what is
		// missing there, before the SDK's "cannot configure default credentials".
		profile := cmp.Or(opts.profile, getenv("DATABRICKS_CONFIG_PROFILE"))
		noWorkspace := cmp.Or(opts.host, getenv("DATABRICKS_HOST"), getenv("DATABRICKS_AZURE_RESOURCE_ID")) == ""
		if profile != "" || noWorkspace {
			what := "auto mode"
			if profile == "" {
				what = "auto mode (DATABRICKS_HOST is not set, so the credentials come from a profile)"
			}
			if f := profileProblem(getenv, what, profile, noWorkspace); f != nil {
				return nil, f
			}
		}
		c := &credentials{mode: ModeAuto, profile: opts.profile, principal: "the SDK's default credentials chain",
			loginHint: "set DATABRICKS_HOST with DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET, or run `databricks auth login`, or pick --mode"}
		c.build = func() (*config.Config, error) {
			// No AuthType: auto is the one mode where the SDK chooses; authType reports its choice.
			cfg := &config.Config{Profile: opts.profile, Host: sdkconfig.NormaliseHost(opts.host), ConfigFile: configFilePath(getenv),
				DatabricksCliPath: getenv("DATABRICKS_CLI_PATH"), Loaders: []config.Loader{envLoader(getenv), config.ConfigFile}}
			return plumb(cfg), nil
		}
		return c, nil
	}
}

func localCredentials(ctx context.Context, e *env, wt *workspaceTransport, plumb func(*config.Config) *config.Config) (*credentials, error) {
	opts, getenv := e.opts, e.getenv
	profile := cmp.Or(opts.profile, getenv("DATABRICKS_CONFIG_PROFILE"))
	if profile != "" || opts.host == "" {
		if f := profileProblem(getenv, "local mode", profile, opts.host == ""); f != nil {
			return nil, f
		}
	}
	c := &credentials{mode: ModeLocal, profile: profile}
	c.principal = "profile " + cmp.Or(profile, "DEFAULT")
	c.loginHint = "databricks auth login --profile " + cmp.Or(profile, "DEFAULT")
	if profile == "" && opts.host != "" {
		c.principal, c.loginHint = "host "+opts.host, "databricks auth login --host "+opts.host
	}
	profileConfig := func() *config.Config {
		cfg := appauth.Local(profile)
		cfg.Host, cfg.ConfigFile = sdkconfig.NormaliseHost(opts.host), configFilePath(getenv)
		return plumb(cfg)
	}
	cliBuild := func() (*config.Config, error) {
		cfg := profileConfig()
		cfg.DatabricksCliPath = getenv("DATABRICKS_CLI_PATH")
		return cfg, nil
	}
	if len(opts.scopes) == 0 {
		c.build = cliBuild
		return c, nil
	}
	// A token holding only an app's user authorization scopes may not call the Apps API (that takes apps or
	// all-apis): --app is looked up with the profile's own token, and the app called with the scoped one.
	c.lookup = &credentials{mode: ModeLocal, profile: profile, principal: c.principal, loginHint: c.loginHint, build: cliBuild}

	// With --scopes, use the token `callapp login` cached for this profile (or host) and these scopes.
	pcfg := profileConfig()
	if err := pcfg.EnsureResolved(); err != nil {
		return nil, usageErrorf("local mode: %v", err)
	}
	if pcfg.Host == "" {
		return nil, usageErrorf("local mode needs a host: give --profile with a host in %s, or --host", pcfg.ConfigFile)
	}
	host := sdkconfig.NormaliseHost(pcfg.Host)
	login, err := newLogin(ctx, e, host, profile, loginOptions{})
	if err != nil {
		return nil, err
	}
	c.principal += " with scopes " + strings.Join(opts.scopes, ",")
	c.loginHint = loginCommand(profile, host, opts.scopes)
	c.forceRefresh = login.Refresh
	c.build = func() (*config.Config, error) {
		cfg := login.Config()
		cfg.Profile = profile
		return plumb(cfg), nil
	}
	return c, nil
}

func m2mCredentials(e *env, plumb func(*config.Config) *config.Config) (*credentials, error) {
	opts := e.opts
	cfg := appauth.FromEnv(e.getenv) // the platform's variables; external mode may override them
	host, clientID, secret := e.getenv("DATABRICKS_HOST"), cfg.ClientID, cfg.ClientSecret
	if opts.mode == ModeExternal {
		host, clientID = cmp.Or(opts.host, host), cmp.Or(opts.clientID, clientID)
		if opts.clientSecretStdin {
			line, err := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
			if err != nil && err != io.EOF {
				return nil, usageErrorf("external mode: reading the client secret from stdin: %v", err)
			}
			secret = strings.TrimSpace(line)
		}
	}
	var missing []string
	for _, v := range []struct{ name, value string }{
		{"DATABRICKS_HOST", host}, {"DATABRICKS_CLIENT_ID", clientID}, {"DATABRICKS_CLIENT_SECRET", secret},
	} {
		if v.value == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		if opts.mode == ModeApp {
			return nil, usageErrorf("app mode needs %s: it runs inside a Databricks App, where the platform sets them "+
				"for the app's own service principal (locally, use --mode external)", strings.Join(missing, ", "))
		}
		return nil, usageErrorf("external mode needs %s (the service principal's OAuth secret: env, or --client-secret-stdin; "+
			"host and client id may also be --host and --client-id)", strings.Join(missing, ", "))
	}
	c := &credentials{mode: opts.mode, clientID: clientID, principal: "service principal " + shownClientID(clientID),
		loginHint: "check the client id and secret of the service principal (Settings > Identity and access > Service principals > Secrets)"}
	if opts.mode == ModeApp {
		c.principal = "the app's service principal " + shownClientID(clientID)
		c.loginHint = "the platform sets DATABRICKS_CLIENT_ID/SECRET for the app; redeploy the app if they were rotated"
	}
	c.build = func() (*config.Config, error) { return plumb(appauth.External(host, clientID, secret)), nil }
	return c, nil
}

// federatedCredentials exchange an identity provider's JWT for a Databricks token: from a file (file-oidc, read
// again at each refresh), else from DATABRICKS_OIDC_TOKEN (env-oidc).
func federatedCredentials(e *env, plumb func(*config.Config) *config.Config) (*credentials, error) {
	opts, getenv := e.opts, e.getenv
	host := cmp.Or(opts.host, getenv("DATABRICKS_HOST"))
	clientID := cmp.Or(opts.clientID, getenv("DATABRICKS_CLIENT_ID"))
	file := cmp.Or(opts.oidcTokenFile, getenv("DATABRICKS_OIDC_TOKEN_FILEPATH"))
	switch {
	case host == "":
		return nil, usageErrorf("federated mode needs the workspace: DATABRICKS_HOST or --host")
	case file == "" && getenv("DATABRICKS_OIDC_TOKEN") == "":
		return nil, usageErrorf("federated mode needs the identity provider's token: --oidc-token-file F, " +
			"DATABRICKS_OIDC_TOKEN_FILEPATH or DATABRICKS_OIDC_TOKEN")
	}
	c := &credentials{mode: ModeFederated, clientID: clientID,
		principal: "the identity provider's token, exchanged for service principal " + shownClientID(clientID),
		loginHint: "check the token is fresh and that a federation policy trusts its issuer, audience and subject " +
			"(databricks account service-principal-federation-policy list, or federation-policy list)"}
	if clientID == "" {
		c.principal = "the identity provider's token, exchanged under an account federation policy"
	}
	c.build = func() (*config.Config, error) {
		if file != "" {
			return plumb(appauth.Federated(host, clientID, file)), nil
		}
		return plumb(appauth.FederatedFromEnv(host, clientID)), nil
	}
	return c, nil
}

// current returns the Config, building it on first use.
func (c *credentials) current() (*config.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg == nil {
		cfg, err := c.build()
		if err != nil {
			return nil, err
		}
		c.cfg = cfg
	}
	return c.cfg, nil
}

// token returns the bearer token requests carry, fetching one only when the Config's cache has none still valid.
// OAuth auth types give it through their token source, which honours ctx; others (a PAT in auto mode) only through
// the header cfg.Authenticate sets.
func (c *credentials) token(ctx context.Context) (identity.Token, time.Time, error) {
	cfg, err := c.current()
	if err != nil {
		return "", time.Time{}, err
	}
	// The SDK resolves the configuration and discovers the OAuth endpoints without a context, each with its own
	// retry budget; wait for it only as long as ctx allows. (Left behind, it gives up within RetryTimeoutSeconds.)
	type fetched struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan fetched, 1)
	go func() {
		c.resolving.Lock()
		ts := cfg.GetTokenSource()
		c.resolving.Unlock()
		t, err := ts.Token(ctx)
		done <- fetched{t, err}
	}()
	var f fetched
	select {
	case f = <-done:
	case <-ctx.Done():
		return "", time.Time{}, c.tokenFailure(fmt.Errorf("no token before --timeout: %w", ctx.Err()))
	}
	if f.err == nil {
		return identity.Token(f.tok.AccessToken), f.tok.Expiry, nil
	}
	err = f.err
	if cfg.AuthType != "pat" {
		return "", time.Time{}, c.tokenFailure(err)
	}
	// A personal access token (auto mode with DATABRICKS_TOKEN) has no token source: read the header it sets.
	// The Apps proxy will most likely refuse it; the 401 explains that.
	req := &http.Request{Header: http.Header{}}
	if authErr := cfg.Authenticate(req); authErr != nil {
		return "", time.Time{}, c.tokenFailure(err)
	}
	bearer, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", time.Time{}, c.tokenFailure(fmt.Errorf("auth type %s does not give a bearer token", cfg.AuthType))
	}
	var expiry time.Time
	if claims, err := identity.DecodeClaims(bearer); err == nil {
		expiry = claims.ExpiresAt
	}
	return identity.Token(bearer), expiry, nil
}

// tokenFailure explains why no token came: the workspace could not be reached (network), or the credentials were
// not accepted (authentication).
func (c *credentials) tokenFailure(err error) *failure {
	if f := c.unreachable(err); f != nil {
		return f
	}
	checks := []string{"the credentials are set up: " + c.loginHint}
	if c.mode == ModeLocal || c.mode == ModeAuto {
		checks = []string{
			"the profile is set up: " + c.loginHint,
			"the token is valid: `databricks auth token --profile " + cmp.Or(c.profile, "DEFAULT") + "` prints one",
		}
	}
	return &failure{Code: exitAuth,
		Summary: fmt.Sprintf("%s mode (%s): cannot get a token: %s", c.mode, c.principal, c.redact(err.Error())),
		Checks:  checks}
}

// unreachable is the network failure for a token fetch whose requests to the workspace got no answer, or that ran
// out of time; nil when the workspace answered.
func (c *credentials) unreachable(err error) *failure {
	timedOut := errors.Is(err, context.DeadlineExceeded)
	what := fmt.Sprintf("%s mode (%s): cannot get a token", c.mode, c.principal)
	if f := c.workspace.unreachable(what, c.hostSource(), timedOut); f != nil {
		return f
	}
	if !timedOut {
		return nil
	}
	return &failure{Code: exitNetwork,
		Summary: fmt.Sprintf("%s mode (%s): timed out getting a token from the workspace (--timeout)", c.mode, c.principal),
		Checks:  []string{"the workspace answers: its OAuth token endpoint did not within --timeout; raise it, or check the workspace's status"}}
}

// hostSource says where the mode's workspace URL comes from, for a person to fix it.
func (c *credentials) hostSource() string {
	switch c.mode {
	case ModeLocal:
		return "the host of " + c.principal
	case ModeExternal:
		return "DATABRICKS_HOST or --host"
	case ModeApp:
		return "DATABRICKS_HOST, which the platform sets"
	}
	return "DATABRICKS_HOST or the profile's host"
}

// Authenticate puts the bearer token on req. The token is fetched first with ctx, so --timeout bounds it; then
// cfg.Authenticate sets the header from the SDK's cache.
func (c *credentials) Authenticate(ctx context.Context, req *http.Request) error {
	if _, _, err := c.token(ctx); err != nil {
		return err
	}
	cfg, err := c.current()
	if err != nil {
		return err
	}
	if err := cfg.Authenticate(req); err != nil {
		return c.tokenFailure(err)
	}
	return nil
}

// Refresh drops the cached token so the next request fetches a new one (databricks-cli passes --force-refresh,
// M2M asks the token endpoint again, a cached login uses its refresh token).
func (c *credentials) Refresh() error {
	if c.forceRefresh != nil {
		if err := c.forceRefresh(); err != nil {
			return c.tokenFailure(err)
		}
	}
	c.mu.Lock()
	c.cfg = nil
	c.mu.Unlock()
	return nil
}

// authType is the auth type in use: fixed per mode, or what the default chain picked (after the first token).
func (c *credentials) authType() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg == nil {
		return ""
	}
	return c.cfg.AuthType
}

// servicePrincipalID is the client id when the caller acts as a service principal (external and app modes, or auto
// mode when the chain picked M2M), else "".
func (c *credentials) servicePrincipalID() string {
	if c.clientID != "" {
		return c.clientID
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg != nil && c.cfg.AuthType == appauth.AuthM2M {
		return c.cfg.ClientID
	}
	return ""
}

// workspaceHost is the workspace the credentials belong to, once resolved.
func (c *credentials) workspaceHost(ctx context.Context) (string, error) {
	if _, _, err := c.token(ctx); err != nil {
		return "", err
	}
	cfg, err := c.current()
	if err != nil {
		return "", err
	}
	if cfg.Host == "" {
		return "", usageErrorf("%s mode: no workspace host configured", c.mode)
	}
	return cfg.Host, nil
}

// hostOrEmpty is the workspace of the Config built so far, "" before the first token: for messages, never a fetch.
func (c *credentials) hostOrEmpty() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg == nil {
		return ""
	}
	return c.cfg.Host
}

// shownClientID is a client id as the caller prints it: whole when it looks like one (Databricks client ids, the
// application ids of service principals, are UUIDs), else only its first characters, so that a client id and
// secret given the wrong way round never print the secret.
func shownClientID(id string) string {
	if id == "" || isUUID(id) {
		return id
	}
	r := []rune(id)
	return string(r[:min(4, len(r)/2)]) + "…"
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// redact replaces the client ids of the configuration in s (an SDK error: "Config: host=…, client_id=…") with how
// the caller shows them.
func (c *credentials) redact(s string) string {
	ids := []string{c.clientID}
	c.mu.Lock()
	if c.cfg != nil {
		ids = append(ids, c.cfg.ClientID)
	}
	c.mu.Unlock()
	for _, id := range ids {
		if shown := shownClientID(id); shown != id {
			s = strings.ReplaceAll(s, id, shown)
		}
	}
	return s
}
