// Package sqltest holds the emulated workspace's tests that run SQL: they start the workspace with its real engine
// (DuckDB, through emulator/sqlengine/duckdb) and call it with databricks-sdk-go's own clients. They live apart from
// the workspace package's tests so that only this test binary links the engine.
package sqltest

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/databricks/databricks-sdk-go/service/catalog"
	"github.com/databricks/databricks-sdk-go/service/sql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
	"github.com/databricks-sample/go-apps-api/emulator/sqlengine/duckdb"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

const (
	warehouseID = "5b3f9c1e7a2d4e60"
	ordersSQL   = "SELECT count(*) AS orders, count(DISTINCT sales_rep) AS reps, " +
		"count(CASE WHEN customer_email LIKE '***@%' THEN 1 END) AS masked FROM samples.sales.orders"
)

// start starts the default model's workspace with the SQL engine; warehouses change state in 10 ms.
func start(t *testing.T) *workspace.Workspace {
	t.Helper()
	ws, _ := emulated.Start(t, workspace.Options{SQLEngine: duckdb.Open, WarehouseTransition: 10 * time.Millisecond})
	return ws
}

// client is databricks-sdk-go's workspace client with a token, reading nothing from the environment.
func client(t *testing.T, ws *workspace.Workspace, token string) *databricks.WorkspaceClient {
	t.Helper()
	c, err := databricks.NewWorkspaceClient(&databricks.Config{Host: ws.URL(), AuthType: "pat", Token: token,
		Loaders: []config.Loader{sdkconfig.ExplicitOnly{}}, RetryTimeoutSeconds: 5})
	require.NoError(t, err)
	return c
}

func userClient(t *testing.T, ws *workspace.Workspace, user, scope string) *databricks.WorkspaceClient {
	return client(t, ws, emulated.UserToken(t, ws, user, scope))
}

func run(t *testing.T, c *databricks.WorkspaceClient, statement string, params ...sql.StatementParameterListItem) *sql.StatementResponse {
	t.Helper()
	res, err := c.StatementExecution.ExecuteAndWait(t.Context(), sql.ExecuteStatementRequest{WarehouseId: warehouseID,
		Statement: statement, Parameters: params})
	require.NoError(t, err)
	return res
}

// The same statement, as two users and as the app's service principal, reads different rows: the table's row
// filter and column mask, evaluated by the engine for whoever runs it.
func TestRowFilterAndMaskPerPrincipal(t *testing.T) {
	t.Parallel()
	ws := start(t)
	for _, tc := range []struct {
		who    string
		client *databricks.WorkspaceClient
		want   []string // orders, reps, masked emails
	}{
		{"dev@example.com, a sales lead", userClient(t, ws, "dev@example.com", "sql"), []string{"300", "6", "0"}},
		{"ana@example.com, a sales rep", userClient(t, ws, "ana@example.com", "sql"), []string{"56", "1", "56"}},
		{"api-app's service principal, in sales-reporting", client(t, ws, emulated.M2MToken(t, ws, "api-app", "all-apis")),
			[]string{"300", "6", "300"}},
	} {
		t.Run(tc.who, func(t *testing.T) {
			res := run(t, tc.client, ordersSQL)
			assert.Equal(t, sql.StatementStateSucceeded, res.Status.State)
			require.Len(t, res.Result.DataArray, 1)
			assert.Equal(t, tc.want, res.Result.DataArray[0])
			assert.Equal(t, "orders", res.Manifest.Schema.Columns[0].Name)
			assert.Equal(t, sql.ColumnInfoTypeNameLong, res.Manifest.Schema.Columns[0].TypeName)
		})
	}
}

func TestCurrentUserAndNamedParameters(t *testing.T) {
	t.Parallel()
	ws := start(t)
	ana := userClient(t, ws, "ana@example.com", "sql")
	res := run(t, ana, "SELECT current_user(), is_account_group_member('sales'), is_account_group_member('sales-leads')")
	assert.Equal(t, []string{"ana@example.com", "true", "false"}, res.Result.DataArray[0])

	res, err := ana.StatementExecution.ExecuteAndWait(t.Context(), sql.ExecuteStatementRequest{WarehouseId: warehouseID,
		Catalog: "samples", Schema: "sales",
		Statement: "SELECT order_id, amount FROM orders WHERE region = :region AND amount >= :min ORDER BY amount DESC LIMIT 3",
		Parameters: []sql.StatementParameterListItem{{Name: "region", Value: "EMEA"},
			{Name: "min", Value: "1000", Type: "DECIMAL(10,2)"}}})
	require.NoError(t, err)
	require.NotEmpty(t, res.Result.DataArray)
	assert.LessOrEqual(t, len(res.Result.DataArray), 3)
	assert.Equal(t, "DECIMAL(10,2)", res.Manifest.Schema.Columns[1].TypeText)
	assert.Regexp(t, `^[0-9]+\.[0-9]{2}$`, res.Result.DataArray[0][1], "decimals keep their two places")
}

