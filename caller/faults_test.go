package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// Fault tests: the workspace going away and coming back, the app restarting under a caller that retries.

// TestStressTokenEndpointDown: with the workspace's token endpoint unreachable, the caller gives up within --timeout
// (not the SDK's 300 s of connection retries, nor one retry budget per discovery step) with the network exit code
// and names the workspace to check; once the workspace is back, the next call succeeds.
func TestStressTokenEndpointDown(t *testing.T) {
	e := startEmulator(t, 0)
	modes := map[string][]string{
		"external": {"--mode", "external"},
		"local":    {"--mode", "local", "--profile", "emulator"},
	}
	env := map[string]map[string]string{"external": e.spEnv("external-service"), "local": e.env()}
	require.NoError(t, e.ws.Down()) // unreachable: its listener is closed; the app proxies still serve

	const timeout = 4 * time.Second
	t.Run("while down", func(t *testing.T) {
		for _, mode := range []string{"external", "local"} {
			t.Run(mode, func(t *testing.T) {
				t.Parallel() // each waits out --timeout: side by side
				start := time.Now()
				r := runCaller(t, env[mode], append(modes[mode], "--app", "api-app", "--timeout", timeout.String(), "whoami")...)
				took := time.Since(start)
				t.Logf("%s mode failed after %s (--timeout %s)", mode, took.Round(time.Millisecond), timeout)
				assert.Equal(t, exitNetwork, r.code, r.String())
				assert.Contains(t, r.stderr, "cannot get a token: nothing is listening at the workspace "+e.state.WorkspaceHost)
				assert.Contains(t, r.stderr, "the workspace URL is right: "+e.state.WorkspaceHost)
				assert.Contains(t, r.stderr, "curl -sI "+e.state.WorkspaceHost+"/oidc/.well-known/oauth-authorization-server")
				// A bound, not a speed claim (3 s of slack for a loaded machine): without the fix, the SDK's host metadata and
				// OAuth discovery steps each retried for --timeout, twice the bound at least.
				assert.Less(t, took, timeout+3*time.Second, "bounded by --timeout")
			})
		}
	})
	require.NoError(t, e.ws.Up())
	for _, mode := range []string{"external", "local"} {
		t.Run(mode+" once back", func(t *testing.T) {
			r := runCaller(t, env[mode], append(modes[mode], "--app", "api-app", "whoami")...)
			assert.Equal(t, exitOK, r.code, r.String())
			assert.Contains(t, r.stdout, "The app saw you as")
		})
	}
}

// TestStressAppRestartsWhileTheCallerRetries: the app goes away (its proxy answers 502) and comes back on the same
// port while a caller is retrying; the call succeeds within the retry budget.
func TestStressAppRestartsWhileTheCallerRetries(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	port := testkit.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	app := startAPIApp(t, e, addr)
	require.NoError(t, e.ws.SetUpstream("api-app", app.URL))
	require.NoError(t, app.Stop(t)) // the app is down; the proxy still points at its port

	// The caller's first attempt meets the 502; the app restarts when the caller says it will retry.
	saw502 := make(chan struct{})
	stderr := &watchWriter{pattern: regexp.MustCompile("502 Bad Gateway: retry 1/"), then: func(string) { close(saw502) }}
	var stdout bytes.Buffer
	args := []string{"--mode", "external", "--url", e.state.Apps["api-app"].URL, "--retries", "6", "--timeout", "30s", "whoami"}
	env := e.spEnv("external-service")
	done := make(chan error, 1)
	go func() {
		done <- run(t.Context(), args, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, stderr)
	}()
	select {
	case <-saw502:
	case err := <-done:
		t.Fatalf("the caller ended before retrying a 502: exit %d\n%s", exitCode(err), stderr)
	case <-time.After(testkit.Patience):
		t.Fatal("the caller never saw the app's 502")
	}
	startAPIApp(t, e, addr)
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(testkit.Patience):
		t.Fatal("the caller did not finish")
	}
	r := ran(t, args, stdout.String(), stderr.String(), runErr)
	require.Equal(t, exitOK, r.code, r.String())
	assert.Contains(t, r.stdout, "The app saw you as 2001@"+e.state.WorkspaceID)
	retries := strings.Count(r.stderr, "502 Bad Gateway: retry ")
	t.Logf("502s retried before the app was back: %d", retries)
	assert.GreaterOrEqual(t, retries, 1)
	assert.Less(t, retries, 6, "within the retry budget")
}
