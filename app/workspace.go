package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/client"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/service/sql"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
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
	// The app's resources, as app.yaml's valueFrom resolves them: the SQL warehouse's id, the volume's path.
	warehouseID   string
	reportsVolume string
	clientID      string // the app's service principal, as current_user() names it

	appConfig *config.Config // nil when the app has no service principal credentials (off the platform)
	appClient func() (*client.DatabricksClient, error)
}

func newWorkspace(s settings, logger *slog.Logger) *workspace {
	ws := &workspace{
		host:          s.workspaceHost,
		workspaceID:   s.workspaceID,
		timeout:       s.workspaceTimeout,
		logger:        logger,
		transport:     http.DefaultTransport.(*http.Transport).Clone(),
		warehouseID:   s.warehouseID,
		reportsVolume: strings.TrimSuffix(s.reportsVolume, "/"),
		clientID:      s.clientID,
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

// workspaceRateLimit is how many requests a second one client may send to the workspace: above what this app
// sends, so the workspace's own limits are the ones that apply.
const workspaceRateLimit = 1000

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
	// The SDK limits each client to 15 requests a second unless told otherwise. The app's own client serves every
	// request, so that would cap each data endpoint at 15 a second for all users together (make bench, figure 8:
	// sequential GET /api/orders took 67 ms instead of 29). The workspace enforces its own limits with 429 and
	// Retry-After, which the SDK honours.
	cfg.RateLimitPerSecond = workspaceRateLimit
	cfg.HostMetadataResolver = func(ctx context.Context, host string) (*config.HostMetadata, error) {
		return ws.metadata.get(ctx, host, cfg.DefaultHostMetadataResolver())
	}
	return cfg
}

// warmUp resolves the service principal's client in the background at start-up, so the first request does not pay
// for it. Failures are not fatal: the request that needs the client reports them.
func (ws *workspace) warmUp(ctx context.Context) {
	if ws.appConfig == nil {
		return
	}
	if _, err := ws.appClient(); err != nil {
		ws.logger.WarnContext(ctx, "service principal client", "error", err.Error())
	}
}

// caller is who a workspace call runs as: the user whose token the proxy forwarded, or the app itself.
type caller struct {
	as     string // "on behalf of the user" or "as the app's service principal", for messages
	client *client.DatabricksClient
	token  identity.Token // the user's, scrubbed from any message; zero for the app
}

func (ws *workspace) asUser(token identity.Token) (caller, error) {
	c, err := client.New(ws.newConfig(&config.Config{AuthType: "pat", Token: token.Reveal()}))
	return caller{as: "on behalf of the user", client: c, token: token}, err
}

func (ws *workspace) asApp() (caller, error) {
	c, err := ws.appClient()
	return caller{as: "as the app's service principal", client: c}, err
}

// queryResult is a statement's rows, each a column name → value (a string, or nil for NULL) map.
type queryResult struct {
	Rows []map[string]*string `json:"rows"`
}

// first is the named column of the first row, or "".
func (q *queryResult) first(column string) string {
	if q == nil || len(q.Rows) == 0 || q.Rows[0][column] == nil {
		return ""
	}
	return *q.Rows[0][column]
}

// statementError is a statement the warehouse ran and failed: its state and the workspace's error.
type statementError struct {
	state   sql.StatementState
	code    sql.ServiceErrorCode
	message string
}

func (e *statementError) Error() string {
	return fmt.Sprintf("the statement %s: %s %s", strings.ToLower(string(e.state)), e.code, e.message)
}

// errNoWarehouse is a query when app.yaml gave the app no warehouse.
var errNoWarehouse = errors.New("the app has no SQL warehouse: WAREHOUSE_ID is not set")

// query runs one statement on the app's warehouse as c and waits for it (at most the workspace timeout, after which
// the warehouse cancels it).
func (ws *workspace) query(ctx context.Context, c caller, statement string, params ...sql.StatementParameterListItem) (*queryResult, error) {
	if ws.warehouseID == "" {
		return nil, errNoWarehouse
	}
	ctx, cancel := context.WithTimeout(ctx, ws.timeout+5*time.Second)
	defer cancel()
	wait := min(max(ws.timeout, 5*time.Second), 50*time.Second) // the API takes 5 s to 50 s
	res, err := sql.NewStatementExecution(c.client).ExecuteStatement(ctx, sql.ExecuteStatementRequest{
		WarehouseId: ws.warehouseID, Statement: statement, Parameters: params,
		WaitTimeout: fmt.Sprintf("%ds", int(wait/time.Second)), OnWaitTimeout: sql.ExecuteStatementRequestOnWaitTimeoutCancel,
	})
	if err != nil {
		return nil, err
	}
	if res.Status.State != sql.StatementStateSucceeded {
		e := &statementError{state: res.Status.State}
		if res.Status.Error != nil {
			e.code, e.message = res.Status.Error.ErrorCode, res.Status.Error.Message
		}
		return nil, e
	}
	out := &queryResult{Rows: []map[string]*string{}}
	if res.Result == nil || res.Manifest == nil || res.Manifest.Schema == nil {
		return out, nil
	}
	// The SDK reads the JSON_ARRAY's values into strings, so a NULL arrives as "": good enough for showing rows.
	for _, values := range res.Result.DataArray {
		row := map[string]*string{}
		for i, col := range res.Manifest.Schema.Columns {
			if i < len(values) {
				v := values[i]
				row[col.Name] = &v
			}
		}
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}

// sideResult is what one side of a side-by-side call found: a result, or a note saying why there is none.
type sideResult struct {
	result *queryResult
	note   string
}

// sideBySide runs do on behalf of the user and as the app at once, so the caller waits for the slower, not the sum.
// Without a user token (a service principal calling, or user authorization off) it is refused unless appOnly
// allows the app's side alone, the user's then nil; the app side is left out, with a note, where the app has no
// credentials (off the platform). A failure on the user's side answers with the workspace's verdict; one on the
// app's side with 502, since the caller's credentials are not at fault.
func (ws *workspace) sideBySide(r *http.Request, logger *slog.Logger, appOnly bool,
	do func(caller) (*queryResult, error)) (*queryResult, sideResult, *jsonhttp.Error) {
	id, _ := identity.FromContext(r.Context())
	if id.AccessToken.IsZero() && !appOnly {
		return nil, sideResult{}, noUserToken(id)
	}
	if ws.host == "" {
		return nil, sideResult{}, workspaceUnknown()
	}
	var app sideResult
	var appErr error
	appDone := make(chan struct{})
	go func() {
		defer close(appDone)
		c, err := ws.asApp()
		if err == nil {
			app.result, err = do(c)
		}
		appErr = err
	}()
	var userResult *queryResult
	user, err := caller{as: "on behalf of the user"}, error(nil)
	if !id.AccessToken.IsZero() {
		if user, err = ws.asUser(id.AccessToken); err == nil {
			userResult, err = do(user)
		}
	}
	<-appDone
	if err != nil {
		apiErr := workspaceError(user.as, err, id.AccessToken)
		logger.WarnContext(r.Context(), "workspace call on behalf of the user", "status", apiErr.Status, "error", apiErr.Message)
		return nil, sideResult{}, apiErr
	}
	switch {
	case errors.Is(appErr, errNotConfigured):
		app.note = errNotConfigured.Error()
	case appErr != nil:
		apiErr := appCredentialsError(appErr)
		logger.WarnContext(r.Context(), "workspace call as the app", "status", apiErr.Status, "error", apiErr.Message)
		return nil, sideResult{}, apiErr
	}
	return userResult, app, nil
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
