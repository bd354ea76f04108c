package workspace

import (
	"net/http"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdminsManageEveryApp: a service principal creates an app and replaces its permissions without itself, as
// `apps set-permissions` does when one forgets oneself: it can no longer manage the app. The workspace admin (the
// signed-in user, in the admins group) still reads and changes the app and its permissions, and gives it back; an
// ordinary user cannot.
func TestAdminsManageEveryApp(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	ctx := t.Context()
	owner := sdkClient(t, w, m2mToken(t, w, "external-service"))
	ownerID := w.State().ServicePrincipals["external-service"].ClientID
	_, err := waitFor[apps.App](owner.Apps.Create(ctx, apps.CreateAppRequest{App: apps.App{Name: "orphan"}}))
	require.NoError(t, err)
	_, err = owner.Apps.SetPermissions(ctx, apps.AppPermissionsRequest{AppName: "orphan",
		AccessControlList: []apps.AppAccessControlRequest{{UserName: "outsider@example.com",
			PermissionLevel: apps.AppPermissionLevelCanUse}}})
	require.NoError(t, err)
	_, err = owner.Apps.GetPermissions(ctx, apps.GetAppPermissionsRequest{AppName: "orphan"})
	assert.Equal(t, http.StatusForbidden, apiError(t, err).StatusCode, "the owner removed its own CAN_MANAGE")

	outsider := sdkClient(t, w, issueAt(t, w, time.Now(), "outsider@example.com", "all-apis"))
	_, err = outsider.Apps.Update(ctx, apps.UpdateAppRequest{Name: "orphan", App: apps.App{Name: "orphan", Description: "mine"}})
	assert.Equal(t, http.StatusForbidden, apiError(t, err).StatusCode, "CAN_USE is no admin")

	admin := sdkClient(t, w, managerToken(t, w))
	app, err := admin.Apps.Update(ctx, apps.UpdateAppRequest{Name: "orphan",
		App: apps.App{Name: "orphan", Description: "rescued by an admin"}})
	require.NoError(t, err)
	assert.Equal(t, "rescued by an admin", app.Description)
	_, err = admin.Apps.UpdatePermissions(ctx, apps.AppPermissionsRequest{AppName: "orphan",
		AccessControlList: []apps.AppAccessControlRequest{{ServicePrincipalName: ownerID,
			PermissionLevel: apps.AppPermissionLevelCanManage}}})
	require.NoError(t, err)
	perms, err := owner.Apps.GetPermissions(ctx, apps.GetAppPermissionsRequest{AppName: "orphan"})
	require.NoError(t, err, "the admin gave the owner its CAN_MANAGE back")
	assert.Contains(t, levels(perms), "service_principal_name="+ownerID+" CAN_MANAGE")

	resp, _ := call(t, http.MethodGet, w.AppURL("orphan")+PathAppLogs, bearer(managerToken(t, w)))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "an admin reads any app's logs")
	_, err = waitFor[apps.App](admin.Apps.Stop(ctx, apps.StopAppRequest{Name: "orphan"}))
	require.NoError(t, err, "and stops it")
}
