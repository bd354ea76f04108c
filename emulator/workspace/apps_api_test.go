package workspace

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
)

// sdkClient is databricks-sdk-go's own workspace client, calling the emulator with token, as the Databricks CLI
// does. It reads nothing from the environment or ~/.databrickscfg, so a developer's own DATABRICKS_* settings never
// leak in, and tests that use it can run in parallel.
func sdkClient(t *testing.T, w *Workspace, token string) *databricks.WorkspaceClient {
	t.Helper()
	c, err := databricks.NewWorkspaceClient(&databricks.Config{Host: w.URL(), AuthType: "pat", Token: token,
		RetryTimeoutSeconds: 5, Loaders: []config.Loader{sdkconfig.ExplicitOnly{}}})
	require.NoError(t, err)
	return c
}

// isolateSDKEnv clears the DATABRICKS_* variables and points HOME at an empty folder for the test, so the SDK reads
// no developer's settings, for a test of what the SDK reads from the environment (which cannot run in parallel).
func isolateSDKEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "DATABRICKS_") {
			t.Setenv(name, "")
			_ = os.Unsetenv(name)
		}
	}
	t.Setenv("HOME", t.TempDir())
}

// managerToken is the signed-in user's token: the user who manages the model's apps.
func managerToken(t *testing.T, w *Workspace) string {
	t.Helper()
	return pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
}

// apiError returns the Databricks error the SDK parsed, for asserting status and error code.
func apiError(t *testing.T, err error) *apierr.APIError {
	t.Helper()
	require.Error(t, err)
	var apiErr *apierr.APIError
	require.ErrorAs(t, err, &apiErr)
	return apiErr
}

func TestAppsAPIWithTheSDK(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	dev := sdkClient(t, w, managerToken(t, w))
	ctx := t.Context()

	all, err := dev.Apps.ListAll(ctx, apps.ListAppsRequest{PageSize: 1}) // one app a page: the SDK follows the tokens
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, "api-app", all[0].Name)
	assert.Equal(t, "caller-app", all[1].Name)
	assert.Equal(t, w.AppURL("api-app"), all[0].Url)
	assert.Equal(t, apps.ComputeStateActive, all[0].ComputeStatus.State)
	assert.Equal(t, apps.ApplicationStateUnavailable, all[0].AppStatus.State, "nothing runs behind it yet")

	created, err := waitFor[apps.App](dev.Apps.Create(ctx, apps.CreateAppRequest{App: apps.App{Name: "my-app",
		Description: "made by a test", UserApiScopes: []string{"sql"}}}))
	require.NoError(t, err)
	assert.Equal(t, apps.ComputeStateActive, created.ComputeStatus.State)
	assert.Equal(t, "dev@example.com", created.Creator)
	assert.NotEmpty(t, created.Url)
	assert.Equal(t, []string{"sql"}, created.EffectiveUserApiScopes)
	sp, ok := w.State().ServicePrincipals[created.ServicePrincipalName]
	require.True(t, ok, "the new app's service principal shows in the state")
	assert.Equal(t, created.ServicePrincipalClientId, sp.ClientID)
	assert.Equal(t, w.State().Apps["my-app"].ServicePrincipalClientID, sp.ClientID)

	_, err = dev.Apps.Create(ctx, apps.CreateAppRequest{App: apps.App{Name: "my-app"}})
	e := apiError(t, err)
	assert.Equal(t, http.StatusConflict, e.StatusCode)
	assert.Equal(t, "RESOURCE_ALREADY_EXISTS", e.ErrorCode)

	noCompute, err := dev.Apps.Create(ctx, apps.CreateAppRequest{App: apps.App{Name: "bundle-app"}, NoCompute: true})
	require.NoError(t, err)
	assert.Equal(t, apps.ComputeStateStopped, noCompute.Response.ComputeStatus.State)

	updated, err := dev.Apps.Update(ctx, apps.UpdateAppRequest{Name: "my-app",
		App: apps.App{Name: "my-app", Description: "changed", UserApiScopes: []string{"sql", "file.files"}}})
	require.NoError(t, err)
	assert.Equal(t, "changed", updated.Description)
	assert.Equal(t, []string{"sql", "file.files"}, updated.UserApiScopes)

	wait, err := dev.Apps.CreateUpdate(ctx, apps.AsyncUpdateAppRequest{AppName: "my-app", UpdateMask: "description",
		App: &apps.App{Name: "my-app", Description: "async", UserApiScopes: []string{"ignored"}}})
	require.NoError(t, err)
	update, err := wait.Get()
	require.NoError(t, err)
	assert.Equal(t, apps.AppUpdateUpdateStatusUpdateStateSucceeded, update.Status.State)
	got, err := dev.Apps.GetByName(ctx, "my-app")
	require.NoError(t, err)
	assert.Equal(t, "async", got.Description)
	assert.Equal(t, []string{"sql", "file.files"}, got.UserApiScopes, "only the masked fields change")

	_, err = dev.Apps.DeleteByName(ctx, "my-app")
	require.NoError(t, err)
	_, err = dev.Apps.GetByName(ctx, "my-app")
	assert.Equal(t, http.StatusNotFound, apiError(t, err).StatusCode)
	_, gone := w.State().ServicePrincipals[created.ServicePrincipalName]
	assert.False(t, gone, "deleting an app deletes its service principal")
	assert.Empty(t, w.AppURL("my-app"))

	assert.NotContains(t, logs.String(), sp.ClientSecret)
}

