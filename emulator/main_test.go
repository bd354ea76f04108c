package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// echoAppRole makes the test binary act as an app that echoes what it received, for `emulator run` tests.
const echoAppRole = "EMULATOR_TEST_ECHO_APP"

// TestMain lets the test binary be the CLI stand-in (when the SDK runs the copy named databricks) or an app
// started by `emulator run`, so these tests need no `go build`.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == workspace.CLIFileName {
		if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(echoAppRole) == "1" {
		serveEchoApp()
		os.Exit(0)
	}
	// No test may keep its workspace in the user's state directory: should one forget --fresh, it lands here.
	state, err := os.MkdirTemp("", "emulator-test-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_STATE_HOME", state)
	code := m.Run()
	_ = os.RemoveAll(state)
	os.Exit(code)
}

// echoResponse is what the echo apps answer: the headers they received and, for the one `run` starts, the
// platform environment they were given (the secret only as "set or not").
type echoResponse struct {
	Headers http.Header       `json:"headers"`
	Env     map[string]string `json:"env,omitempty"`
}

func echoHandler(env map[string]string) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(echoResponse{Headers: r.Header, Env: env})
	})
}

func serveEchoApp() {
	env := map[string]string{}
	for _, k := range []string{"DATABRICKS_APP_NAME", "DATABRICKS_APP_PORT", "DATABRICKS_HOST",
		"DATABRICKS_WORKSPACE_ID", "DATABRICKS_CLIENT_ID", "FROM_APP_YAML", "TARGET_APP"} {
		env[k] = os.Getenv(k)
	}
	env["DATABRICKS_CLIENT_SECRET_SET"] = fmt.Sprint(os.Getenv("DATABRICKS_CLIENT_SECRET") != "")
	env["ARGS"] = strings.Join(os.Args[1:], " ")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: "0.0.0.0:" + os.Getenv("DATABRICKS_APP_PORT"), Handler: echoHandler(env)}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// startEmulator starts the default model in-process, with an echo upstream for each app.
func startEmulator(t *testing.T, opts workspace.Options) (*workspace.Workspace, *testkit.Buffer) {
	t.Helper()
	w, logs := emulated.Start(t, opts)
	for _, app := range w.Config().Apps {
		upstream := httptest.NewServer(echoHandler(nil))
		t.Cleanup(upstream.Close)
		require.NoError(t, w.SetUpstream(app.Name, upstream.URL))
	}
	return w, logs
}

// callApp sends GET url with the token and returns the status and what the app saw.
func callApp(t *testing.T, url, token string) (int, echoResponse) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	return doApp(t, req)
}

func doApp(t *testing.T, req *http.Request) (int, echoResponse) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var seen echoResponse
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&seen))
	}
	return resp.StatusCode, seen
}

// waitForFile polls for a file another goroutine writes, failing the test after a deadline.
func waitForFile(t *testing.T, path string, errc <-chan error) []byte {
	t.Helper()
	deadline := time.Now().Add(testkit.Patience)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil {
			return data
		}
		select {
		case err := <-errc:
			t.Fatalf("the emulator stopped before writing %s: %v", path, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not appear", path)
	return nil
}
