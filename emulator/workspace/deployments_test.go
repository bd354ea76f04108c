package workspace

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// testAppMode, set in a deployed app.yaml's env, makes this test binary the app: the deployments tests deploy it
// like any app folder, so they need no toolchain and no network.
const testAppMode = "WORKSPACE_TEST_APP"

func TestMain(m *testing.M) {
	switch os.Getenv(testAppMode) {
	case "":
		os.Exit(m.Run())
	case "serve":
		serveTestApp()
	case "probe": // tries to read what the platform's container would not let it
		serveProbe()
	case "serve-when": // listens once the file TEST_APP_WAIT_FOR exists: a start as slow as the test wants
		for {
			if _, err := os.Stat(os.Getenv("TEST_APP_WAIT_FOR")); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		serveTestApp()
	case "silent": // starts, never listens
		fmt.Println("warming up forever")
		time.Sleep(time.Hour)
	case "crash":
		fmt.Println("starting up")
		fmt.Fprintln(os.Stderr, "boom: the configuration is broken")
		os.Exit(3)
	}
}

// serveTestApp answers GET /api/whoami with its version and the identity headers it received, prints a line per
// request, and stops on SIGTERM as an app should.
func serveTestApp() {
	addr := os.Getenv("APP_LISTEN_ADDR")
	if addr == "" || os.Getenv("TEST_APP_EVERY_INTERFACE") != "" { // an app that ignores APP_LISTEN_ADDR
		addr = ":" + os.Getenv("DATABRICKS_APP_PORT")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Println("test app", os.Getenv("APP_VERSION"), "listening for", os.Getenv("DATABRICKS_APP_NAME"))
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Println("request", r.URL.Path)
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]string{"version": os.Getenv("APP_VERSION"),
			"user": r.Header.Get("X-Forwarded-User"), "client_id": os.Getenv("DATABRICKS_CLIENT_ID"),
			"target": os.Getenv("TARGET_APP")})
	})}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	_ = srv.Serve(ln)
	fmt.Println("test app stopped")
	os.Exit(0)
}

// uploadTestApp writes an app folder to the workspace files with the files API, as databricks sync does: an
// app.yaml whose command is this test binary in the given mode, with args after its own.
func uploadTestApp(t *testing.T, w *Workspace, token, dir, mode, version string, args ...string) {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	command := fmt.Sprintf("%q, \"-test.run=^$\"", self)
	for _, a := range args {
		command += fmt.Sprintf(", %q", a)
	}
	appYAML := fmt.Sprintf("command: [%s]\nenv:\n  - name: %s\n    value: %s\n"+
		"  - name: APP_VERSION\n    value: %s\n  - name: TARGET_APP\n    valueFrom: target-app\n",
		command, testAppMode, mode, version)
	resp, body := send(t, http.MethodPost, w.URL()+"/api/2.0/workspace/mkdirs", `{"path":"`+dir+`"}`,
		http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	resp, body = send(t, http.MethodPost, w.URL()+"/api/2.0/workspace-files/import-file"+dir+"/app.yaml?overwrite=true",
		appYAML, bearer(token))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
}

// whoami calls the app through its proxy as the external-service service principal.
func whoami(t *testing.T, w *Workspace, app, token string) (int, map[string]string) {
	t.Helper()
	resp, body := call(t, http.MethodGet, w.AppURL(app)+"/api/whoami", bearer(token))
	var out map[string]string
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, &out), string(body))
	}
	return resp.StatusCode, out
}