// TestGrantTurnsForbiddenIntoOK is the workshop's by-hand grant (docs/workshop.md): a principal without CAN USE gets
// 403 from the proxy, the app's manager grants it with the Permissions API, and the very next request is let through.
func TestGrantTurnsForbiddenIntoOK(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	w.SetUpstream("api-app", echoApp(t).URL)
	dev := sdkClient(t, w, managerToken(t, w))
	ctx := t.Context()
	outsider := m2mToken(t, w, "no-access-service")
	clientID := w.State().ServicePrincipals["no-access-service"].ClientID

	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(outsider))
	require.Equal(t, http.StatusForbidden, resp.StatusCode, string(body))
	assert.Contains(t, string(body), "databricks apps update-permissions api-app")
	assert.Contains(t, string(body), clientID)

	perms, err := dev.Apps.UpdatePermissions(ctx, apps.AppPermissionsRequest{AppName: "api-app",
		AccessControlList: []apps.AppAccessControlRequest{{ServicePrincipalName: clientID,
			PermissionLevel: apps.AppPermissionLevelCanUse}}})
	require.NoError(t, err)
	assert.Equal(t, "/apps/api-app", perms.ObjectId)
	assert.Contains(t, levels(perms), "service_principal_name="+clientID+" CAN_USE")
	assert.Contains(t, levels(perms), "user_name=dev@example.com CAN_MANAGE", "PATCH keeps the other entries")

	resp, body = call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(outsider))
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Contains(t, w.State().ServicePrincipals["no-access-service"].CanUse, "api-app")

	// PUT replaces the list, as bundles send it: the grant is gone again.
	_, err = dev.Apps.SetPermissions(ctx, apps.AppPermissionsRequest{AppName: "api-app",
		AccessControlList: []apps.AppAccessControlRequest{
			{UserName: "dev@example.com", PermissionLevel: apps.AppPermissionLevelCanManage},
			{GroupName: "users", PermissionLevel: apps.AppPermissionLevelCanUse}}})
	require.NoError(t, err)
	perms, err = dev.Apps.GetPermissions(ctx, apps.GetAppPermissionsRequest{AppName: "api-app"})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"user_name=dev@example.com CAN_MANAGE", "group_name=users CAN_USE",
		"group_name=admins CAN_MANAGE"}, levels(perms), "the workspace admins' CAN_MANAGE is inherited, always there")
	resp, _ = call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(outsider))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the users group holds every service principal")

	lv, err := dev.Apps.GetPermissionLevels(ctx, apps.GetAppPermissionLevelsRequest{AppName: "api-app"})
	require.NoError(t, err)
	require.Len(t, lv.PermissionLevels, 2)
}

func levels(p *apps.AppPermissions) []string {
	var out []string
	for _, e := range p.AccessControlList {
		who := "user_name=" + e.UserName
		switch {
		case e.GroupName != "":
			who = "group_name=" + e.GroupName
		case e.ServicePrincipalName != "":
			who = "service_principal_name=" + e.ServicePrincipalName
		}
		for _, l := range e.AllPermissions {
			out = append(out, who+" "+string(l.PermissionLevel))
		}
	}
	return out
}

