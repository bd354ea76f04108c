package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/client"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/service/iam"

	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
)

// workspace calls the Databricks workspace as two identities: the app's own service principal (from the platform's
// DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET) and, per request, the user whose token the proxy forwarded.
//
// Everything that can be resolved once is: the host's metadata (/.well-known/databricks-config) is fetched once and
// shared by every client, the service principal's client and its OAuth token are reused, and one HTTP transport keeps
// connections to the workspace open. A request then costs exactly one workspace call per identity.
type workspace struct {
	host        string
	workspaceID string
	timeout     time.Duration
	logger      *slog.Logger
	transport   http.RoundTripper
	metadata    hostMetadataCache

	appConfig *config.Config // nil when the app has no service principal credentials (off the platform)
	appClient func() (*client.DatabricksClient, error)
}

func newWorkspace(s settings, logger *slog.Logger) *workspace {
	ws := &workspace{
		host:        s.workspaceHost,
		workspaceID: s.workspaceID,
		timeout:     s.workspaceTimeout,
		logger:      logger,
		transport:   http.DefaultTransport.(*http.Transport).Clone(),
	}
	if s.workspaceHost != "" && s.clientID != "" && s.clientSecret != "" {
		ws.appConfig = ws.newConfig(&config.Config{
			AuthType:     "oauth-m2m",
			ClientID:     s.clientID,
			ClientSecret: s.clientSecret,
		})
	}
	ws.appClient = sync.OnceValues(func() (*client.DatabricksClient, error) {
		if ws.appConfig == nil {
			return nil, errNotConfigured
		}
		return client.New(ws.appConfig)
	})
	return ws
}

var errNotConfigured = errors.New("the app has no service principal credentials (DATABRICKS_CLIENT_ID, DATABRICKS_CLIENT_SECRET)")

// newConfig completes cfg with what every client of this app shares. AuthType is always explicit: inside an app the
// environment holds the service principal's id and secret, and a user's token next to them would otherwise fail with
// "more than one authorization method configured". No loader runs, so nothing but these fields is read.
func (ws *workspace) newConfig(cfg *config.Config) *config.Config {
	cfg.Host = ws.host
	cfg.WorkspaceID = ws.workspaceID
	cfg.Loaders = []config.Loader{sdkconfig.ExplicitOnly{}}
	cfg.HTTPTransport = ws.transport
	cfg.HTTPTimeoutSeconds = int(ws.timeout / time.Second)
	cfg.RetryTimeoutSeconds = int(ws.timeout / time.Second)
	cfg.HostMetadataResolver = func(ctx context.Context, host string) (*config.HostMetadata, error) {
		return ws.metadata.get(ctx, host, cfg.DefaultHostMetadataResolver())
	}
	return cfg
}

// warmUp resolves the service principal's client in the background at start-up, so the first /api/me does not pay
// for it. Failures are not fatal: the request that needs the client reports them.
func (ws *workspace) warmUp(ctx context.Context) {
	if ws.appConfig == nil {
		return
	}
	if _, err := ws.appClient(); err != nil {
		ws.logger.WarnContext(ctx, "service principal client", "error", err.Error())
	}
}

// meAsUser calls SCIM Me with the user's forwarded access token.
func (ws *workspace) meAsUser(ctx context.Context, token string) (*iam.User, error) {
	c, err := client.New(ws.newConfig(&config.Config{AuthType: "pat", Token: token}))
	if err != nil {
		return nil, err
	}
	return ws.me(ctx, c)
}

// meAsApp calls SCIM Me as the app's own service principal.
func (ws *workspace) meAsApp(ctx context.Context) (*iam.User, error) {
	c, err := ws.appClient()
	if err != nil {
		return nil, err
	}
	return ws.me(ctx, c)
}

func (ws *workspace) me(ctx context.Context, c *client.DatabricksClient) (*iam.User, error) {
	ctx, cancel := context.WithTimeout(ctx, ws.timeout)
	defer cancel()
	return iam.NewCurrentUser(c).Me(ctx, iam.MeRequest{})
}

// hostMetadataCache remembers the workspace's /.well-known/databricks-config answer. A failed fetch is not cached, so
// the next client tries again.
type hostMetadataCache struct {
	mu   sync.Mutex
	host string
	meta *config.HostMetadata
}

func (c *hostMetadataCache) get(ctx context.Context, host string, fetch config.HostMetadataResolver) (*config.HostMetadata, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.meta != nil && strings.EqualFold(c.host, host) {
		return c.meta, nil
	}
	meta, err := fetch(ctx, host)
	if err != nil {
		return nil, err
	}
	c.host, c.meta = host, meta
	return meta, nil
}
