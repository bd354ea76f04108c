package workspace

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/databricks/databricks-sdk-go/service/settingsv2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAppsAskOnlyForAllowedUserScopes: an app's user_api_scopes are among the scopes the workspace allows apps to
// ask for, a setting an admin controls; other scopes, such as apps or workspace (which would hand the app the user's
// files and other apps), are refused at create and update with the platform's error.
func TestAppsAskOnlyForAllowedUserScopes(t *testing.T) {
	w, _ := startWorkspace(t, Options{})
	dev := sdkClient(t, w, managerToken(t, w))
	ctx := t.Context()

	for _, scopes := range [][]string{{"apps"}, {"workspace"}, {"sql", "apps", "workspace"}, {"all-apis"}} {
		_, err := dev.Apps.Create(ctx, apps.CreateAppRequest{App: apps.App{Name: "greedy", UserApiScopes: scopes}})
		refused := apiError(t, err)
		assert.Equal(t, http.StatusBadRequest, refused.StatusCode, "create with %v", scopes)
		assert.Equal(t, "INVALID_PARAMETER_VALUE", refused.ErrorCode)
		assert.Contains(t, refused.Message, "is not a valid scope")
		_, err = dev.Apps.Update(ctx, apps.UpdateAppRequest{Name: "api-app",
			App: apps.App{Name: "api-app", UserApiScopes: scopes}})
		assert.Equal(t, http.StatusBadRequest, apiError(t, err).StatusCode, "update with %v", scopes)
	}

	setting, err := dev.WorkspaceSettingsV2.GetPublicWorkspaceSetting(ctx,
		settingsv2.GetPublicWorkspaceSettingRequest{Name: SettingAllowedAppsUserAPIScopes})
	require.NoError(t, err)
	require.NotNil(t, setting.EffectiveAllowedAppsUserApiScopes)
	allowed := setting.EffectiveAllowedAppsUserApiScopes.AllowedScopes
	for _, s := range []string{"sql", "file.files", "dashboards.genie", "iam.current-user:read"} {
		assert.Contains(t, allowed, s, "the platform's list, by default")
	}
	assert.NotContains(t, allowed, "apps")
	assert.NotContains(t, allowed, "all-apis")

	// Only an admin changes the list, and only to scopes the platform offers apps.
	user := sdkClient(t, w, m2mToken(t, w, "external-service"))
	narrow := settingsv2.PatchPublicWorkspaceSettingRequest{Name: SettingAllowedAppsUserAPIScopes,
		Setting: settingsv2.Setting{AllowedAppsUserApiScopes: &settingsv2.AllowedAppsUserApiScopesMessage{
			AllowedScopes: []string{"sql", "iam.current-user:read"}}}}
	_, err = user.WorkspaceSettingsV2.PatchPublicWorkspaceSetting(ctx, narrow)
	assert.Equal(t, http.StatusForbidden, apiError(t, err).StatusCode)
	_, err = dev.WorkspaceSettingsV2.PatchPublicWorkspaceSetting(ctx, settingsv2.PatchPublicWorkspaceSettingRequest{
		Name: SettingAllowedAppsUserAPIScopes, Setting: settingsv2.Setting{AllowedAppsUserApiScopes: &settingsv2.AllowedAppsUserApiScopesMessage{
			AllowedScopes: []string{"sql", "apps"}}}})
	assert.Equal(t, http.StatusBadRequest, apiError(t, err).StatusCode, "apps is no scope the platform offers apps")
	_, err = dev.WorkspaceSettingsV2.GetPublicWorkspaceSetting(ctx,
		settingsv2.GetPublicWorkspaceSettingRequest{Name: "allowed_apps_user_api_scopes"})
	assert.Equal(t, http.StatusNotFound, apiError(t, err).StatusCode, "the setting's name is camelCase")

	setting, err = dev.WorkspaceSettingsV2.PatchPublicWorkspaceSetting(ctx, narrow)
	require.NoError(t, err)
	assert.Equal(t, []string{"sql", "iam.current-user:read"}, setting.EffectiveAllowedAppsUserApiScopes.AllowedScopes)
	_, err = dev.Apps.Update(ctx, apps.UpdateAppRequest{Name: "api-app",
		App: apps.App{Name: "api-app", UserApiScopes: []string{"sql", "file.files"}}})
	assert.Equal(t, http.StatusBadRequest, apiError(t, err).StatusCode, "file.files is no longer allowed")

	// An app that asked for a scope before the admin took it away keeps it in user_api_scopes, but the proxy forwards
	// only what is still allowed: effective_user_api_scopes.
	api, err := dev.Apps.GetByName(ctx, "api-app")
	require.NoError(t, err)
	assert.Contains(t, api.UserApiScopes, "file.files")
	assert.Equal(t, []string{"sql"}, api.EffectiveUserApiScopes)
	echo := echoApp(t)
	require.NoError(t, w.SetUpstream("api-app", echo.URL))
	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(managerToken(t, w)))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var seen echoed
	require.NoError(t, json.Unmarshal(body, &seen), string(body))
	forwarded := seen.Headers.Get("X-Forwarded-Access-Token")
	claims, terr := w.auth.issuer.verify(forwarded)
	require.Nil(t, terr)
	assert.Equal(t, "sql", strings.Join(claims.scopes(), " "))
}

// TestModelAppsAskOnlyForAllowedUserScopes: the model's apps are held to the model's allowed list at start.
func TestModelAppsAskOnlyForAllowedUserScopes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Workspace.AllowedAppsUserAPIScopes = []string{"sql"}
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `app "api-app": user_api_scopes: "dashboards.genie" is not among workspace.allowed_apps_user_api_scopes`)

	cfg = DefaultConfig()
	cfg.Apps[0].UserAPIScopes = []string{"workspace"}
	assert.ErrorContains(t, cfg.Validate(), `"workspace" is not among workspace.allowed_apps_user_api_scopes`,
		"the default list is the platform's")
}
