package workspace

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/databricks/databricks-sdk-go/service/catalog"
	"github.com/databricks/databricks-sdk-go/service/dashboards"
	"github.com/databricks/databricks-sdk-go/service/files"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/databricks/databricks-sdk-go/service/sql"
	sdkworkspace "github.com/databricks/databricks-sdk-go/service/workspace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The data APIs that need no SQL engine, with databricks-sdk-go's own clients: the Files API on volumes, Unity
// Catalog, Genie and secrets. The statements and the app reading data are tested with the engine, in sqltest.

// userToken is a token of a model user with scopes, signed by the workspace.
func userToken(t *testing.T, w *Workspace, user string, scopes ...string) string {
	t.Helper()
	return issueAt(t, w, time.Now(), user, scopes...)
}

const reports = "/Volumes/samples/sales/reports"

func TestFilesInVolumes(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	ctx := t.Context()
	dev := sdkClient(t, w, userToken(t, w, "dev@example.com", "file.files"))
	ana := sdkClient(t, w, userToken(t, w, "ana@example.com", "file.files"))
	outsider := sdkClient(t, w, userToken(t, w, "outsider@example.com", "all-apis"))

	// The model's file, then dev (the owner) writes one in a new folder: parents are made, as the Files API does.
	entries, err := ana.Files.ListDirectoryContentsAll(ctx, files.ListDirectoryContentsRequest{DirectoryPath: reports})
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "revenue-by-quarter.csv", entries[0].Name)
	assert.Equal(t, reports+"/revenue-by-quarter.csv", entries[0].Path)
	assert.Positive(t, entries[0].FileSize)
	require.NoError(t, dev.Files.Upload(ctx, files.UploadRequest{FilePath: reports + "/2027/plan.txt",
		Contents: io.NopCloser(strings.NewReader("next year"))}))
	got, err := ana.Files.Download(ctx, files.DownloadRequest{FilePath: reports + "/2027/plan.txt"})
	require.NoError(t, err)
	body, _ := io.ReadAll(got.Contents)
	assert.Equal(t, "next year", string(body))
	meta, err := ana.Files.GetMetadata(ctx, files.GetMetadataRequest{FilePath: reports + "/2027/plan.txt"})
	require.NoError(t, err)
	assert.EqualValues(t, 9, meta.ContentLength)
	require.NoError(t, ana.Files.GetDirectoryMetadata(ctx, files.GetDirectoryMetadataRequest{DirectoryPath: reports + "/2027"}))

	// No overwrite unless asked; a folder that is not empty stays.
	err = dev.Files.Upload(ctx, files.UploadRequest{FilePath: reports + "/2027/plan.txt", Contents: io.NopCloser(strings.NewReader("x"))})
	assert.Equal(t, http.StatusConflict, apiError(t, err).StatusCode)
	require.NoError(t, dev.Files.Upload(ctx, files.UploadRequest{FilePath: reports + "/2027/plan.txt", Overwrite: true,
		ForceSendFields: []string{"Overwrite"}, Contents: io.NopCloser(strings.NewReader("x"))}))
	err = dev.Files.DeleteDirectory(ctx, files.DeleteDirectoryRequest{DirectoryPath: reports + "/2027"})
	assert.Equal(t, http.StatusConflict, apiError(t, err).StatusCode)
	require.NoError(t, dev.Files.Delete(ctx, files.DeleteFileRequest{FilePath: reports + "/2027/plan.txt"}))
	require.NoError(t, dev.Files.DeleteDirectory(ctx, files.DeleteDirectoryRequest{DirectoryPath: reports + "/2027"}))

	// ana reads (READ VOLUME through the group sales) but may not write; outsider does not even see the volume.
	err = ana.Files.Upload(ctx, files.UploadRequest{FilePath: reports + "/x.txt", Contents: io.NopCloser(strings.NewReader("x"))})
	e := apiError(t, err)
	assert.Equal(t, http.StatusForbidden, e.StatusCode)
	assert.Contains(t, e.Message, "does not have WRITE VOLUME on Volume 'samples.sales.reports'")
	_, err = outsider.Files.ListDirectoryContentsAll(ctx, files.ListDirectoryContentsRequest{DirectoryPath: reports})
	assert.Equal(t, http.StatusNotFound, apiError(t, err).StatusCode)

	// Scopes, and paths outside a volume.
	noScope := sdkClient(t, w, userToken(t, w, "dev@example.com", "sql"))
	_, err = noScope.Files.ListDirectoryContentsAll(ctx, files.ListDirectoryContentsRequest{DirectoryPath: reports})
	e = apiError(t, err)
	assert.Equal(t, http.StatusForbidden, e.StatusCode)
	assert.Contains(t, e.Message, "does not have required scopes: file.files")
	token := userToken(t, w, "dev@example.com", "file.files")
	for _, p := range []string{"/Volumes/samples/sales/reports/../../x", "/Workspace/Users/dev@example.com/x", "/Volumes/samples"} {
		resp, body := call(t, http.MethodGet, w.URL()+PathFsFiles+p, bearer(token))
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %s", p, body)
	}
	// A range of a file, as the Files API serves it.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.URL()+PathFsFiles+reports+"/revenue-by-quarter.csv", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Range", "bytes=0-6")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, "quarter", string(part))
}