// What the workspace refuses, and how: the statement FAILED with Unity Catalog's error, or the API answering 403.
func TestRefusals(t *testing.T) {
	t.Parallel()
	ws := start(t)
	ctx := t.Context()

	noSelect := client(t, ws, emulated.M2MToken(t, ws, "no-access-service", "all-apis"))
	_, err := noSelect.StatementExecution.ExecuteAndWait(ctx, sql.ExecuteStatementRequest{WarehouseId: warehouseID,
		Statement: ordersSQL})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "FAILED: BAD_REQUEST [INSUFFICIENT_PERMISSIONS]")
	assert.Contains(t, err.Error(), "does not have SELECT on Table 'samples.sales.orders'")

	dev := userClient(t, ws, "dev@example.com", "sql")
	for statement, want := range map[string]string{
		"SELECT * FROM samples.sales.nope":                "[TABLE_OR_VIEW_NOT_FOUND]",
		"SELECT * FROM orders":                            "[TABLE_OR_VIEW_NOT_FOUND] The table or view `samples`.`default`.`orders`",
		"SELECT * FROM __uc_storage.x.orders":             "[TABLE_OR_VIEW_NOT_FOUND]",
		"SELECT * FROM information_schema.tables":         "[TABLE_OR_VIEW_NOT_FOUND]",
		"SELECT * FROM read_csv('/etc/passwd')":           "[UNRESOLVED_ROUTINE]",
		"SELECT * FROM '/etc/passwd'":                     "[TABLE_OR_VIEW_NOT_FOUND]",
		"DELETE FROM samples.sales.orders":                "[UNSUPPORTED_FEATURE]",
		"SELEC 1":                                         "[PARSE_SYNTAX_ERROR]",
		"SELECT 1; SELECT 2":                              "[MULTIPLE_STATEMENTS]",
		"SELECT :missing":                                 "[UNBOUND_SQL_PARAMETER]",
		"SELECT no_such_column FROM samples.sales.orders": "no_such_column",
	} {
		_, err := dev.StatementExecution.ExecuteAndWait(ctx, sql.ExecuteStatementRequest{WarehouseId: warehouseID,
			Statement: statement})
		require.Error(t, err, statement)
		assert.Contains(t, err.Error(), want, statement)
	}

	// A token without the sql scope is refused by the API itself, 403, naming the scope.
	filesOnly := userClient(t, ws, "dev@example.com", "file.files")
	_, err = filesOnly.StatementExecution.ExecuteStatement(ctx, sql.ExecuteStatementRequest{WarehouseId: warehouseID,
		Statement: "SELECT 1"})
	var apiErr *apierr.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusForbidden, apiErr.StatusCode)
	assert.Contains(t, apiErr.Message, "does not have required scopes: sql")

	// Without CAN_USE on the warehouse: 403 before any statement runs.
	_, err = dev.Warehouses.SetPermissions(ctx, sql.WarehousePermissionsRequest{WarehouseId: warehouseID,
		AccessControlList: []sql.WarehouseAccessControlRequest{{UserName: "dev@example.com", PermissionLevel: sql.WarehousePermissionLevelCanManage}}})
	require.NoError(t, err)
	ana := userClient(t, ws, "ana@example.com", "sql")
	_, err = ana.StatementExecution.ExecuteStatement(ctx, sql.ExecuteStatementRequest{WarehouseId: warehouseID, Statement: "SELECT 1"})
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode, "a warehouse one may not even view is not found")

	for _, bad := range []sql.ExecuteStatementRequest{
		{WarehouseId: warehouseID, Statement: "SELECT 1", Disposition: sql.DispositionExternalLinks},
		{WarehouseId: warehouseID, Statement: "SELECT 1", Format: sql.FormatArrowStream},
		{WarehouseId: warehouseID, Statement: "SELECT 1", WaitTimeout: "3s"},
		{WarehouseId: warehouseID, Statement: ""},
	} {
		_, err = dev.StatementExecution.ExecuteStatement(ctx, bad)
		require.ErrorAs(t, err, &apiErr, "%+v", bad)
		assert.Equal(t, http.StatusBadRequest, apiErr.StatusCode, "%+v", bad)
	}
}

