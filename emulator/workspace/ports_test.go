package workspace

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// offering returns a stand-in for FreePort that offers the given ports in turn, as the kernel may: a port FreePort
// found is free again as soon as its probe closes, so it can be offered twice in a row.
func offering(ports ...int) func() (int, error) {
	var mu sync.Mutex
	return func() (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if len(ports) == 0 {
			return FreePort()
		}
		p := ports[0]
		ports = ports[1:]
		return p, nil
	}
}

func TestPortReservationsNeverGiveAPortTwice(t *testing.T) {
	t.Parallel()
	r := newPortReservations(offering(5000, 5000, 5001, 5000))
	first, err := r.reserve()
	require.NoError(t, err)
	second, err := r.reserve()
	require.NoError(t, err)
	assert.Equal(t, []int{5000, 5001}, []int{first, second}, "5000 is offered again while its app has not exited")
	r.release(5000)
	third, err := r.reserve()
	require.NoError(t, err)
	assert.Equal(t, 5000, third, "a released port is free for the next app")

	always := newPortReservations(func() (int, error) { return 5000, nil })
	_, err = always.reserve()
	require.NoError(t, err)
	_, err = always.reserve()
	assert.ErrorContains(t, err, "kept for apps", "it gives up rather than hand out a port twice")
}

// TestConcurrentDeploymentsGetTheirOwnPorts deploys two apps at once while the system offers both the same free port,
// as it may between one app being given its port and binding it. Each app gets a port of its own, and each proxy
// reaches its own app: without the reservation, one app could not bind and its deployment waited on, and succeeded
// through, the other app's listener.
func TestConcurrentDeploymentsGetTheirOwnPorts(t *testing.T) {
	t.Parallel()
	port, err := FreePort()
	require.NoError(t, err)
	w, _ := startWorkspace(t, Options{StopGrace: 5 * time.Second, ports: newPortReservations(offering(port, port))})
	token := managerToken(t, w) // dev manages both apps
	dev := sdkClient(t, w, token)
	self, err := os.Executable()
	require.NoError(t, err)
	appNames := []string{"api-app", "caller-app"}
	for _, app := range appNames { // this test binary serving, as uploadTestApp's but without its app resource
		dir := "/Workspace/Users/dev@example.com/" + app
		require.NoError(t, dev.Workspace.MkdirsByPath(t.Context(), dir))
		require.NoError(t, dev.Workspace.Upload(t.Context(), dir+"/app.yaml", strings.NewReader(fmt.Sprintf(
			"command: [%q, \"-test.run=^$\"]\nenv:\n  - {name: %s, value: serve}\n  - {name: APP_VERSION, value: %s}\n",
			self, testAppMode, app))))
	}

	deployed := make([]*apps.AppDeployment, len(appNames))
	errs := make([]error, len(appNames))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, app := range appNames {
		wg.Go(func() {
			<-start // both requests leave together
			deployed[i], errs[i] = waitFor[apps.AppDeployment](dev.Apps.Deploy(t.Context(), apps.CreateAppDeploymentRequest{
				AppName: app, AppDeployment: apps.AppDeployment{SourceCodePath: "/Workspace/Users/dev@example.com/" + app}}))
		})
	}
	close(start)
	wg.Wait()
	external := m2mToken(t, w, "external-service") // may use both apps
	for i, app := range appNames {
		require.NoError(t, errs[i], app)
		assert.Equal(t, apps.AppDeploymentStateSucceeded, deployed[i].Status.State, app)
		status, seen := whoami(t, w, app, external)
		require.Equal(t, http.StatusOK, status, app)
		assert.Equal(t, app, seen["version"], "the proxy of %s reaches %s's own process", app, app)
		assert.Equal(t, w.State().ServicePrincipals[app].ClientID, seen["client_id"], app)
	}
	w.apps.mu.Lock()
	ports := []int{w.apps.byName["api-app"].instance.port, w.apps.byName["caller-app"].instance.port}
	w.apps.mu.Unlock()
	assert.Contains(t, ports, port)
	assert.NotEqual(t, ports[0], ports[1])
}

// A model with a fixed port another program holds: the error names the port, and where in the model to choose
// another.
func TestAPortInUseSaysHowToChooseAnother(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	addr := taken.Addr().String()

	cfg := DefaultConfig()
	cfg.Workspace.Host = addr
	_, err = Start(t.Context(), Options{Config: cfg, DataDir: t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listen for the workspace on "+addr)
	assert.Contains(t, err.Error(), "choose another port: the model's workspace.host, such as 127.0.0.1:0")

	// The first app's proxy listens on the first app address (addresses.go): hold the port there.
	takenByApp, err := net.Listen("tcp", net.JoinHostPort(appHost(1), "0"))
	require.NoError(t, err)
	defer takenByApp.Close()
	cfg = DefaultConfig()
	cfg.Apps[0].Port = takenByApp.Addr().(*net.TCPAddr).Port
	_, err = Start(t.Context(), Options{Config: cfg, DataDir: t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("listen for the proxy of app %q", cfg.Apps[0].Name))
	assert.Contains(t, err.Error(), "choose another port: the model's port of app "+cfg.Apps[0].Name+" (0 picks a free one)")
}
