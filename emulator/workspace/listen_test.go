package workspace

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
)

// Every listener of the emulator, the workspace's and each app proxy's, closes a keep-alive connection left idle
// and one whose request headers never finish, as the app's own server does; without that, idle clients pile up.
// Each timeout is short in a workspace of its own, so that a request the test does finish never races it.
func TestListenersCloseIdleAndSlowConnections(t *testing.T) {
	t.Parallel()
	idle, _ := startWorkspace(t, Options{IdleTimeout: 100 * time.Millisecond})
	slow, _ := startWorkspace(t, Options{ReadHeaderTimeout: 100 * time.Millisecond})
	listeners := func(w *Workspace) map[string]string {
		l := map[string]string{"workspace": w.URL() + PathHostMetadata}
		for _, a := range w.Config().Apps {
			l["proxy of "+a.Name] = w.AppURL(a.Name) + "/" // a browser path: 302, no app needed
		}
		return l
	}
	for name, target := range listeners(idle) {
		host := strings.TrimPrefix(target, "http://")
		host, path, _ := strings.Cut(host, "/")
		t.Run(name+": idle keep-alive connection", func(t *testing.T) {
			conn := dial(t, host)
			_, err := io.WriteString(conn, "GET /"+path+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
			require.NoError(t, err)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			require.False(t, resp.Close, "the server keeps the connection alive")
			assertClosedByServer(t, conn, br)
		})
	}
	for name, target := range listeners(slow) {
		host := strings.TrimPrefix(target, "http://")
		host, path, _ := strings.Cut(host, "/")
		t.Run(name+": headers that never finish", func(t *testing.T) {
			conn := dial(t, host)
			_, err := io.WriteString(conn, "GET /"+path+" HTTP/1.1\r\nHost: "+host+"\r\n")
			require.NoError(t, err)
			assertClosedByServer(t, conn, bufio.NewReader(conn))
		})
	}
}

func dial(t *testing.T, host string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", host, patience)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// assertClosedByServer waits, up to a bound far above the test's timeouts, for the server to close conn.
func assertClosedByServer(t *testing.T, conn net.Conn, br *bufio.Reader) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(patience)))
	_, err := io.Copy(io.Discard, br) // a 408 or nothing, then EOF
	var netErr net.Error
	assert.False(t, errors.As(err, &netErr) && netErr.Timeout(), "the server left the connection open")
}

// The read timeout bounds reading a request, not the life of an upgraded connection: a WebSocket through the proxy
// outlives it.
func TestReadTimeoutSparesUpgradedConnections(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{ReadTimeout: 100 * time.Millisecond})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	dev := issueAt(t, w, time.Now(), "dev@example.com", "all-apis") // no request that a 100 ms read timeout could cut
	resp, conn, br := rawUpgrade(t, w.AppURL("api-app")+"/api/ws", bearer(dev))
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	time.Sleep(300 * time.Millisecond) // three read timeouts
	_, err := conn.Write([]byte("still there\n"))
	require.NoError(t, err)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "echo: still there\n", line)
}

// Down closes the workspace's listener, as when a workspace is unreachable: an SDK call fails to connect, an open
// connection is closed, and the apps' proxies keep serving. Up listens again on the same address, with the same
// state and tokens; Close works while the workspace is down.
func TestWorkspaceDownAndUp(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	token := m2mToken(t, w, "external-service")
	c := sdkClient(t, w, token)
	_, err := c.CurrentUser.Me(t.Context(), iam.MeRequest{})
	require.NoError(t, err)
	host := strings.TrimPrefix(w.URL(), "http://")
	open := dial(t, host)
	br := bufio.NewReader(open)

	require.NoError(t, w.Down())
	require.NoError(t, w.Down(), "down again does nothing")
	assertClosedByServer(t, open, br)
	// The SDK retries a refused connection for RetryTimeoutSeconds, after one attempt at least: one second here.
	impatient, err := databricks.NewWorkspaceClient(&databricks.Config{Host: w.URL(), AuthType: "pat", Token: token,
		RetryTimeoutSeconds: 1, Loaders: []config.Loader{sdkconfig.ExplicitOnly{}}})
	require.NoError(t, err)
	_, err = impatient.CurrentUser.Me(t.Context(), iam.MeRequest{})
	require.Error(t, err)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED, "%v", err)
	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+"/api/whoami", bearer(token))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the proxies keep serving: %s", body)

	require.NoError(t, w.Up())
	require.NoError(t, w.Up(), "up again does nothing")
	me, err := c.CurrentUser.Me(t.Context(), iam.MeRequest{})
	require.NoError(t, err, "the same address, the same token")
	assert.Equal(t, w.State().ServicePrincipals["external-service"].ClientID, me.UserName)

	require.NoError(t, w.Down())
	require.NoError(t, w.Close(), "Close while down")
	assert.ErrorIs(t, w.Up(), errClosing)
	assert.ErrorIs(t, w.Down(), errClosing)
}

// Down stays down until Up, even after a timed down, and no app is given the workspace's port meanwhile.
func TestDownAfterATimedDownStaysDown(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	status, _ := control(t, w, http.MethodPost, PathDown, `{"for":"200ms"}`)
	require.Equal(t, http.StatusAccepted, status)
	require.NoError(t, w.Down())
	appPorts.mu.Lock()
	kept := appPorts.reserved[w.port()]
	appPorts.mu.Unlock()
	assert.True(t, kept, "the port of a workspace that is down is kept from apps")
	time.Sleep(500 * time.Millisecond) // past the timed down's end
	_, err := http.Get(w.URL() + PathHostMetadata)
	require.Error(t, err, "up again without Up")
	require.NoError(t, w.Up())
	resp, err := http.Get(w.URL() + PathHostMetadata)
	require.NoError(t, err)
	resp.Body.Close()
}