func TestUnityCatalogAPIs(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	ctx := t.Context()
	dev := sdkClient(t, w, userToken(t, w, "dev@example.com", "all-apis"))
	ana := sdkClient(t, w, userToken(t, w, "ana@example.com", "all-apis"))
	outsider := sdkClient(t, w, userToken(t, w, "outsider@example.com", "all-apis"))

	cats, err := ana.Catalogs.ListAll(ctx, catalog.ListCatalogsRequest{})
	require.NoError(t, err)
	require.Len(t, cats, 1)
	assert.Equal(t, "samples", cats[0].Name)
	schemas, err := ana.Schemas.ListAll(ctx, catalog.ListSchemasRequest{CatalogName: "samples"})
	require.NoError(t, err)
	assert.Equal(t, "samples.sales", schemas[0].FullName)
	table, err := ana.Tables.GetByFullName(ctx, "samples.sales.orders")
	require.NoError(t, err)
	assert.Len(t, table.Columns, 9)
	assert.Equal(t, "DECIMAL(10,2)", table.Columns[8].TypeText)
	require.NotNil(t, table.RowFilter)
	volumes, err := ana.Volumes.ListAll(ctx, catalog.ListVolumesRequest{CatalogName: "samples", SchemaName: "sales"})
	require.NoError(t, err)
	assert.Equal(t, "samples.sales.reports", volumes[0].FullName)

	// outsider holds USE CATALOG and USE SCHEMA (account users) but no SELECT: the table is hidden.
	tables, err := outsider.Tables.ListAll(ctx, catalog.ListTablesRequest{CatalogName: "samples", SchemaName: "sales"})
	require.NoError(t, err)
	assert.Empty(t, tables)
	_, err = outsider.Tables.GetByFullName(ctx, "samples.sales.orders")
	e := apiError(t, err)
	assert.Equal(t, http.StatusNotFound, e.StatusCode)
	assert.Equal(t, "TABLE_DOES_NOT_EXIST", e.ErrorCode)

	// The owner grants; ana, who does not manage the table, may not.
	_, err = ana.Grants.Update(ctx, catalog.UpdatePermissions{SecurableType: "table", FullName: "samples.sales.orders",
		Changes: []catalog.PermissionsChange{{Principal: "outsider@example.com", Add: []catalog.Privilege{catalog.PrivilegeSelect}}}})
	assert.Equal(t, http.StatusForbidden, apiError(t, err).StatusCode)
	_, err = dev.Grants.Update(ctx, catalog.UpdatePermissions{SecurableType: "table", FullName: "samples.sales.orders",
		Changes: []catalog.PermissionsChange{{Principal: "outsider@example.com", Add: []catalog.Privilege{catalog.PrivilegeSelect}}}})
	require.NoError(t, err)
	tables, err = outsider.Tables.ListAll(ctx, catalog.ListTablesRequest{CatalogName: "samples", SchemaName: "sales"})
	require.NoError(t, err)
	assert.Len(t, tables, 1, "SELECT makes the table visible")
	effective, err := dev.Grants.GetEffective(ctx, catalog.GetEffectiveRequest{SecurableType: "table",
		FullName: "samples.sales.orders", Principal: "outsider@example.com"})
	require.NoError(t, err)
	require.Len(t, effective.PrivilegeAssignments, 1)
	assert.Equal(t, catalog.PrivilegeSelect, effective.PrivilegeAssignments[0].Privileges[0].Privilege)

	// The app's resources granted api-app's service principal what the platform grants.
	sp := w.State().ServicePrincipals["api-app"].ClientID
	effective, err = dev.Grants.GetEffective(ctx, catalog.GetEffectiveRequest{SecurableType: "volume",
		FullName: "samples.sales.reports", Principal: sp})
	require.NoError(t, err)
	var privileges []string
	for _, p := range effective.PrivilegeAssignments[0].Privileges {
		privileges = append(privileges, string(p.Privilege)+"<"+p.InheritedFromName)
	}
	assert.ElementsMatch(t, []string{"READ_VOLUME<", "USE_SCHEMA<samples.sales", "USE_CATALOG<samples"}, privileges)

	// The REST APIs' scopes: a token with sql only reads no catalog.
	_, err = sdkClient(t, w, userToken(t, w, "dev@example.com", "sql")).Catalogs.ListAll(ctx, catalog.ListCatalogsRequest{})
	assert.Equal(t, http.StatusForbidden, apiError(t, err).StatusCode)
}