// TestScopesChangeLive: user_api_scopes set with apps update change both the scope check and the forwarded token
// from the next request on.
func TestScopesChangeLive(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	w.SetUpstream("api-app", echoApp(t).URL)
	dev := sdkClient(t, w, managerToken(t, w))
	sqlOnly := pkceLogin(t, w, "offline_access sql")["access_token"].(string)

	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(sqlOnly))
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "api-app asks for three scopes")
	assert.Contains(t, string(body), "file.files")

	_, err := dev.Apps.Update(t.Context(), apps.UpdateAppRequest{Name: "api-app",
		App: apps.App{Name: "api-app", UserApiScopes: []string{"sql"}}})
	require.NoError(t, err)

	resp, body = call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(sqlOnly))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var seen echoed
	require.NoError(t, json.Unmarshal(body, &seen))
	forwarded := seen.Headers.Get("X-Forwarded-Access-Token")
	require.NotEmpty(t, forwarded)
	claims, terr := w.auth.issuer.verify(forwarded)
	require.Nil(t, terr)
	assert.Equal(t, "sql", claims.Scope, "the forwarded token carries the new scopes")
}

// TestAppsAPIRefusals is every refusal of the Apps and Permissions APIs, with its status and error code.
func TestAppsAPIRefusals(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	dev := managerToken(t, w)
	external := m2mToken(t, w, "external-service") // CAN_USE on api-app, not CAN_MANAGE
	sqlOnly := pkceLogin(t, w, "offline_access sql")["access_token"].(string)
	asJSON := http.Header{"Content-Type": {"application/json"}}
	with := func(token string, h http.Header) http.Header {
		out := bearer(token)
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	perms := PathAppPermissions + "/api-app"
	tests := []struct {
		name, method, path, body string
		header                   http.Header
		status                   int
		code                     string
	}{
		{"no token", "GET", PathApps, "", nil, 401, "UNAUTHENTICATED"},
		{"garbage token", "GET", PathApps, "", bearer("nope"), 401, "UNAUTHENTICATED"},
		{"a token holding only sql may not list apps", "GET", PathApps, "", bearer(sqlOnly), 403, "PERMISSION_DENIED"},
		{"unknown app", "GET", PathApps + "/nope", "", bearer(dev), 404, "RESOURCE_DOES_NOT_EXIST"},
		{"update without CAN_MANAGE", "PATCH", PathApps + "/api-app", `{"description":"x"}`, with(external, asJSON), 403, "PERMISSION_DENIED"},
		{"stop without CAN_MANAGE", "POST", PathApps + "/api-app/stop", `{}`, with(external, asJSON), 403, "PERMISSION_DENIED"},
		{"deploy without CAN_MANAGE", "POST", PathApps + "/api-app/deployments", `{"source_code_path":"/Workspace/x"}`, with(external, asJSON), 403, "PERMISSION_DENIED"},
		{"delete without CAN_MANAGE", "DELETE", PathApps + "/api-app", "", bearer(external), 403, "PERMISSION_DENIED"},
		{"read permissions without CAN_MANAGE", "GET", perms, "", bearer(external), 403, "PERMISSION_DENIED"},
		{"grant without CAN_MANAGE", "PATCH", perms, `{"access_control_list":[{"group_name":"users","permission_level":"CAN_USE"}]}`, with(external, asJSON), 403, "PERMISSION_DENIED"},
		{"permissions of an unknown app", "GET", PathAppPermissions + "/nope", "", bearer(dev), 404, "RESOURCE_DOES_NOT_EXIST"},
		{"an unknown level", "PATCH", perms, `{"access_control_list":[{"group_name":"users","permission_level":"CAN_RUN"}]}`, with(dev, asJSON), 400, "INVALID_PARAMETER_VALUE"},
		{"an unknown user", "PATCH", perms, `{"access_control_list":[{"user_name":"nobody@example.com","permission_level":"CAN_USE"}]}`, with(dev, asJSON), 400, "INVALID_PARAMETER_VALUE"},
		{"an unknown group", "PATCH", perms, `{"access_control_list":[{"group_name":"nope","permission_level":"CAN_USE"}]}`, with(dev, asJSON), 400, "INVALID_PARAMETER_VALUE"},
		{"two principals in one entry", "PATCH", perms, `{"access_control_list":[{"user_name":"dev@example.com","group_name":"users","permission_level":"CAN_USE"}]}`, with(dev, asJSON), 400, "INVALID_PARAMETER_VALUE"},
		{"a bad app name", "POST", PathApps, `{"name":"Bad_Name"}`, with(dev, asJSON), 400, "INVALID_PARAMETER_VALUE"},
		{"a resource naming an unknown app", "POST", PathApps, `{"name":"ok-name","resources":[{"name":"r","app":{"name":"nope"}}]}`, with(dev, asJSON), 400, "INVALID_PARAMETER_VALUE"},
		{"renaming through PATCH", "PATCH", PathApps + "/api-app", `{"name":"other"}`, with(dev, asJSON), 400, "INVALID_PARAMETER_VALUE"},
		{"not JSON", "PATCH", PathApps + "/api-app", `{`, with(dev, asJSON), 400, "INVALID_PARAMETER_VALUE"},
		{"deploy a folder that does not exist", "POST", PathApps + "/api-app/deployments", `{"source_code_path":"/Workspace/Users/dev@example.com/nope"}`, with(dev, asJSON), 400, "INVALID_PARAMETER_VALUE"},
		{"a bad page size", "GET", PathApps + "?page_size=x", "", bearer(dev), 400, "INVALID_PARAMETER_VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := send(t, tt.method, w.URL()+tt.path, tt.body, tt.header)
			assert.Equal(t, tt.status, resp.StatusCode, string(body))
			assert.Contains(t, string(body), `"error_code":"`+tt.code+`"`)
		})
	}
	// None of the refused changes happened.
	s := w.apps.settingsOf("api-app")
	assert.Empty(t, s.description)
	assert.Len(t, s.acl, 5, "dev manages; ana, external-service, caller-app and federated-service may use")
}