// TestDeploymentsRunTheCode deploys an app folder from the workspace files with the SDK's Apps client, calls it
// through the proxy, redeploys, stops and starts it: what `databricks bundle run` and `apps deploy` do.
func TestDeploymentsRunTheCode(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{StopGrace: 5 * time.Second})
	token := managerToken(t, w)
	dev := sdkClient(t, w, token)
	ctx := t.Context()
	external := m2mToken(t, w, "external-service")
	root := "/Workspace/Users/dev@example.com/caller"

	status, _ := whoami(t, w, "caller-app", external)
	require.Equal(t, http.StatusBadGateway, status, "nothing deployed yet")

	uploadTestApp(t, w, token, root+"/v1", "serve", "v1")
	first := deploy(t, dev, "caller-app", root+"/v1")
	assert.Equal(t, apps.AppDeploymentStateSucceeded, first.Status.State)
	status, seen := whoami(t, w, "caller-app", external)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "v1", seen["version"])
	assert.Equal(t, "2001@1234567890123456", seen["user"], "the proxy's identity headers reach the deployed app")
	assert.Equal(t, w.State().ServicePrincipals["caller-app"].ClientID, seen["client_id"], "it runs as its own service principal")
	assert.Equal(t, "api-app", seen["target"], "valueFrom resolves the app resource")

	app, err := dev.Apps.GetByName(ctx, "caller-app")
	require.NoError(t, err)
	assert.Equal(t, apps.ApplicationStateRunning, app.AppStatus.State)
	assert.Equal(t, first.DeploymentId, app.ActiveDeployment.DeploymentId)
	assert.Equal(t, root+"/v1", app.DefaultSourceCodePath)

	uploadTestApp(t, w, token, root+"/v2", "serve", "v2")
	second := deploy(t, dev, "caller-app", root+"/v2")
	status, seen = whoami(t, w, "caller-app", external)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "v2", seen["version"], "the new deployment serves")
	assert.Eventually(t, func() bool { return strings.Contains(logs.String(), "Stopping the previous instance") },
		patience, 20*time.Millisecond)

	list, err := dev.Apps.ListDeploymentsAll(ctx, apps.ListAppDeploymentsRequest{AppName: "caller-app"})
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, second.DeploymentId, list[0].DeploymentId, "newest first")

	stopped, err := waitFor[apps.App](dev.Apps.Stop(ctx, apps.StopAppRequest{Name: "caller-app"}))
	require.NoError(t, err)
	assert.Equal(t, apps.ComputeStateStopped, stopped.ComputeStatus.State)
	status, _ = whoami(t, w, "caller-app", external)
	assert.Equal(t, http.StatusBadGateway, status)

	_, err = dev.Apps.Deploy(ctx, apps.CreateAppDeploymentRequest{AppName: "caller-app",
		AppDeployment: apps.AppDeployment{SourceCodePath: root + "/v2"}})
	assert.Equal(t, "INVALID_STATE", apiError(t, err).ErrorCode, "a stopped app is started before it is deployed")

	_, err = waitFor[apps.App](dev.Apps.Start(ctx, apps.StartAppRequest{Name: "caller-app"}))
	require.NoError(t, err)
	assert.Eventually(t, func() bool {
		status, seen := whoami(t, w, "caller-app", external)
		return status == http.StatusOK && seen["version"] == "v2"
	}, patience, 50*time.Millisecond, "start runs the active deployment again")
}

// failingDeployment deploys a folder whose app cannot start, as `databricks apps deploy` would, expects the waiter to
// fail, and returns the app's one deployment, FAILED.
func failingDeployment(t *testing.T, c *databricks.WorkspaceClient, app, path string) apps.AppDeployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	_, err := waitFor[apps.AppDeployment](c.Apps.Deploy(ctx, apps.CreateAppDeploymentRequest{AppName: app,
		AppDeployment: apps.AppDeployment{SourceCodePath: path}}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "FAILED")
	list, err := c.Apps.ListDeploymentsAll(t.Context(), apps.ListAppDeploymentsRequest{AppName: app})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, apps.AppDeploymentStateFailed, list[0].Status.State)
	return list[0]
}

// deploy is `databricks apps deploy`: create a deployment and wait for it with the SDK's waiter.
func deploy(t *testing.T, c *databricks.WorkspaceClient, app, path string) *apps.AppDeployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	d, err := waitFor[apps.AppDeployment](c.Apps.Deploy(ctx, apps.CreateAppDeploymentRequest{AppName: app,
		AppDeployment: apps.AppDeployment{SourceCodePath: path, Mode: apps.AppDeploymentModeSnapshot}}))
	require.NoError(t, err)
	return d
}

// TestFailedDeploymentReportsTheAppsOutput: an app that exits at start fails its deployment with its last output,
// and the proxy keeps answering 502 rather than hanging.
func TestFailedDeploymentReportsTheAppsOutput(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{StopGrace: 5 * time.Second})
	token := managerToken(t, w)
	dev := sdkClient(t, w, token)
	dir := "/Workspace/Users/dev@example.com/broken"
	uploadTestApp(t, w, token, dir, "crash", "v1")

	failed := failingDeployment(t, dev, "caller-app", dir)
	assert.Contains(t, failed.Status.Message, "boom: the configuration is broken")
	assert.Contains(t, failed.Status.Message, "exit status 3")

	app, err := dev.Apps.GetByName(t.Context(), "caller-app")
	require.NoError(t, err)
	assert.Equal(t, apps.ApplicationStateCrashed, app.AppStatus.State)
	assert.Nil(t, app.ActiveDeployment)
	status, _ := whoami(t, w, "caller-app", m2mToken(t, w, "external-service"))
	assert.Equal(t, http.StatusBadGateway, status)
}