func TestGenieSpaces(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	ctx := t.Context()
	const space = "01f0a1b2c3d4e5f60718293a4b5c6d7e"
	ana := sdkClient(t, w, userToken(t, w, "ana@example.com", "dashboards.genie"))
	list, err := ana.Genie.ListSpaces(ctx, dashboards.GenieListSpacesRequest{})
	require.NoError(t, err)
	require.Len(t, list.Spaces, 1)
	assert.Equal(t, "Sales orders", list.Spaces[0].Title)
	got, err := ana.Genie.GetSpace(ctx, dashboards.GenieGetSpaceRequest{SpaceId: space})
	require.NoError(t, err)
	assert.Equal(t, "5b3f9c1e7a2d4e60", got.WarehouseId)

	outsider := sdkClient(t, w, userToken(t, w, "outsider@example.com", "dashboards.genie"))
	list, err = outsider.Genie.ListSpaces(ctx, dashboards.GenieListSpacesRequest{})
	require.NoError(t, err)
	assert.Empty(t, list.Spaces)

	_, err = ana.Genie.StartConversation(ctx, dashboards.GenieStartConversationMessageRequest{SpaceId: space, Content: "?"})
	e := apiError(t, err)
	assert.Equal(t, http.StatusNotImplemented, e.StatusCode)
	assert.Contains(t, e.Message, "/start-conversation is not emulated")
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	ctx := t.Context()
	dev := sdkClient(t, w, userToken(t, w, "dev@example.com", "all-apis"))
	ana := sdkClient(t, w, userToken(t, w, "ana@example.com", "all-apis"))

	scopes, err := ana.Secrets.ListScopesAll(ctx)
	require.NoError(t, err)
	require.Len(t, scopes, 1)
	assert.Equal(t, "sales-api", scopes[0].Name)
	got, err := dev.Secrets.GetSecret(ctx, sdkworkspace.GetSecretRequest{Scope: "sales-api", Key: "partner-api-key"})
	require.NoError(t, err)
	value, _ := base64.StdEncoding.DecodeString(got.Value)
	assert.Equal(t, "emulator-secret-partner-api-key", string(value))

	_, err = ana.Secrets.GetSecret(ctx, sdkworkspace.GetSecretRequest{Scope: "sales-api", Key: "partner-api-key"})
	assert.Equal(t, http.StatusForbidden, apiError(t, err).StatusCode)
	require.NoError(t, dev.Secrets.PutAcl(ctx, sdkworkspace.PutAcl{Scope: "sales-api", Principal: "ana@example.com",
		Permission: sdkworkspace.AclPermissionRead}))
	_, err = ana.Secrets.GetSecret(ctx, sdkworkspace.GetSecretRequest{Scope: "sales-api", Key: "partner-api-key"})
	require.NoError(t, err)
	err = ana.Secrets.PutSecret(ctx, sdkworkspace.PutSecret{Scope: "sales-api", Key: "k", StringValue: "v"})
	assert.Equal(t, http.StatusForbidden, apiError(t, err).StatusCode, "READ does not write")

	require.NoError(t, ana.Secrets.CreateScope(ctx, sdkworkspace.CreateScope{Scope: "anas"}))
	require.NoError(t, ana.Secrets.PutSecret(ctx, sdkworkspace.PutSecret{Scope: "anas", Key: "k", StringValue: "v"}))
	err = dev.Secrets.CreateScope(ctx, sdkworkspace.CreateScope{Scope: "anas"})
	assert.Equal(t, http.StatusConflict, apiError(t, err).StatusCode)
	keys, err := dev.Secrets.ListSecretsAll(ctx, sdkworkspace.ListSecretsRequest{Scope: "anas"})
	require.NoError(t, err, "dev is an admin: MANAGE on every scope")
	assert.Equal(t, "k", keys[0].Key)
}