// Grants change through the Grants API and apply to the next statement.
func TestGrantThenSelect(t *testing.T) {
	t.Parallel()
	ws := start(t)
	ctx := t.Context()
	noAccess := client(t, ws, emulated.M2MToken(t, ws, "no-access-service", "all-apis"))
	_, err := noAccess.StatementExecution.ExecuteAndWait(ctx, sql.ExecuteStatementRequest{WarehouseId: warehouseID, Statement: ordersSQL})
	require.ErrorContains(t, err, "INSUFFICIENT_PERMISSIONS")

	owner := client(t, ws, emulated.UserToken(t, ws, "dev@example.com", "all-apis"))
	sp := ws.State().ServicePrincipals["no-access-service"].ClientID
	_, err = owner.Grants.Update(ctx, catalog.UpdatePermissions{SecurableType: "table", FullName: "samples.sales.orders",
		Changes: []catalog.PermissionsChange{{Principal: sp, Add: []catalog.Privilege{catalog.PrivilegeSelect}}}})
	require.NoError(t, err)
	res := run(t, noAccess, ordersSQL)
	assert.Equal(t, []string{"0", "0", "0"}, res.Result.DataArray[0], "SELECT granted, but the row filter shows it none")
}

// wait_timeout 0s answers at once; the statement is then polled, canceled, or fetched chunk by chunk.
func TestAsynchronousStatements(t *testing.T) {
	t.Parallel()
	ws := start(t)
	ctx := t.Context()
	dev := userClient(t, ws, "dev@example.com", "sql")

	res, err := dev.StatementExecution.ExecuteStatement(ctx, sql.ExecuteStatementRequest{WarehouseId: warehouseID,
		Statement: "SELECT repeat('x', 1000) AS s FROM range(10000)", WaitTimeout: "0s"})
	require.NoError(t, err)
	require.Contains(t, []sql.StatementState{sql.StatementStatePending, sql.StatementStateRunning, sql.StatementStateSucceeded},
		res.Status.State)
	var done *sql.StatementResponse
	require.Eventually(t, func() bool {
		done, err = dev.StatementExecution.GetStatementByStatementId(ctx, res.StatementId)
		return err == nil && done.Status.State == sql.StatementStateSucceeded
	}, time.Minute, 10*time.Millisecond)
	m := done.Manifest
	assert.EqualValues(t, 10000, m.TotalRowCount)
	require.Greater(t, m.TotalChunkCount, 1, "10 MB of results come in chunks")
	rows := len(done.Result.DataArray)
	for n := 1; n < m.TotalChunkCount; n++ {
		chunk, err := dev.StatementExecution.GetStatementResultChunkN(ctx, sql.GetStatementResultChunkNRequest{
			StatementId: res.StatementId, ChunkIndex: n})
		require.NoError(t, err)
		assert.EqualValues(t, rows, chunk.RowOffset)
		rows += len(chunk.DataArray)
	}
	assert.Equal(t, 10000, rows)

	// Another principal cannot read it.
	ana := userClient(t, ws, "ana@example.com", "sql")
	_, err = ana.StatementExecution.GetStatementByStatementId(ctx, res.StatementId)
	assert.True(t, apierr.IsMissing(err), "%v", err)

	// A long statement, canceled.
	long, err := dev.StatementExecution.ExecuteStatement(ctx, sql.ExecuteStatementRequest{WarehouseId: warehouseID,
		Statement: "SELECT count(*) FROM range(1000000000000)", WaitTimeout: "0s"})
	require.NoError(t, err)
	require.NoError(t, dev.StatementExecution.CancelExecution(ctx, sql.CancelExecutionRequest{StatementId: long.StatementId}))
	require.Eventually(t, func() bool {
		got, err := dev.StatementExecution.GetStatementByStatementId(ctx, long.StatementId)
		return err == nil && got.Status.State == sql.StatementStateCanceled
	}, time.Minute, 10*time.Millisecond)

	// row_limit cuts and says so.
	cut, err := dev.StatementExecution.ExecuteAndWait(ctx, sql.ExecuteStatementRequest{WarehouseId: warehouseID,
		Statement: "SELECT * FROM range(100)", RowLimit: 7})
	require.NoError(t, err)
	assert.Len(t, cut.Result.DataArray, 7)
	assert.True(t, cut.Manifest.Truncated)
}

