package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/databricks/databricks-sdk-go/service/apps"
	sdkworkspace "github.com/databricks/databricks-sdk-go/service/workspace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/gotool"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// bundleApp is the part of an app in databricks.yml that a deploy acts on.
type bundleApp struct {
	Name           string   `yaml:"name"`
	Description    string   `yaml:"description"`
	SourceCodePath string   `yaml:"source_code_path"`
	UserAPIScopes  []string `yaml:"user_api_scopes"`
	// Resources are as the Apps API takes them: a bundle's app resources have the API's own fields.
	Resources   []map[string]any `yaml:"resources"`
	Permissions []struct {
		Level     string `yaml:"level"`
		GroupName string `yaml:"group_name"`
	} `yaml:"permissions"`
}

// apiResources turns a bundle app's resources into the Apps API's.
func (a bundleApp) apiResources(t *testing.T) []apps.AppResource {
	t.Helper()
	data, err := json.Marshal(a.Resources)
	require.NoError(t, err)
	var out []apps.AppResource
	require.NoError(t, json.Unmarshal(data, &out))
	return out
}

// readBundle reads databricks.yml's apps with its variables at their defaults or as vars sets them (the bundle's
// --var), so this test deploys what the bundle declares rather than a copy of it.
func readBundle(t *testing.T, root string, vars map[string]string) map[string]bundleApp {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "databricks.yml"))
	require.NoError(t, err)
	var doc struct {
		Variables map[string]struct {
			Default string `yaml:"default"`
		} `yaml:"variables"`
		Resources struct {
			Apps map[string]bundleApp `yaml:"apps"`
		} `yaml:"resources"`
	}
	require.NoError(t, yaml.Unmarshal(data, &doc))
	for name, value := range vars {
		v := doc.Variables[name]
		v.Default = value
		doc.Variables[name] = v
	}
	text := string(data)
	for name, v := range doc.Variables {
		text = strings.ReplaceAll(text, "${var."+name+"}", v.Default)
	}
	for key, a := range doc.Resources.Apps { // names first: resources refer to them
		name := a.Name
		for vn, v := range doc.Variables {
			name = strings.ReplaceAll(name, "${var."+vn+"}", v.Default)
		}
		text = strings.ReplaceAll(text, "${resources.apps."+key+".name}", name)
	}
	require.NoError(t, yaml.Unmarshal([]byte(text), &doc))
	return doc.Resources.Apps
}

