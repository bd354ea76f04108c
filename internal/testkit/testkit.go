// Package testkit is the one test harness of this repository's packages outside app/ (which copies alone, so its
// tests use only the standard library and testify): a buffer that is safe to read while something writes to it,
// this module's programs built once per test binary, processes stopped as the platform stops an app, an environment
// free of the developer's own Databricks settings, and the check that no secret reached an output.
//
// Package emulated, beside it, starts the emulated workspace in-process and the app behind its proxy.
package testkit

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Buffer is an io.Writer that goroutines and processes write to while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// envPrefixes are the variables through which a developer's own Databricks settings would reach the SDK.
var envPrefixes = []string{"DATABRICKS_", "ARM_", "GOOGLE_", "ACTIONS_ID_TOKEN_"}

// CleanEnv keeps the developer's Databricks settings (variables and ~/.databrickscfg) out of the test: it unsets
// every DATABRICKS_*, ARM_*, GOOGLE_* and ACTIONS_ID_TOKEN_* variable and moves HOME to a temporary folder, all
// restored when the test ends. Builds keep the developer's warm cache (see Build).
func CleanEnv(t testing.TB) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		for _, prefix := range envPrefixes {
			if strings.HasPrefix(name, prefix) {
				t.Setenv(name, "") // registers the restore, and refuses a parallel test
				require.NoError(t, os.Unsetenv(name))
				t.Cleanup(func() { _ = os.Setenv(name, value) })
			}
		}
	}
	t.Setenv("HOME", t.TempDir())
	// A race-built child of this test binary (the CLI stand-in, an app) would otherwise sleep 1 s at exit.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// IsolateProcess is CleanEnv for a whole test binary, from TestMain, where the tests share one environment: it
// unsets the same variables and the proxy settings, and points HOME at a new folder, which it returns with the
// function that removes it.
func IsolateProcess() (home string, cleanup func()) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, prefix := range append(envPrefixes, "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy") {
			if strings.HasPrefix(name, prefix) {
				_ = os.Unsetenv(name)
			}
		}
	}
	home, err := os.MkdirTemp("", "go-apps-api-test-home-")
	if err != nil {
		panic(err)
	}
	_ = os.Setenv("HOME", home)
	return home, func() { _ = os.RemoveAll(home) }
}

// FreePort is a TCP port free on 127.0.0.1 now, for a program that takes a port rather than an address.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// JWT matches any JSON Web Token: its header and claims are base64url JSON objects, so both begin "eyJ". Every
// token the emulated workspace issues is one, so a JWT in an output a test did not ask for is a leak.
var JWT = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*`)

// AssertNoSecrets checks that output holds none of the secrets and no token.
func AssertNoSecrets(t testing.TB, output string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		require.NotEmpty(t, secret, "a secret to look for is empty")
		assert.NotContains(t, output, secret)
	}
	assert.Empty(t, JWT.FindAllString(output, 3), "tokens in the output")
}

// ProcStatusKB reads one "Name:   123 kB" field of /proc/PID/status (VmRSS: resident now, VmHWM: the peak).
func ProcStatusKB(t testing.TB, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err, "this test measures a process's memory through /proc (Linux)")
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
