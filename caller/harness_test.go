package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/caller/appclient"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// The caller's tests run against the emulated workspace and its Apps proxies, with the real app (app/) behind
// api-app, and run the caller in-process as a person runs it. What a workspace or an app does only on a bad day (a
// 503, a stall, a reset, a GiB answer, a revoked token, a workspace that is down) the emulator plays on purpose:
// e.inject(t, workspace.Fault{…}), e.ws.RevokeTokens, e.ws.Down. Everything listens on 127.0.0.1 ports chosen at
// start and stops with the test.

// emulator is a running workspace with the app attached and the signed-in user's CLI profile written.
type emulator struct {
	ws    *workspace.Workspace
	state workspace.State
	home  string // HOME for the caller: where `callapp login` caches tokens
}

func startEmulator(t *testing.T, lifetime time.Duration) *emulator {
	t.Helper()
	ws, _ := emulated.Start(t, workspace.Options{TokenLifetime: lifetime})
	self, err := os.Executable()
	require.NoError(t, err)
	_, err = ws.WriteProfile(t.TempDir(), self) // this test binary doubles as the CLI stand-in (see TestMain)
	require.NoError(t, err)
	e := &emulator{ws: ws, state: ws.State(), home: t.TempDir()}
	require.NoError(t, ws.SetUpstream("api-app", startAPIApp(t, e, "127.0.0.1:0").URL))
	e.state = ws.State()
	return e
}

// env is a caller environment: HOME, the emulator's CLI profile, plus extra.
func (e *emulator) env(extra ...string) map[string]string {
	env := map[string]string{"HOME": e.home, "DATABRICKS_CONFIG_FILE": e.state.ConfigFile}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

// spEnv is external mode's environment for one of the model's service principals.
func (e *emulator) spEnv(name string) map[string]string {
	sp := e.state.ServicePrincipals[name]
	return e.env("DATABRICKS_HOST", e.state.WorkspaceHost, "DATABRICKS_CLIENT_ID", sp.ClientID, "DATABRICKS_CLIENT_SECRET", sp.ClientSecret)
}

// inject plays f until the test ends: an app's odd answer (App "api-app") or the workspace's own (App "").
func (e *emulator) inject(t *testing.T, f workspace.Fault) *workspace.InjectedFault {
	t.Helper()
	injected, err := e.ws.InjectFault(f)
	require.NoError(t, err)
	t.Cleanup(injected.Clear)
	return injected
}

// startAPIApp runs app/ at addr as api-app's service principal would (the platform's environment), and returns it
// once /api/health answers; the test's end, or its Stop, sends SIGTERM.
func startAPIApp(t *testing.T, e *emulator, addr string) *testkit.App {
	t.Helper()
	return testkit.StartAppAt(t, testkit.Build(t, "app"), addr, emulated.AppEnv(e.ws, "api-app"))
}

// startServe runs `callapp serve` in-process with exactly env as its environment, and returns its URL once
// /api/health answers. The test's end stops it as SIGTERM does (a cancelled context) and checks it stopped cleanly
// and logged no secret.
func startServe(t *testing.T, env map[string]string) (url string) {
	t.Helper()
	url = fmt.Sprintf("http://127.0.0.1:%d", testkit.FreePort(t))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &testkit.Buffer{}
	go func() {
		done <- run(ctx, []string{"serve", "--listen", strings.TrimPrefix(url, "http://"), "--timeout", "20s"},
			func(k string) string { return env[k] }, strings.NewReader(""), logs, logs)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			assert.NoError(t, err, "serve stops cleanly on SIGTERM (context cancel)")
		case <-time.After(testkit.Patience):
			t.Error("serve did not stop")
		}
		testkit.AssertNoSecrets(t, logs.String(), modelSecrets)
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/api/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, testkit.Patience, 20*time.Millisecond)
	return url
}

// startCallerApp runs `callapp serve` in-process as caller-app (app mode: the platform's env for its service
// principal, TARGET_APP from its app resource) and attaches it to caller-app's proxy.
func startCallerApp(t *testing.T, e *emulator) (url string) {
	t.Helper()
	env := emulated.AppEnv(e.ws, "caller-app")
	env["TARGET_APP"], env["HOME"] = "api-app", t.TempDir()
	url = startServe(t, env)
	require.NoError(t, e.ws.SetUpstream("caller-app", url))
	return url
}

// result is one in-process run of the caller.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string { return fmt.Sprintf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr) }

// runCaller runs the real program in-process with exactly env as its environment and HOME in a temp dir.
func runCaller(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runCallerStdin(t, env, "", args...)
}

func runCallerStdin(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	full := map[string]string{"HOME": t.TempDir()}
	for k, v := range env {
		full[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Patience)
	defer cancel()
	var stdout, stderr strings.Builder
	err := run(ctx, append([]string{"--timeout", "20s"}, args...), func(k string) string { return full[k] },
		strings.NewReader(stdin), &stdout, &stderr)
	return ran(t, args, stdout.String(), stderr.String(), err)
}

// ran is the result of a run of the caller with args that ended with err, logged and checked for secrets.
func ran(t *testing.T, args []string, stdout, stderr string, err error) result {
	t.Helper()
	r := result{stdout: stdout, stderr: stderr, code: exitCode(err)}
	t.Logf("caller %s → exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	assertNoSecrets(t, r, args)
	return r
}

// modelSecrets begins every client secret of the emulator's model, and of the service principals it makes for apps.
const modelSecrets = "emulator-secret-"

// assertNoSecrets runs on every run of every test: no output holds a client secret or a token (every token here is
// a JWT), except token's stdout, whose purpose it is.
func assertNoSecrets(t *testing.T, r result, args []string) {
	t.Helper()
	testkit.AssertNoSecrets(t, r.stderr, modelSecrets)
	if !slices.Contains(args, "token") {
		testkit.AssertNoSecrets(t, r.stdout, modelSecrets)
	}
}

// testEnv is the env of a command with opts and getenv, printing nothing, over the standard transport.
func testEnv(opts *options, getenv func(string) string) *env {
	e := &env{opts: opts, getenv: getenv, stdin: strings.NewReader(""), out: &output{stdout: discard{}, stderr: discard{}}}
	e.proxy = proxyFromEnv(getenv)
	e.transport = appclient.NewTransport(func(r *http.Request) (*url.URL, error) { return e.proxy(r.URL) })
	return e
}

// watchWriter collects what is written and, the first time pattern matches it, calls then with the match: to act
// when a running caller prints something (an authorization URL to open, a retry to provoke the next step).
type watchWriter struct {
	testkit.Buffer
	pattern *regexp.Regexp
	then    func(match string)
	once    sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if m := w.pattern.FindString(w.String()); m != "" {
		w.once.Do(func() { w.then(m) })
	}
	return n, err
}