// Each kind of app resource resolves through valueFrom as on the platform, and adding one grants the app's
// service principal its permission.
func TestAppResourcesResolveAndGrant(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	ctx := t.Context()
	dev := sdkClient(t, w, managerToken(t, w))
	_, err := dev.Apps.Create(ctx, apps.CreateAppRequest{App: apps.App{Name: "data-app", Resources: []apps.AppResource{
		{Name: "wh", SqlWarehouse: &apps.AppResourceSqlWarehouse{Id: "5b3f9c1e7a2d4e60", Permission: "CAN_USE"}},
		{Name: "vol", UcSecurable: &apps.AppResourceUcSecurable{SecurableFullName: "samples.sales.reports",
			SecurableType: "VOLUME", Permission: "WRITE_VOLUME"}},
		{Name: "tbl", UcSecurable: &apps.AppResourceUcSecurable{SecurableFullName: "samples.sales.orders",
			SecurableType: "TABLE", Permission: "SELECT"}},
		{Name: "space", GenieSpace: &apps.AppResourceGenieSpace{Name: "space", SpaceId: "01f0a1b2c3d4e5f60718293a4b5c6d7e",
			Permission: "CAN_RUN"}},
		{Name: "key", Secret: &apps.AppResourceSecret{Scope: "sales-api", Key: "partner-api-key", Permission: "READ"}},
		{Name: "api", App: &apps.AppResourceApp{Name: "api-app", Permission: "CAN_USE"}},
	}}})
	require.NoError(t, err)

	yaml := filepath.Join(t.TempDir(), "app.yaml")
	require.NoError(t, os.WriteFile(yaml, []byte(`command: ["true"]
env:
  - {name: WAREHOUSE_ID, valueFrom: wh}
  - {name: VOLUME, valueFrom: vol}
  - {name: TABLE, valueFrom: tbl}
  - {name: SPACE, valueFrom: space}
  - {name: KEY, valueFrom: key}
  - {name: TARGET, valueFrom: api}
`), 0o600))
	launch, err := w.ReadAppYAML("data-app", yaml)
	require.NoError(t, err)
	assert.Equal(t, []string{"WAREHOUSE_ID=5b3f9c1e7a2d4e60", "VOLUME=/Volumes/samples/sales/reports",
		"TABLE=samples.sales.orders", "SPACE=01f0a1b2c3d4e5f60718293a4b5c6d7e", "KEY=emulator-secret-partner-api-key",
		"TARGET=api-app"}, launch.Env)

	// The grants, used as the app's service principal.
	spToken := m2mToken(t, w, "data-app")
	sp := sdkClient(t, w, spToken)
	require.NoError(t, sp.Files.Upload(ctx, files.UploadRequest{FilePath: reports + "/from-the-app.txt",
		Contents: io.NopCloser(bytes.NewReader([]byte("hi")))}), "WRITE_VOLUME")
	_, err = sp.Secrets.GetSecret(ctx, sdkworkspace.GetSecretRequest{Scope: "sales-api", Key: "partner-api-key"})
	assert.NoError(t, err, "READ on the scope")
	_, err = sp.Genie.GetSpace(ctx, dashboards.GenieGetSpaceRequest{SpaceId: "01f0a1b2c3d4e5f60718293a4b5c6d7e"})
	assert.NoError(t, err, "CAN_RUN on the space")
	list, err := sp.Warehouses.ListAll(ctx, sql.ListWarehousesRequest{})
	require.NoError(t, err)
	assert.Len(t, list, 1)

	// A resource its creator may not manage, or naming nothing, is refused.
	ana := sdkClient(t, w, userToken(t, w, "ana@example.com", "all-apis"))
	for name, res := range map[string]apps.AppResource{
		"a volume ana only reads": {Name: "v", UcSecurable: &apps.AppResourceUcSecurable{SecurableFullName: "samples.sales.reports",
			SecurableType: "VOLUME", Permission: "READ_VOLUME"}},
		"a secret scope": {Name: "s", Secret: &apps.AppResourceSecret{Scope: "sales-api", Key: "partner-api-key", Permission: "READ"}},
		"a Genie space":  {Name: "g", GenieSpace: &apps.AppResourceGenieSpace{SpaceId: "01f0a1b2c3d4e5f60718293a4b5c6d7e", Permission: "CAN_RUN"}},
	} {
		_, err := ana.Apps.Create(ctx, apps.CreateAppRequest{App: apps.App{Name: "anas-app", Resources: []apps.AppResource{res}}})
		assert.Equal(t, http.StatusForbidden, apiError(t, err).StatusCode, name)
	}
	_, err = dev.Apps.Create(ctx, apps.CreateAppRequest{App: apps.App{Name: "bad-app", Resources: []apps.AppResource{
		{Name: "wh", SqlWarehouse: &apps.AppResourceSqlWarehouse{Id: "0000000000000000", Permission: "CAN_USE"}}}}})
	assert.Equal(t, http.StatusBadRequest, apiError(t, err).StatusCode)
}

