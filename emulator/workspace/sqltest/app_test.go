package sqltest

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/databricks/databricks-sdk-go/service/catalog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

func TestMain(m *testing.M) { os.Exit(testkit.Run(m)) }

// The documentation page's custom scopes, exactly: what a token needs for every endpoint of api-app.
const pageScopes = "sql file.files dashboards.genie"

// withApp starts the workspace with its engine and app/ behind api-app's proxy, as the platform runs it: app.yaml's
// WAREHOUSE_ID and REPORTS_VOLUME resolved from the app's resources.
func withApp(t *testing.T) *workspace.Workspace {
	t.Helper()
	ws := start(t)
	app := testkit.StartApp(t, testkit.BuildRace(t, "app"), emulated.APIAppEnv(t, ws))
	require.NoError(t, ws.SetUpstream("api-app", app.URL))
	return ws
}

// get calls the app through its proxy with a bearer token and decodes its JSON answer.
func get(t *testing.T, ws *workspace.Workspace, token, path string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ws.AppURL("api-app")+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(body, &out), string(body))
	} else {
		out = map[string]any{"body": string(body)}
	}
	return resp.StatusCode, out
}

// The documentation page's flow, with its example scopes, yields a token every endpoint of the app accepts; two
// users see different orders through the same endpoint, and the app's own identity a third view.
func TestEveryEndpointWithThePagesScopes(t *testing.T) {
	t.Parallel()
	ws := withApp(t)
	ana := emulated.UserToken(t, ws, "ana@example.com", pageScopes)
	dev := emulated.UserToken(t, ws, "dev@example.com", pageScopes)
	apiSP := ws.State().ServicePrincipals["api-app"].ClientID

	for _, path := range []string{"/api/whoami", "/api/me", "/api/orders", "/api/reports",
		"/api/reports/revenue-by-quarter.csv", "/api/genie/spaces"} {
		status, body := get(t, ws, ana, path)
		assert.Equal(t, http.StatusOK, status, "%s: %v", path, body)
	}

	_, me := get(t, ws, ana, "/api/me")
	assert.Equal(t, "ana@example.com", me["on_behalf_of_user"].(map[string]any)["user_name"])
	assert.Equal(t, apiSP, me["app_service_principal"].(map[string]any)["user_name"])

	orders := func(token string) (user, app map[string]any) {
		status, body := get(t, ws, token, "/api/orders?region=EMEA&limit=100")
		require.Equal(t, http.StatusOK, status, "%v", body)
		return body["on_behalf_of_user"].(map[string]any), body["app_service_principal"].(map[string]any)
	}
	anaView, appView := orders(ana)
	devView, _ := orders(dev)
	assert.Equal(t, "ana@example.com", anaView["principal"])
	assert.Equal(t, apiSP, appView["principal"])
	anaRows, devRows := anaView["rows"].([]any), devView["rows"].([]any)
	require.NotEmpty(t, anaRows)
	assert.Less(t, len(anaRows), len(devRows), "the row filter shows ana her own orders only")
	for _, row := range anaRows {
		r := row.(map[string]any)
		assert.Equal(t, "ana@example.com", r["sales_rep"])
		assert.True(t, strings.HasPrefix(r["customer_email"].(string), "***@"), "the mask hides emails from her")
	}
	assert.False(t, strings.HasPrefix(devRows[0].(map[string]any)["customer_email"].(string), "***@"),
		"dev, a sales lead, sees through the mask")
	assert.Equal(t, devView["visible"], appView["visible"], "the app's identity sees every order of the region")
	assert.True(t, strings.HasPrefix(appView["rows"].([]any)[0].(map[string]any)["customer_email"].(string), "***@"),
		"but not the emails")

	_, reports := get(t, ws, ana, "/api/reports")
	assert.Equal(t, "/Volumes/samples/sales/reports", reports["volume"])
	assert.Contains(t, reports["reports"].([]any)[0].(map[string]any)["name"], "revenue-by-quarter.csv")
	_, file := get(t, ws, ana, "/api/reports/revenue-by-quarter.csv")
	assert.True(t, strings.HasPrefix(file["body"].(string), "quarter,region,revenue\n"))
	_, spaces := get(t, ws, ana, "/api/genie/spaces")
	assert.Equal(t, "Sales orders", spaces["spaces"].([]any)[0].(map[string]any)["title"])
}

// What the workspace refuses reaches the caller in the app's error shape, with the fix: a missing scope names the
// scope and the login command; a missing grant names the grant.
func TestDataRefusalsSayWhatToDo(t *testing.T) {
	t.Parallel()
	ws := withApp(t)
	ctx := t.Context()
	owner := client(t, ws, emulated.UserToken(t, ws, "dev@example.com", "all-apis"))

	// api-app asks for everything but sql: the proxy forwards tokens without it, which the warehouse refuses.
	_, err := owner.Apps.Update(ctx, apps.UpdateAppRequest{Name: "api-app",
		App: apps.App{Name: "api-app", UserApiScopes: []string{"file.files", "dashboards.genie"}}})
	require.NoError(t, err)
	status, body := get(t, ws, emulated.UserToken(t, ws, "ana@example.com", pageScopes), "/api/orders")
	assert.Equal(t, http.StatusForbidden, status, "%v", body)
	assert.Contains(t, body["message"], "does not have required scopes: sql")
	assert.Contains(t, body["fix"], "lacks the scope sql")
	assert.Contains(t, body["fix"], "databricks auth login --profile <profile> --scopes sql,file.files,dashboards.genie")
	_, err = owner.Apps.Update(ctx, apps.UpdateAppRequest{Name: "api-app",
		App: apps.App{Name: "api-app", UserApiScopes: strings.Fields(pageScopes)}})
	require.NoError(t, err)

	// The sales group loses SELECT: ana's read is refused in Unity Catalog's words, and the fix names the grant.
	_, err = owner.Grants.Update(ctx, catalog.UpdatePermissions{SecurableType: "table", FullName: "samples.sales.orders",
		Changes: []catalog.PermissionsChange{{Principal: "sales", Remove: []catalog.Privilege{catalog.PrivilegeSelect}}}})
	require.NoError(t, err)
	status, body = get(t, ws, emulated.UserToken(t, ws, "ana@example.com", pageScopes), "/api/orders")
	assert.Equal(t, http.StatusForbidden, status, "%v", body)
	assert.Contains(t, body["message"], "INSUFFICIENT_PERMISSIONS")
	assert.Contains(t, body["fix"], "GRANT SELECT ON TABLE samples.sales.orders")

	// A file that is not there is the workspace's 404.
	status, body = get(t, ws, emulated.UserToken(t, ws, "ana@example.com", pageScopes), "/api/reports/nope.csv")
	assert.Equal(t, http.StatusNotFound, status, "%v", body)
}

// A service principal calling gets no forwarded token: the app answers with its own view alone.
func TestDataAsAServicePrincipal(t *testing.T) {
	t.Parallel()
	ws := withApp(t)
	status, body := get(t, ws, emulated.M2MToken(t, ws, "external-service", "all-apis"), "/api/orders")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Nil(t, body["on_behalf_of_user"])
	assert.Contains(t, body["on_behalf_of_user_note"], "for users only")
	assert.NotEmpty(t, body["app_service_principal"].(map[string]any)["rows"])
	status, body = get(t, ws, emulated.M2MToken(t, ws, "external-service", "all-apis"), "/api/me")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, body["message"], "the caller is a service principal")
}
