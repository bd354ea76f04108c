package workspace

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// TestRestartKeepsTheWorkspace: a workspace with a data folder comes back after Close as it was: on the same
// address, where a user's access and refresh tokens issued before still work, with the apps created through the API
// (on the same URLs, with their service principals' secrets), the permissions granted, the files uploaded, and the
// deployment that ran, running again. A second workspace on the same data folder is refused while the first runs.
func TestRestartKeepsTheWorkspace(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	w, _ := startWorkspace(t, Options{DataDir: data, StopGrace: 5 * time.Second})
	login := pkceLogin(t, w, "offline_access all-apis")
	token, refresh := login["access_token"].(string), login["refresh_token"].(string)
	dev := sdkClient(t, w, token)
	ctx := t.Context()

	_, err := waitFor[apps.App](dev.Apps.Create(ctx, apps.CreateAppRequest{App: apps.App{Name: "kept",
		Description: "made before the restart",
		Resources:   []apps.AppResource{{Name: "target-app", App: &apps.AppResourceApp{Name: "api-app"}}}}}))
	require.NoError(t, err)
	_, err = dev.Permissions.Update(ctx, iamPermissions("kept", "outsider@example.com"))
	require.NoError(t, err)
	dir := "/Workspace/Users/dev@example.com/kept"
	uploadTestApp(t, w, token, dir, "serve", "v1")
	deploy(t, dev, "kept", dir)
	kept := w.State().Apps["kept"]
	keptSecret := w.State().ServicePrincipals["kept"]
	before := struct{ workspace, app string }{w.URL(), w.AppURL("kept")}
	require.NoError(t, w.Close())

	w, logs := startWorkspace(t, Options{DataDir: data, StopGrace: 5 * time.Second})
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	assert.Equal(t, before.workspace, w.URL(), "the same address: CLI profiles still point at it")
	assert.Equal(t, before.app, w.AppURL("kept"), "the app's proxy on the same port")
	dev = sdkClient(t, w, token)

	app, err := dev.Apps.GetByName(ctx, "kept")
	require.NoError(t, err, "the access token issued before the restart still verifies")
	assert.Equal(t, "made before the restart", app.Description)
	assert.Equal(t, kept.ServicePrincipalClientID, app.ServicePrincipalClientId)
	perms, err := dev.Permissions.Get(ctx, iam.GetPermissionRequest{RequestObjectType: "apps", RequestObjectId: "kept"})
	require.NoError(t, err)
	assert.Contains(t, aclUsers(perms), "outsider@example.com", "the grant is kept")

	status, body := postForm(t, w.URL()+PathToken, url.Values{"grant_type": {"refresh_token"},
		"client_id": {CLIClientID}, "refresh_token": {refresh}})
	assert.Equal(t, http.StatusOK, status, "the refresh token issued before the restart still works: %s", body)

	export, err := dev.Workspace.Download(ctx, dir+"/app.yaml")
	require.NoError(t, err, "the files are kept")
	_ = export.Close()

	spToken := testkit.ClientCredentials(t, w.URL()+PathToken, keptSecret.ClientID, keptSecret.ClientSecret, "all-apis")
	assert.NotEmpty(t, spToken, "the app's service principal keeps its secret")
	require.Eventually(t, func() bool {
		status, seen := whoami(t, w, "kept", token)
		return status == http.StatusOK && seen["version"] == "v1"
	}, patience, 20*time.Millisecond, "the deployment that ran runs again")
	list, err := dev.Apps.ListDeploymentsAll(ctx, apps.ListAppDeploymentsRequest{AppName: "kept"})
	require.NoError(t, err)
	assert.Len(t, list, 1)

	_, err = Start(t.Context(), Options{DataDir: data})
	require.ErrorIs(t, err, ErrLocked, "a second workspace on the same data folder")
	assert.Contains(t, err.Error(), "held by process")
}

// TestThrowAwayWorkspaceLeavesNothing: without a data folder nothing is saved, and Close removes what it made.
func TestThrowAwayWorkspaceLeavesNothing(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	dir := w.dataDir
	require.DirExists(t, dir)
	require.NoError(t, w.Close())
	assert.NoDirExists(t, dir)
}

// TestSavedWorkspaceOfAnotherModelIsRefused: a data folder remembers which workspace it holds.
func TestSavedWorkspaceOfAnotherModelIsRefused(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	w, _ := startWorkspace(t, Options{DataDir: data})
	require.NoError(t, w.Close())
	cfg := DefaultConfig()
	cfg.Workspace.ID = "999"
	_, err := Start(t.Context(), Options{Config: cfg, DataDir: data})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "it is workspace 1234567890123456, the model's is 999")
	assert.Contains(t, err.Error(), "--fresh")
}

// TestSavedPartsHoldNoWorkingRefreshToken: the saved grants hold refresh tokens by hash only, and every part is
// owner-only.
func TestSavedPartsHoldNoWorkingRefreshToken(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	w, _ := startWorkspace(t, Options{DataDir: data})
	refresh := pkceLogin(t, w, "offline_access all-apis")["refresh_token"].(string)
	require.NoError(t, w.Close())
	entries, err := os.ReadDir(filepath.Join(data, "workspace"))
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		info, err := e.Info()
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), e.Name())
		raw, err := os.ReadFile(filepath.Join(data, "workspace", e.Name()))
		require.NoError(t, err)
		assert.NotContains(t, string(raw), refresh, e.Name())
		assert.True(t, json.Valid(raw), e.Name())
	}
}

func iamPermissions(app, user string) iam.UpdateObjectPermissions {
	return iam.UpdateObjectPermissions{RequestObjectType: "apps", RequestObjectId: app,
		AccessControlList: []iam.AccessControlRequest{{UserName: user, PermissionLevel: iam.PermissionLevelCanUse}}}
}

func aclUsers(p *iam.ObjectPermissions) string {
	var users []string
	for _, e := range p.AccessControlList {
		users = append(users, e.UserName)
	}
	return strings.Join(users, " ")
}