// Without a SQL engine (a workspace started in Go without Options.SQLEngine, or an emulator built without cgo),
// statements answer 501 and say why; everything else works.
func TestStatementsWithoutAnEngine(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	c := sdkClient(t, w, userToken(t, w, "dev@example.com", "sql"))
	_, err := c.StatementExecution.ExecuteStatement(t.Context(), sql.ExecuteStatementRequest{WarehouseId: "5b3f9c1e7a2d4e60",
		Statement: "SELECT 1"})
	e := apiError(t, err)
	assert.Equal(t, http.StatusNotImplemented, e.StatusCode)
	assert.Contains(t, e.Message, "without a SQL engine")
}

func TestDataModelRefusals(t *testing.T) {
	t.Parallel()
	base := string(defaultYAML)
	for name, tc := range map[string]struct{ from, to, mentions string }{
		"an unknown group member":   {"users: [dev@example.com, ana@example.com]", "users: [dev@example.com, nobody@example.com]", `"nobody@example.com" is not in users`},
		"an unknown privilege":      {"privileges: [SELECT]", "privileges: [SELEC]", `unknown privilege "SELEC"`},
		"a bad column type":         {"{name: quantity, type: INT}", "{name: quantity, type: INTEGRAL}", `unsupported type "INTEGRAL"`},
		"a mask of no column":       {"customer_email: >-", "no_column: >-", `"no_column" is not a column`},
		"a resource naming nothing": {"sql_warehouse: 5b3f9c1e7a2d4e60", "sql_warehouse: 0000000000000000", `sql warehouse "0000000000000000" is not in the model`},
		"a missing CSV":             {"data: orders.csv", "data: nope.csv", "nope.csv"},
		"an engine's catalog name":  {"  - name: samples\n", "  - name: system\n", `catalog "system"`},
	} {
		t.Run(name, func(t *testing.T) {
			require.Contains(t, base, tc.from)
			_, err := ParseConfig([]byte(strings.Replace(base, tc.from, tc.to, 1)), "m.yaml")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.mentions)
		})
	}
}