// send is call with a body.
func send(t *testing.T, method, url, body string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, out
}

// TestNoConfusedDeputyInTheDefaultModel: caller-app calls api-app as itself, so whoever may use caller-app may use
// api-app through it. The default model grants caller-app only to principals that may use api-app, and a principal
// without CAN USE on api-app is refused by caller-app's proxy as well.
func TestNoConfusedDeputyInTheDefaultModel(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	s := w.State()
	for name, u := range s.Users {
		if slices.Contains(u.CanUse, "caller-app") {
			assert.Contains(t, u.CanUse, "api-app", "user %s may use caller-app but not api-app", name)
		}
	}
	for name, sp := range s.ServicePrincipals {
		if slices.Contains(sp.CanUse, "caller-app") {
			assert.Contains(t, sp.CanUse, "api-app", "service principal %s may use caller-app but not api-app", name)
		}
	}
	token := m2mToken(t, w, "no-access-service")
	for _, app := range []string{"api-app", "caller-app"} {
		resp, body := call(t, http.MethodGet, w.AppURL(app)+"/api/whoami", bearer(token))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s: %s", app, body)
	}
}

// TestConfusedDeputyIsWarnedAtStart: a model that lets a principal use caller-app but not api-app, which caller-app
// calls as itself, lets that principal reach api-app anyway; the emulator says so when it starts, naming who reaches
// which app through which.
func TestConfusedDeputyIsWarnedAtStart(t *testing.T) {
	_, logs := startWorkspace(t, Options{})
	assert.NotContains(t, logs.String(), "confused deputy", "the default model has none")

	cfg := DefaultConfig()
	for i, a := range cfg.Apps {
		if a.Name == "caller-app" {
			cfg.Apps[i].CanUse.Groups = []string{GroupUsers}
		}
	}
	w, logs := startWorkspace(t, Options{Config: cfg})
	var warning string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "confused deputy") {
			warning = line
		}
	}
	require.NotEmpty(t, warning, logs.String())
	assert.Contains(t, warning, "level=WARN")
	assert.Contains(t, warning, "app=api-app")
	assert.Contains(t, warning, "through=caller-app")
	assert.Contains(t, warning, "no-access-service", "a service principal without CAN USE on api-app")
	assert.Contains(t, warning, "outsider@example.com", "a user without CAN USE on api-app")
	assert.NotContains(t, warning, "dev@example.com", "who may use api-app itself loses nothing")

	resp, body := call(t, http.MethodGet, w.AppURL("caller-app")+"/api/whoami", bearer(m2mToken(t, w, "no-access-service")))
	assert.NotEqual(t, http.StatusForbidden, resp.StatusCode, "what the warning says: %s", body)
}