// TestAppListeningPastTheProxyIsWarned: the emulator tells apps to listen on loopback; one that listens on every
// interface anyway is reported, in the emulator's log and the app's.
func TestAppListeningPastTheProxyIsWarned(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{StopGrace: 5 * time.Second})
	self, err := os.Executable()
	require.NoError(t, err)
	launch := Launch{Command: []string{self, "-test.run=^$"}, Env: []string{testAppMode + "=serve"}}

	// The check runs beside the start: its log line is the signal that it is done.
	checked := func(line string) func() bool {
		return func() bool { return strings.Contains(logs.String(), line) }
	}
	_, err = w.StartApp(t.Context(), "api-app", launch)
	require.NoError(t, err)
	require.Eventually(t, checked(`msg="app listens on loopback only" app=api-app`), time.Minute, time.Millisecond)
	assert.NotContains(t, logs.String(), "reachable past the proxy", "an app on APP_LISTEN_ADDR is on loopback only")

	launch.Env = append(launch.Env, "TEST_APP_EVERY_INTERFACE=1")
	_, err = w.StartApp(t.Context(), "caller-app", launch)
	require.NoError(t, err)
	require.Eventually(t, checked(`msg="app reachable past the proxy" app=caller-app`), time.Minute, time.Millisecond)
	resp, body := call(t, http.MethodGet, w.AppURL("caller-app")+"/logz", bearer(managerToken(t, w)))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "not only on loopback")
}

// TestDeploymentThatNeverListensFails: an app that runs but never listens on $DATABRICKS_APP_PORT fails its
// deployment once the start timeout has passed, and is stopped. The test ends the wait itself once the app has
// printed its line, as the timeout would: a second's timeout on a loaded machine could pass before the app printed.
func TestDeploymentThatNeverListensFails(t *testing.T) {
	t.Parallel()
	timeUp := make(chan struct{})
	output := &testkit.Buffer{}
	w, _ := startWorkspace(t, Options{StopGrace: time.Second, AppStdout: output,
		startWait: func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancelCause(ctx)
			go func() {
				select {
				case <-timeUp:
					cancel(context.DeadlineExceeded)
				case <-ctx.Done():
				}
			}()
			return ctx, func() { cancel(context.Canceled) }
		}})
	token := managerToken(t, w)
	dev := sdkClient(t, w, token)
	dir := "/Workspace/Users/dev@example.com/silent"
	uploadTestApp(t, w, token, dir, "silent", "v1")
	go func() {
		for !strings.Contains(output.String(), "warming up forever") {
			select {
			case <-t.Context().Done():
				return
			case <-time.After(10 * time.Millisecond): // a polling interval, not a budget
			}
		}
		close(timeUp)
	}()
	failed := failingDeployment(t, dev, "caller-app", dir)
	assert.Contains(t, failed.Status.Message, "did not listen")
	assert.Contains(t, failed.Status.Message, "context deadline exceeded")
	assert.Contains(t, failed.Status.Message, "warming up forever", "the app's last output")
}

// TestDeploymentsAreForManagers: a deployment's env values and the app's output are for the app's managers; whoever
// may merely read the app sees neither.
func TestDeploymentsAreForManagers(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{StopGrace: 5 * time.Second})
	token := managerToken(t, w)
	dir := "/Workspace/Users/dev@example.com/broken"
	uploadTestApp(t, w, token, dir, "crash", "v1")
	asJSON := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	resp, body := send(t, http.MethodPost, w.URL()+PathApps+"/caller-app/deployments",
		`{"source_code_path":"`+dir+`","env_vars":[{"name":"API_KEY","value":"s3cr3t-value"}]}`, asJSON)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Eventually(t, func() bool {
		_, body := call(t, http.MethodGet, w.URL()+PathApps+"/caller-app", bearer(token))
		return strings.Contains(string(body), `"state":"CRASHED"`)
	}, patience, 50*time.Millisecond)

	outsider := m2mToken(t, w, "no-access-service")
	resp, _ = call(t, http.MethodGet, w.URL()+PathApps+"/caller-app/deployments", bearer(outsider))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, body = call(t, http.MethodGet, w.URL()+PathApps+"/caller-app", bearer(outsider))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, string(body), "s3cr3t-value")
	assert.NotContains(t, string(body), "boom: the configuration is broken")
	assert.Contains(t, string(body), "databricks apps logs")

	resp, body = call(t, http.MethodGet, w.URL()+PathApps+"/caller-app/deployments", bearer(token))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "boom: the configuration is broken", "a manager reads why it failed")
}

