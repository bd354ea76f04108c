package runner

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// childListen, in this test binary's environment, makes it a child that listens on that network and host with
// $DATABRICKS_APP_PORT until it is stopped, as an app that ignores APP_LISTEN_ADDR would.
const childListen = "RUNNER_TEST_LISTEN"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childListen); spec != "" {
		network, host, _ := strings.Cut(spec, " ")
		ln, err := net.Listen(network, net.JoinHostPort(host, os.Getenv("DATABRICKS_APP_PORT")))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		defer ln.Close()
		select {} // until SIGTERM
	}
	os.Exit(testkit.Run(m))
}

// startListening starts command through the runner on a free port and waits until it accepts on 127.0.0.1 (or, for
// a child that listens elsewhere only, until the kernel lists its socket). Nothing is ever dialled but loopback.
func startListening(t *testing.T, command []string, env ...string) (*App, int) {
	t.Helper()
	port := testkit.FreePort(t)
	out := &strings.Builder{}
	a, err := Start(Spec{Name: "listener", Command: command, Port: port, Env: env, Stdout: out, Stderr: out})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Stop(5 * time.Second) })
	require.Eventually(t, func() bool {
		select {
		case <-a.Done():
			t.Fatalf("%v exited: %v\n%s", command, a.Err(), out)
		default:
		}
		return len(listenersOn(port)) > 0
	}, patience, 20*time.Millisecond, "%v did not listen on port %d:\n%s", command, port, out)
	return a, port
}

func TestExposedListeners(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	require.NoError(t, err)
	tests := []struct {
		name, network, host string
		exposed             string // with the port appended; "" for none
	}{
		{"every interface, dual stack (what Go does for 0.0.0.0)", "tcp", "0.0.0.0", "[::]"},
		{"every IPv4 interface", "tcp4", "0.0.0.0", "0.0.0.0"},
		{"every IPv6 interface", "tcp6", "::", "[::]"},
		{"IPv4 loopback", "tcp", "127.0.0.1", ""},
		{"IPv6 loopback", "tcp6", "::1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, port := startListening(t, []string{self}, childListen+"="+tt.network+" "+tt.host)
			if tt.exposed == "" {
				assert.Empty(t, a.ExposedListeners())
			} else {
				assert.Equal(t, []string{tt.exposed + ":" + strconv.Itoa(port)}, a.ExposedListeners())
			}
		})
	}
}

func TestParseProcAddr(t *testing.T) {
	t.Parallel()
	// As the kernel prints them on a little-endian machine (amd64, arm64).
	tests := map[string]string{
		"0100007F:1F40":                         "127.0.0.1:8000",
		"00000000:1F40":                         "0.0.0.0:8000",
		"0500A8C0:0050":                         "192.168.0.5:80",
		"00000000000000000000000001000000:1F40": "[::1]:8000",
		"00000000000000000000000000000000:1F40": "[::]:8000",
		"0000000000000000FFFF00000100007F:1F40": "127.0.0.1:8000",
	}
	require.Equal(t, uint16(1), binary.NativeEndian.Uint16([]byte{1, 0}), "the strings above are a little-endian machine's")
	for in, want := range tests {
		got, ok := parseProcAddr(in)
		require.True(t, ok, in)
		assert.Equal(t, want, got.String(), in)
	}
	for _, bad := range []string{"", "7F:1F40", "0100007F", "0100007G:1F40", "0100007F:12345"} {
		_, ok := parseProcAddr(bad)
		assert.False(t, ok, bad)
	}
}

// The app and caller serve, started as the emulator starts them, listen on 127.0.0.1 only (APP_LISTEN_ADDR), although
// DATABRICKS_APP_PORT alone would make them listen on every interface.
func TestAppsListenOnLoopbackOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pkg  string
		args []string
		env  []string
	}{
		{"the app", "app", nil, []string{"DATABRICKS_APP_NAME=api-app"}},
		{"caller serve", "caller", []string{"serve"}, []string{"DATABRICKS_APP_NAME=caller-app",
			"TARGET_APP_URL=http://127.0.0.1:1", "DATABRICKS_HOST=http://127.0.0.1:1",
			"DATABRICKS_CLIENT_ID=00000000-0000-0000-0000-000000000000", "DATABRICKS_CLIENT_SECRET=not-used"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := testkit.Build(t, tt.pkg)
			a, port := startListening(t, append([]string{bin}, tt.args...), tt.env...)
			require.NoError(t, a.WaitListening(t.Context(), net.JoinHostPort("127.0.0.1", strconv.Itoa(port))))
			assert.Empty(t, a.ExposedListeners())
			assert.Equal(t, []string{"127.0.0.1:" + strconv.Itoa(port)}, addrStrings(listenersOn(port)))
		})
	}
}

func addrStrings(addrs []netip.AddrPort) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}