// TestBundleDeploysToTheEmulator does with databricks-sdk-go's service clients what `databricks bundle deploy` and
// `databricks bundle run` do with databricks.yml (as the real CLI does against the emulator, see docs/emulator.md): it
// uploads the packaged folders, built for this machine, creates both apps with their scopes, resources and
// permissions, starts and deploys them, and calls them through their proxies. Then it redeploys and stops one.
func TestBundleDeploysToTheEmulator(t *testing.T) {
	ctx := t.Context()
	root, err := gotool.ModuleRoot(ctx)
	require.NoError(t, err)
	build := t.TempDir()
	cmd := exec.CommandContext(ctx, "make", "-C", root, "package", "BUILD="+build,
		"PACKAGE_GOOS="+runtime.GOOS, "PACKAGE_GOARCH="+runtime.GOARCH)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "make package:\n%s", out)

	home := t.TempDir()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "DATABRICKS_") {
			t.Setenv(name, "")
			_ = os.Unsetenv(name)
		}
	}
	t.Setenv("HOME", home)
	// A compute that starts and stops at once: the SDK's waiters still see the transitional state, without the
	// default's 2 s per start and stop.
	w, err := workspace.Start(ctx, workspace.Options{StopGrace: 5 * time.Second, ComputeDelay: 10 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	// The developer deploys: adding the API app's warehouse, table and volume as resources takes CAN MANAGE and
	// MANAGE on them, which dev, their owner, holds.
	const deployer = "dev@example.com"
	c, err := databricks.NewWorkspaceClient(&databricks.Config{Host: w.URL(), AuthType: "pat",
		Token: emulated.UserToken(t, w, deployer, "all-apis"), RetryTimeoutSeconds: 10})
	require.NoError(t, err)

	model := w.Config()
	bundle := readBundle(t, root, map[string]string{"warehouse_id": model.Warehouses[0].ID,
		"reports_volume": "samples.sales.reports"})
	require.Contains(t, bundle, "api_app")
	require.Contains(t, bundle, "caller_app")
	filesRoot := "/Workspace/Users/" + deployer + "/.bundle/go-apps-api/dev/files"

	// bundle deploy: upload every file, create the apps (no compute), set their permissions.
	for _, key := range []string{"api_app", "caller_app"} {
		local := filepath.Join(build, filepath.Base(bundle[key].SourceCodePath))
		remote := path.Join(filesRoot, "build", filepath.Base(local))
		uploadFolder(t, c, local, remote)
	}
	for _, key := range []string{"api_app", "caller_app"} { // api_app first: caller_app's resource names it
		a := bundle[key]
		req := apps.App{Name: a.Name, Description: a.Description, UserApiScopes: a.UserAPIScopes,
			Resources: a.apiResources(t)}
		created, err := c.Apps.Create(ctx, apps.CreateAppRequest{App: req, NoCompute: true}) // bundles do not wait for ACTIVE
		require.NoError(t, err)
		require.Equal(t, apps.ComputeStateStopped, created.Response.ComputeStatus.State)
		acl := []apps.AppAccessControlRequest{{UserName: deployer, PermissionLevel: apps.AppPermissionLevelCanManage}}
		for _, p := range a.Permissions {
			acl = append(acl, apps.AppAccessControlRequest{GroupName: p.GroupName,
				PermissionLevel: apps.AppPermissionLevel(p.Level)})
		}
		_, err = c.Apps.SetPermissions(ctx, apps.AppPermissionsRequest{AppName: a.Name, AccessControlList: acl})
		require.NoError(t, err)
	}

	// bundle run: start the compute if it is stopped, then deploy from the uploaded folder.
	for _, key := range []string{"api_app", "caller_app"} {
		a := bundle[key]
		started, err := c.Apps.Start(ctx, apps.StartAppRequest{Name: a.Name})
		require.NoError(t, err)
		_, err = started.Get()
		require.NoError(t, err)
		deployBundleApp(t, c, a.Name, path.Join(filesRoot, "build", filepath.Base(a.SourceCodePath)))
	}

	apiName, callerName := bundle["api_app"].Name, bundle["caller_app"].Name
	api, err := c.Apps.GetByName(ctx, apiName)
	require.NoError(t, err)
	assert.Equal(t, apps.ApplicationStateRunning, api.AppStatus.State)
	assert.Equal(t, bundle["api_app"].UserAPIScopes, api.EffectiveUserApiScopes)

	caller := w.State().ServicePrincipals["no-access-service"] // in the users group, which the bundle grants CAN_USE
	token := testkit.ClientCredentials(t, w.URL()+workspace.PathToken, caller.ClientID, caller.ClientSecret, "all-apis")
	var who identity.WhoAmI
	status := getJSON(t, w.AppURL(apiName)+"/api/whoami", token, &who)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, identity.FormatUser(caller.ID, w.WorkspaceID()), who.User)

	var viaCaller struct {
		Status   int             `json:"status"`
		Response identity.WhoAmI `json:"response"`
	}
	status = getJSON(t, w.AppURL(callerName)+"/api/call?path=/api/whoami", token, &viaCaller)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, http.StatusOK, viaCaller.Status, "the caller app reached the API app as its own service principal")
	callerApp, err := c.Apps.GetByName(ctx, callerName)
	require.NoError(t, err)
	assert.Equal(t, strconv.FormatInt(callerApp.ServicePrincipalId, 10), viaCaller.Response.PrincipalID)

	// A redeploy (bundle run again) replaces the instance; stop takes the app down.
	deployBundleApp(t, c, apiName, path.Join(filesRoot, "build", "app"))
	require.Equal(t, http.StatusOK, getJSON(t, w.AppURL(apiName)+"/api/whoami", token, &who))
	stopped, err := c.Apps.Stop(ctx, apps.StopAppRequest{Name: apiName})
	require.NoError(t, err)
	_, err = stopped.Get()
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadGateway, getJSON(t, w.AppURL(apiName)+"/api/whoami", token, nil))
}

// uploadFolder is what bundle deploy and databricks sync do for each file: mkdirs, then upload.
func uploadFolder(t *testing.T, c *databricks.WorkspaceClient, local, remote string) {
	t.Helper()
	require.NoError(t, c.Workspace.MkdirsByPath(t.Context(), remote))
	entries, err := os.ReadDir(local)
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		f, err := os.Open(filepath.Join(local, e.Name()))
		require.NoError(t, err)
		err = c.Workspace.Upload(t.Context(), path.Join(remote, e.Name()), f,
			sdkworkspace.UploadFormat(sdkworkspace.ImportFormatAuto), sdkworkspace.UploadOverwrite())
		_ = f.Close()
		require.NoError(t, err, e.Name())
	}
}

func deployBundleApp(t *testing.T, c *databricks.WorkspaceClient, app, sourcePath string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	wait, err := c.Apps.Deploy(ctx, apps.CreateAppDeploymentRequest{AppName: app,
		AppDeployment: apps.AppDeployment{SourceCodePath: sourcePath, Mode: apps.AppDeploymentModeSnapshot}})
	require.NoError(t, err)
	d, err := wait.Get()
	require.NoError(t, err)
	require.Equal(t, apps.AppDeploymentStateSucceeded, d.Status.State)
}

// getJSON GETs url with a bearer token and decodes a 200 answer into v.
func getJSON(t *testing.T, url, token string, v any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusOK && v != nil {
		require.NoError(t, json.Unmarshal(body, v), string(body))
	}
	return resp.StatusCode
}