// A stopped warehouse starts for the statement sent to it, and the SDK's waiters see the transitions.
func TestWarehouseLifecycle(t *testing.T) {
	t.Parallel()
	ws := start(t)
	ctx := t.Context()
	dev := userClient(t, ws, "dev@example.com", "sql")
	list, err := dev.Warehouses.ListAll(ctx, sql.ListWarehousesRequest{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, sql.StateRunning, list[0].State)

	stopping, err := dev.Warehouses.Stop(ctx, sql.StopRequest{Id: warehouseID})
	require.NoError(t, err)
	stopped, err := stopping.Get()
	require.NoError(t, err)
	assert.Equal(t, sql.StateStopped, stopped.State)

	res := run(t, dev, "SELECT 42")
	assert.Equal(t, "42", res.Result.DataArray[0][0], "the statement started the warehouse")
	got, err := dev.Warehouses.GetById(ctx, warehouseID)
	require.NoError(t, err)
	assert.Equal(t, sql.StateRunning, got.State)

	// ana may use the warehouse but not stop it.
	ana := userClient(t, ws, "ana@example.com", "sql")
	_, err = ana.Warehouses.Stop(ctx, sql.StopRequest{Id: warehouseID})
	var apiErr *apierr.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusForbidden, apiErr.StatusCode)

	perms, err := dev.Warehouses.GetPermissions(ctx, sql.GetWarehousePermissionsRequest{WarehouseId: warehouseID})
	require.NoError(t, err)
	var levels []string
	for _, a := range perms.AccessControlList {
		levels = append(levels, fmt.Sprintf("%s%s%s=%s", a.UserName, a.GroupName, a.ServicePrincipalName, a.AllPermissions[0].PermissionLevel))
	}
	assert.Contains(t, levels, "users=CAN_USE")
	assert.Contains(t, levels, "dev@example.com=CAN_MANAGE")
	apiSP := ws.State().ServicePrincipals["api-app"].ClientID
	assert.Contains(t, levels, apiSP+"=CAN_USE", "api-app's sql_warehouse resource granted its service principal")
}

// An app created through the Apps API with a warehouse resource: who adds it must manage the warehouse, and the
// platform grants the app's service principal CAN_USE, with which it runs statements.
func TestAppWithAWarehouseResource(t *testing.T) {
	t.Parallel()
	ws := start(t)
	ctx := t.Context()
	owner := client(t, ws, emulated.UserToken(t, ws, "dev@example.com", "all-apis"))
	wait, err := owner.Apps.Create(ctx, apps.CreateAppRequest{App: apps.App{Name: "sales-app", Resources: []apps.AppResource{
		{Name: "sql-warehouse", SqlWarehouse: &apps.AppResourceSqlWarehouse{Id: warehouseID, Permission: "CAN_USE"}},
		{Name: "orders", UcSecurable: &apps.AppResourceUcSecurable{SecurableFullName: "samples.sales.orders",
			SecurableType: "TABLE", Permission: "SELECT"}},
	}}})
	require.NoError(t, err)
	app := wait.Response
	sp := ws.State().ServicePrincipals[app.ServicePrincipalName]
	spClient := client(t, ws, emulated.M2MToken(t, ws, app.ServicePrincipalName, "all-apis"))
	res := run(t, spClient, "SELECT current_user(), count(*) FROM samples.sales.orders")
	assert.Equal(t, []string{sp.ClientID, "0"}, res.Result.DataArray[0], "granted SELECT; the row filter shows it no rows")

	ana := client(t, ws, emulated.UserToken(t, ws, "ana@example.com", "all-apis"))
	_, err = ana.Apps.Create(ctx, apps.CreateAppRequest{App: apps.App{Name: "anas-app", Resources: []apps.AppResource{
		{Name: "wh", SqlWarehouse: &apps.AppResourceSqlWarehouse{Id: warehouseID, Permission: "CAN_USE"}}}}})
	var apiErr *apierr.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusForbidden, apiErr.StatusCode, "ana does not manage the warehouse")
}