// The data parts last with the workspace: grants, secrets, a file in a volume, a warehouse stopped and its
// permissions, and a Genie space's permissions are as they were after a restart.
func TestRestartKeepsTheData(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	w, _ := startWorkspace(t, Options{DataDir: data, WarehouseTransition: time.Millisecond})
	ctx := t.Context()
	dev := sdkClient(t, w, userToken(t, w, "dev@example.com", "all-apis"))
	_, err := dev.Grants.Update(ctx, catalog.UpdatePermissions{SecurableType: "table", FullName: "samples.sales.orders",
		Changes: []catalog.PermissionsChange{{Principal: "outsider@example.com", Add: []catalog.Privilege{catalog.PrivilegeSelect}}}})
	require.NoError(t, err)
	require.NoError(t, dev.Secrets.PutSecret(ctx, sdkworkspace.PutSecret{Scope: "sales-api", Key: "added", StringValue: "kept"}))
	require.NoError(t, dev.Files.Upload(ctx, files.UploadRequest{FilePath: reports + "/kept.txt",
		Contents: io.NopCloser(strings.NewReader("kept"))}))
	stopping, err := dev.Warehouses.Stop(ctx, sql.StopRequest{Id: "5b3f9c1e7a2d4e60"})
	require.NoError(t, err)
	_, err = stopping.Get()
	require.NoError(t, err)
	_, err = dev.Warehouses.UpdatePermissions(ctx, sql.WarehousePermissionsRequest{WarehouseId: "5b3f9c1e7a2d4e60",
		AccessControlList: []sql.WarehouseAccessControlRequest{{UserName: "outsider@example.com",
			PermissionLevel: sql.WarehousePermissionLevelCanManage}}})
	require.NoError(t, err)
	_, err = dev.Permissions.Update(ctx, iam.UpdateObjectPermissions{RequestObjectType: "genie",
		RequestObjectId:   "01f0a1b2c3d4e5f60718293a4b5c6d7e",
		AccessControlList: []iam.AccessControlRequest{{UserName: "outsider@example.com", PermissionLevel: "CAN_RUN"}}})
	require.NoError(t, err)
	require.NoError(t, w.Close())

	w, _ = startWorkspace(t, Options{DataDir: data})
	outsider := sdkClient(t, w, userToken(t, w, "outsider@example.com", "all-apis"))
	_, err = outsider.Tables.GetByFullName(ctx, "samples.sales.orders")
	assert.NoError(t, err, "the grant of SELECT is kept")
	got, err := sdkClient(t, w, userToken(t, w, "dev@example.com", "all-apis")).Secrets.GetSecret(ctx,
		sdkworkspace.GetSecretRequest{Scope: "sales-api", Key: "added"})
	require.NoError(t, err, "the secret is kept")
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("kept")), got.Value)
	wh, err := outsider.Warehouses.GetById(ctx, "5b3f9c1e7a2d4e60")
	require.NoError(t, err, "the warehouse permission is kept")
	assert.Equal(t, sql.StateStopped, wh.State, "and its state")
	spaces, err := outsider.Genie.ListSpaces(ctx, dashboards.GenieListSpacesRequest{})
	require.NoError(t, err)
	assert.Len(t, spaces.Spaces, 1, "the Genie space's permission is kept")
	_, err = outsider.Files.GetMetadata(ctx, files.GetMetadataRequest{FilePath: reports + "/kept.txt"})
	assert.Error(t, err, "outsider may not read the volume")
	meta, err := sdkClient(t, w, userToken(t, w, "ana@example.com", "file.files")).Files.GetMetadata(ctx,
		files.GetMetadataRequest{FilePath: reports + "/kept.txt"})
	require.NoError(t, err, "the file in the volume is kept")
	assert.EqualValues(t, 4, meta.ContentLength)
}