// TestAppResourcesCannotGrantWhatTheCallerLacks: an app resource gives the app's service principal CAN_USE on its
// target, so only a manager of the target may set one; otherwise anyone could reach any app through an app of theirs.
func TestAppResourcesCannotGrantWhatTheCallerLacks(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	outsider := m2mToken(t, w, "no-access-service")
	dev := managerToken(t, w)
	asJSON := func(token string) http.Header {
		return http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	}
	tests := []struct {
		name, method, path, body, token string
		status                          int
		code                            string
	}{
		{"create with a resource on an app the caller does not manage", "POST", PathApps,
			`{"name":"evil","resources":[{"name":"r","app":{"name":"api-app","permission":"CAN_USE"}}]}`, outsider, 403, "PERMISSION_DENIED"},
		{"a resource asking for CAN_MANAGE", "POST", PathApps,
			`{"name":"evil","resources":[{"name":"r","app":{"name":"api-app","permission":"CAN_MANAGE"}}]}`, dev, 400, "INVALID_PARAMETER_VALUE"},
		{"all-apis as an app's scope", "POST", PathApps, `{"name":"greedy","user_api_scopes":["all-apis"]}`, dev, 400, "INVALID_PARAMETER_VALUE"},
		{"an unknown scope", "POST", PathApps, `{"name":"odd","user_api_scopes":["no.such:scope"]}`, dev, 400, "INVALID_PARAMETER_VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := send(t, tt.method, w.URL()+tt.path, tt.body, asJSON(tt.token))
			assert.Equal(t, tt.status, resp.StatusCode, string(body))
			assert.Contains(t, string(body), `"error_code":"`+tt.code+`"`)
		})
	}
	// The outsider's own app may not point at api-app later either.
	resp, body := send(t, http.MethodPost, w.URL()+PathApps, `{"name":"mine"}`, asJSON(outsider))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	resp, body = send(t, http.MethodPatch, w.URL()+PathApps+"/mine",
		`{"resources":[{"name":"r","app":{"name":"api-app","permission":"CAN_USE"}}]}`, asJSON(outsider))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, string(body))
	assert.False(t, w.apps.settingsOf("api-app").has(principal{Kind: "service_principal",
		UserName: w.State().ServicePrincipals["mine"].ClientID}, PermissionCanUse))
}

// TestCloseWhileAppsAreCreated: Close stops every app and listener even while clients keep creating apps; what
// arrives once it has begun is refused, and nothing is left listening.
func TestCloseWhileAppsAreCreated(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		w, err := Start(t.Context(), Options{})
		require.NoError(t, err)
		token := managerToken(t, w)
		stop := make(chan struct{})
		spammed := make(chan struct{})
		go func() {
			defer close(spammed)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, w.URL()+PathApps+"?no_compute=true",
					strings.NewReader(fmt.Sprintf(`{"name":"c%d-%d"}`, round, i)))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					_ = resp.Body.Close()
				}
			}
		}()
		time.Sleep(20 * time.Millisecond)
		closed := make(chan struct{})
		go func() { _ = w.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(patience):
			t.Fatalf("round %d: Close did not return", round)
		}
		close(stop)
		<-spammed
	}
}

// TestJSONBodiesWhateverTheContentType: the workspace's REST APIs read a JSON body whatever its Content-Type, as
// Databricks does (curl -d sends a form type, AppKit's telemetry text/plain); the control API, which a browser could
// reach with no token of its own, keeps asking for application/json.
func TestJSONBodiesWhateverTheContentType(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	token := managerToken(t, w)
	for _, contentType := range []string{"", "application/x-www-form-urlencoded", "text/plain;charset=UTF-8"} {
		t.Run("content type "+contentType, func(t *testing.T) {
			header := bearer(token)
			if contentType != "" {
				header.Set("Content-Type", contentType)
			}
			resp, body := send(t, http.MethodPost, w.URL()+PathTelemetry, `{"protoLogs":["{}"]}`, header)
			assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			resp, body = send(t, http.MethodPost, w.URL()+PathWorkspaceMkdirs,
				`{"path":"/Users/dev@example.com/bodies"}`, header)
			assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			resp, body = send(t, http.MethodPatch, w.URL()+PathApps+"/api-app", `{"description":"from curl"}`, header)
			assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			resp, body = send(t, http.MethodPost, w.URL()+PathSecrets+"/scopes/create",
				`{"scope":"bodies-`+strings.NewReplacer("/", "-", ";", "-", "=", "-").Replace(cmp.Or(contentType, "none"))+`"}`, header)
			assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			resp, body = send(t, http.MethodPatch, w.URL()+PathUnityCatalog+"/permissions/catalog/samples",
				`{"changes":[{"principal":"sales","add":["USE_CATALOG"]}]}`, header)
			assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			resp, body = send(t, http.MethodPost, w.URL()+PathStatements,
				`{"warehouse_id":"5b3f9c1e7a2d4e60","statement":"SELECT 1"}`, header)
			assert.NotEqual(t, http.StatusUnsupportedMediaType, resp.StatusCode, string(body))
			resp, body = send(t, http.MethodPost, w.URL()+PathApps+"/api-app/deployments", `{not json`, header)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "a body that is not JSON is still refused: %s", body)
		})
	}
	resp, _ := send(t, http.MethodPost, w.URL()+PathFaults, `{"status":503}`,
		http.Header{"Content-Type": {"text/plain"}})
	assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, "the control API takes JSON only")
}
