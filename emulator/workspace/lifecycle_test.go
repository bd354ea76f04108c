package workspace

import (
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// observed records the states a waiter polled, and runs once(state) the first time it sees a state.
type observed struct {
	mu     sync.Mutex
	states []string
}

func (o *observed) see(state string, once map[string]func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.states) == 0 || o.states[len(o.states)-1] != state {
		o.states = append(o.states, state)
		if f := once[state]; f != nil {
			f()
		}
	}
}

func (o *observed) get() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.states...)
}

// release lets one held compute transition through, without blocking the waiter's callback.
func release(hold chan struct{}) func() { return func() { go func() { hold <- struct{}{} }() } }

// TestLifecycleWithTheSDKWaiters: CreateAndWait, StopAndWait, StartAndWait and Deploy-then-wait each poll a
// transitional state (STARTING, STOPPING, IN_PROGRESS) before the final one, as against a workspace. Each transition
// is held until the waiter has seen it, so the verdict does not depend on the machine's speed.
func TestLifecycleWithTheSDKWaiters(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	w, _ := startWorkspace(t, Options{computeHold: hold, StopGrace: 5 * time.Second})
	token := managerToken(t, w)
	dev := sdkClient(t, w, token)
	ctx := t.Context()

	var created observed
	wait, err := dev.Apps.Create(ctx, apps.CreateAppRequest{App: apps.App{Name: "lifecycle",
		Resources: []apps.AppResource{{Name: "target-app", App: &apps.AppResourceApp{Name: "api-app"}}}}})
	require.NoError(t, err)
	app, err := wait.OnProgress(func(a *apps.App) {
		created.see(string(a.ComputeStatus.State), map[string]func(){"STARTING": release(hold)})
	}).Get()
	require.NoError(t, err)
	assert.Equal(t, []string{"STARTING", "ACTIVE"}, created.get())
	assert.Equal(t, computeActive, app.ComputeStatus.Message)
	assert.NotContains(t, app.AppStatus.Message, "apps start", "an active app is not told to start")

	dir := "/Workspace/Users/dev@example.com/lifecycle"
	uploadTestApp(t, w, token, dir, "serve-when", "v1")
	gate := filepath.Join(t.TempDir(), "listen")
	var deployed observed
	deployment, err := dev.Apps.Deploy(ctx, apps.CreateAppDeploymentRequest{AppName: "lifecycle",
		AppDeployment: apps.AppDeployment{SourceCodePath: dir, EnvVars: []apps.EnvVar{
			{Name: testAppMode, Value: "serve-when"}, {Name: "TEST_APP_WAIT_FOR", Value: gate}}}})
	require.NoError(t, err)
	d, err := deployment.OnProgress(func(d *apps.AppDeployment) {
		deployed.see(string(d.Status.State), map[string]func(){"IN_PROGRESS": func() {
			assert.Equal(t, apps.ApplicationStateDeploying, getApp(t, w, token, "lifecycle").AppStatus.State)
			require.NoError(t, os.WriteFile(gate, nil, 0o600))
		}})
	}).Get()
	require.NoError(t, err)
	assert.Equal(t, []string{"IN_PROGRESS", "SUCCEEDED"}, deployed.get())
	assert.Equal(t, apps.AppDeploymentStateSucceeded, d.Status.State)

	var stopped observed
	stopWait, err := dev.Apps.Stop(ctx, apps.StopAppRequest{Name: "lifecycle"})
	require.NoError(t, err)
	_, err = stopWait.OnProgress(func(a *apps.App) {
		stopped.see(string(a.ComputeStatus.State), map[string]func(){"STOPPING": release(hold)})
	}).Get()
	require.NoError(t, err)
	assert.Equal(t, []string{"STOPPING", "STOPPED"}, stopped.get())

	var started observed
	startWait, err := dev.Apps.Start(ctx, apps.StartAppRequest{Name: "lifecycle"})
	require.NoError(t, err)
	_, err = startWait.OnProgress(func(a *apps.App) {
		started.see(string(a.ComputeStatus.State), map[string]func(){"STARTING": func() {
			assert.Equal(t, apps.ApplicationStateDeploying, a.AppStatus.State, "an app that starts is not told to deploy")
			assert.Equal(t, "App is starting.", a.AppStatus.Message)
			resp, _ := call(t, http.MethodGet, w.AppURL("lifecycle")+"/api/whoami", bearer(token))
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "the proxy says it is starting")
			assert.Equal(t, "1", resp.Header.Get("Retry-After"))
			release(hold)()
		}})
	}).Get()
	require.NoError(t, err)
	assert.Equal(t, []string{"STARTING", "ACTIVE"}, started.get())
	require.Eventually(t, func() bool {
		status, seen := whoami(t, w, "lifecycle", token)
		return status == http.StatusOK && seen["version"] == "v1"
	}, patience, 20*time.Millisecond, "start runs the active deployment again")
}

// TestStartBringsBackAnEmulatorRunApp: an app `emulator run` started (StartApp) comes back after apps stop and
// apps start, as a deployed one does.
func TestStartBringsBackAnEmulatorRunApp(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{StopGrace: 5 * time.Second})
	token := managerToken(t, w)
	dev := sdkClient(t, w, token)
	self, err := os.Executable()
	require.NoError(t, err)
	_, err = w.StartApp(t.Context(), "api-app", Launch{Command: []string{self, "-test.run=^$"},
		Env: []string{testAppMode + "=serve", "APP_VERSION=run"}})
	require.NoError(t, err)
	external := m2mToken(t, w, "external-service")

	_, err = waitFor[apps.App](dev.Apps.Stop(t.Context(), apps.StopAppRequest{Name: "api-app"}))
	require.NoError(t, err)
	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(external))
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Contains(t, string(body), "databricks apps start api-app", "a stopped app is started, not deployed")

	app, err := waitFor[apps.App](dev.Apps.Start(t.Context(), apps.StartAppRequest{Name: "api-app"}))
	require.NoError(t, err)
	assert.Equal(t, apps.ComputeStateActive, app.ComputeStatus.State)
	require.Eventually(t, func() bool {
		status, seen := whoami(t, w, "api-app", external)
		return status == http.StatusOK && seen["version"] == "run"
	}, patience, 20*time.Millisecond)
	a := getApp(t, w, token, "api-app")
	assert.Equal(t, apps.ApplicationStateRunning, a.AppStatus.State)
}

// getApp reads an app with the Apps API.
func getApp(t *testing.T, w *Workspace, token, name string) apps.App {
	t.Helper()
	a, err := sdkClient(t, w, token).Apps.GetByName(t.Context(), name)
	require.NoError(t, err)
	return *a
}