// TestDeploymentStatusShowsTheCommandOnlyToManagers: while a deployment starts, its status names the command it
// runs, arguments and all; a principal with CAN USE but not CAN MANAGE reads the app (get and list) without them, as
// it reads it without the env values and the app's output.
func TestDeploymentStatusShowsTheCommandOnlyToManagers(t *testing.T) {
	w, _ := startWorkspace(t, Options{StopGrace: time.Second})
	token := managerToken(t, w)
	dir := "/Workspace/Users/dev@example.com/silent"
	const secretArg = "--api-key=s3cr3t-arg"
	uploadTestApp(t, w, token, dir, "silent", "v1", secretArg) // it never listens: its deployment stays in progress
	asJSON := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	resp, body := send(t, http.MethodPost, w.URL()+PathApps+"/caller-app/deployments", `{"source_code_path":"`+dir+`"}`, asJSON)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Eventually(t, func() bool {
		_, body := call(t, http.MethodGet, w.URL()+PathApps+"/caller-app", bearer(token))
		return strings.Contains(string(body), "Starting app")
	}, patience, 20*time.Millisecond, "the deployment reaches its start")

	_, body = call(t, http.MethodGet, w.URL()+PathApps+"/caller-app", bearer(token))
	assert.Contains(t, string(body), secretArg, "a manager reads the command the deployment runs")
	user := m2mToken(t, w, "external-service") // CAN USE on caller-app, not CAN MANAGE
	for _, path := range []string{PathApps + "/caller-app", PathApps} {
		resp, body := call(t, http.MethodGet, w.URL()+path, bearer(user))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		assert.Contains(t, string(body), "Starting app", "%s: the state of the deployment is for anyone who may read the app", path)
		assert.NotContains(t, string(body), "s3cr3t", "%s: its command line is for managers", path)
		assert.NotContains(t, string(body), "-test.run", "%s: its command line is for managers", path)
	}
}

// TestDeploymentNeedsAFolderTheDeployerCanRead: CAN MANAGE on an app does not open another principal's home. A
// deployment from a folder the deployer may not read is refused as one from a folder that does not exist; from
// /Workspace/Shared, where the other principal can put it, it runs.
func TestDeploymentNeedsAFolderTheDeployerCanRead(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{StopGrace: 5 * time.Second})
	dev := sdkClient(t, w, managerToken(t, w)) // CAN MANAGE on caller-app
	external := m2mToken(t, w, "external-service")
	private := "/Workspace" + homeOf(t, w, "external-service") + "/caller"
	uploadTestApp(t, w, external, private, "serve", "v1")

	_, err := dev.Apps.Deploy(t.Context(), apps.CreateAppDeploymentRequest{AppName: "caller-app",
		AppDeployment: apps.AppDeployment{SourceCodePath: private}})
	refused := apiError(t, err)
	assert.Equal(t, http.StatusBadRequest, refused.StatusCode)
	assert.Equal(t, "INVALID_PARAMETER_VALUE", refused.ErrorCode)
	_, err = dev.Apps.Deploy(t.Context(), apps.CreateAppDeploymentRequest{AppName: "caller-app",
		AppDeployment: apps.AppDeployment{SourceCodePath: private + "-missing"}})
	assert.Equal(t, strings.ReplaceAll(apiError(t, err).Message, private+"-missing", private), refused.Message,
		"the refusal says nothing a missing folder would not")
	list, err := dev.Apps.ListDeploymentsAll(t.Context(), apps.ListAppDeploymentsRequest{AppName: "caller-app"})
	require.NoError(t, err)
	assert.Empty(t, list)

	shared := "/Workspace/Shared/caller"
	uploadTestApp(t, w, external, shared, "serve", "v1")
	assert.Equal(t, apps.AppDeploymentStateSucceeded, deploy(t, dev, "caller-app", shared).Status.State)
	status, seen := whoami(t, w, "caller-app", external)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "v1", seen["version"])
}
