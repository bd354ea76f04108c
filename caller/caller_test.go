package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// TestMain keeps the developer's own Databricks configuration out of the tests: the SDK and the CLI stand-in read
// the process environment and ~/.databrickscfg.
//
// Run under the name databricks, the test binary is the emulator's Databricks CLI stand-in: the e2e tests install
// a copy of it next to the emulator's profile, which saves building another SDK binary.
func TestMain(m *testing.M) {
	emulated.ServeAsCLI()
	_, cleanup := testkit.IsolateProcess()
	code := testkit.Run(m) // removes what the tests built
	cleanup()
	os.Exit(code)
}

func TestParseArgs(t *testing.T) {
	t.Parallel()
	// what a command line parses to: the command, the shared options and the command's own flags.
	type want struct {
		name string
		opts options
		own  string // the command's own values, as %+v of its struct; "" for commands without any
	}
	defaults := func(o options) options {
		o.mode = cmp.Or(o.mode, ModeAuto)
		o.timeout = cmp.Or(o.timeout, 60*time.Second)
		if o.retries == 0 {
			o.retries = 3
		}
		return o
	}
	ok := []struct {
		args []string
		want want
	}{
		{[]string{"--url", "https://a.example", "whoami"}, want{"whoami", options{url: "https://a.example"}, "{repeat:0}"}},
		{[]string{"whoami", "--json", "--url", "https://a.example"}, want{"whoami", options{url: "https://a.example", json: true}, "{repeat:0}"}},
		{[]string{"call", "POST", "/api/echo", "--data", "{}"}, want{"call", options{}, "{data:{} repeat:0 method:POST path:/api/echo}"}},
		{[]string{"--data", `{"a":1}`, "call", "/api/echo"}, want{"call", options{}, `{data:{"a":1} repeat:0 method:POST path:/api/echo}`}},
		{[]string{"call", "delete", "/api/x"}, want{"call", options{}, "{data: repeat:0 method:DELETE path:/api/x}"}},
		{[]string{"whoami", "--repeat", "1000"}, want{"whoami", options{}, "{repeat:1000}"}},
		{[]string{"--repeat", "1", "call", "/api/x"}, want{"call", options{}, "{data: repeat:1 method:GET path:/api/x}"}},
		{[]string{"--mode", "external", "--host", "w.example", "--client-id", "c", "--client-secret-stdin", "--retries", "0",
			"--timeout", "5s", "--app", "a", "doctor"},
			want{"doctor", options{mode: ModeExternal, host: "w.example", clientID: "c", clientSecretStdin: true, retries: 0,
				timeout: 5 * time.Second, app: "a"}, ""}},
		{[]string{"--mode", "federated", "--oidc-token-file", "/t", "token"}, want{"token", options{mode: ModeFederated, oidcTokenFile: "/t"}, ""}},
		{[]string{"--profile", "p", "login", "--scopes", "sql, file.files,sql", "--no-browser", "--port", "8030"},
			want{"login", options{profile: "p", scopes: []string{"file.files", "sql"}}, "{noBrowser:true port:8030}"}},
		{[]string{"login", "--scopes", "sql file.files"}, want{"login", options{scopes: []string{"file.files", "sql"}}, "{noBrowser:false port:0}"}},
		{[]string{"serve", "--listen", "127.0.0.1:9"}, want{"serve", options{mode: ModeApp}, "{listen:127.0.0.1:9}"}},
	}
	for _, tt := range ok {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			p, err := parseArgs(tt.args, io.Discard)
			require.NoError(t, err)
			assert.Equal(t, tt.want.name, p.name)
			wantOpts := defaults(tt.want.opts)
			if slices.Contains(tt.args, "--retries") {
				wantOpts.retries = tt.want.opts.retries
			}
			assert.Equal(t, wantOpts, *p.opts)
			assert.Equal(t, tt.want.own, ownFlags(p), "the command's own flags")
		})
	}

	refused := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"--json"}, "no command (want one of call, doctor, login, serve, token, whoami)"},
		{[]string{"--mode", "magic", "whoami"}, `invalid argument "magic" for "--mode" flag: want local, external, app, federated or auto`},
		{[]string{"call"}, "call takes [METHOD] PATH"},
		{[]string{"call", "BREW", "/api/x"}, "unsupported method"},
		{[]string{"--url", "u", "--app", "a", "whoami"}, "not both"},
		{[]string{"--url", "127.0.0.1:8000", "whoami"}, `--url "127.0.0.1:8000" has no scheme: give the whole URL, https://127.0.0.1:8000`},
		{[]string{"whoami", "extra"}, "takes no arguments"},
		{[]string{"--client-secret", "x", "whoami"}, "unknown flag: --client-secret"},
		{[]string{"--client-secret-stdin=x", "whoami"}, "--client-secret-stdin takes no value: pipe the secret on stdin"},
		{[]string{"-client-secret-stdin=x", "whoami"}, "--client-secret-stdin takes no value: pipe the secret on stdin"},
		{[]string{"-json", "whoami"}, "unknown flag -json: flags take two dashes, --json"},
		{[]string{"--data", "{}", "whoami"}, "--data applies to call only"},
		{[]string{"--url", "https://a.example", "login"}, "--url applies to call, doctor, token and whoami only"},
		{[]string{"--no-browser", "login"}, "--no-browser is a flag of login: give it after the command"},
		{[]string{"--repeat", "0", "whoami"}, "--repeat must be between 1 and 100000"},
		{[]string{"--repeat", "100001", "whoami"}, "--repeat must be between 1 and 100000"},
		{[]string{"--repeat", "5", "token"}, "--repeat applies to call and whoami only"},
		{[]string{"--timeout", "0s", "whoami"}, "--timeout must be positive"},
		{[]string{"--retries", "11", "whoami"}, "--retries must be between 0 and 10"},
		{[]string{"login", "--port", "70000"}, "--port must be a TCP port"},
	}
	for _, tt := range refused {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseArgs(tt.args, io.Discard)
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}

	// Help comes from the definitions: every command and flag is in it, and the exit codes.
	for _, help := range [][]string{{"help"}, {"--help"}, {"-h"}, {"help", "call"}, {"call", "--help"}} {
		var out strings.Builder
		_, err := parseArgs(help, &out)
		assert.ErrorIs(t, err, errHelp)
		assert.Contains(t, out.String(), "Exit codes: 0 ok", help)
	}
	var out strings.Builder
	_, err := parseArgs([]string{"help"}, &out)
	require.ErrorIs(t, err, errHelp)
	for _, word := range []string{"call", "whoami", "token", "login", "doctor", "serve", "--mode", "--profile", "--host",
		"--client-id", "--client-secret-stdin", "--oidc-token-file", "--scopes", "--timeout", "--retries", "--json"} {
		assert.Contains(t, out.String(), word)
	}
	// Completion, for bash and the others: from the same definitions.
	out.Reset()
	_, err = parseArgs([]string{"completion", "bash"}, &out)
	require.ErrorIs(t, err, errHelp)
	assert.Contains(t, out.String(), "bash completion")
	out.Reset()
	_, err = parseArgs([]string{"__complete", "--mode", ""}, &out)
	require.ErrorIs(t, err, errHelp)
	assert.True(t, strings.HasPrefix(out.String(), "local\nexternal\napp\nfederated\nauto\n"), "--mode completes to the modes: %s", out.String())
}

// ownFlags is the parsed command's own values, as %+v of its struct; "" for a command without any.
func ownFlags(p *parsed) string {
	if p.own == nil {
		return ""
	}
	return strings.TrimPrefix(fmt.Sprintf("%+v", p.own), "&")
}

// TestStatusMatrix: every answer maps to its exit code and the page's checklist. The app's odd answers are faults the
// emulator plays in its place, on paths the app need not have; the 404 is the app's own.
func TestStatusMatrix(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	ws, sp := e.state.WorkspaceID, e.state.ServicePrincipals["external-service"]
	tests := []struct {
		name     string
		path     string
		fault    workspace.Fault // what the app answers on path; none: the app itself answers
		code     int
		contains []string
		hits     int // how many of the caller's requests the fault answered
	}{
		{"200", "/api/whoami", workspace.Fault{}, exitOK, []string{"2001@" + ws}, 0},
		{"403 no CAN USE", "/api/forbidden", workspace.Fault{Status: http.StatusForbidden, Message: "no CAN_USE on api-app"},
			exitPermission, []string{"403 Forbidden", "CAN USE", "databricks apps update-permissions",
				`"service_principal_name":"` + sp.ClientID + `"`}, 1},
		{"403 scopes", "/api/scopes", workspace.Fault{Status: http.StatusForbidden, Message: "the token lacks the scopes sql file.files"},
			exitPermission, []string{"403", "the server said: PERMISSION_DENIED: the token lacks the scopes sql file.files"}, 1},
		{"404", "/api/nope", workspace.Fault{}, exitNotFound, []string{"404 Not Found", "the endpoint path exists in the app: /api/nope"}, 0},
		{"302 to the login page", "/api/redirect", workspace.Fault{Redirect: e.state.WorkspaceHost + workspace.PathLogin + "?next_url=x"},
			exitAuth, []string{"not authenticated: the proxy sent you to the login page", workspace.PathLogin}, 1}, // not followed
		{"500", "/api/boom", workspace.Fault{Status: http.StatusInternalServerError, Message: "boom"},
			exitServer, []string{"500 Internal Server Error"}, 1}, // not retried
		{"502", "/api/down", workspace.Fault{Status: http.StatusBadGateway, Message: "app not listening"},
			exitServer, []string{"502", "after 4 attempts"}, 4},
		{"503 twice, then 200", "/api/whoami", workspace.Fault{Status: http.StatusServiceUnavailable, RetryAfter: "0", Times: 2},
			exitOK, []string{"2001@" + ws, "retry 2/3"}, 2},
		{"reset once, then 200", "/api/whoami", workspace.Fault{Reset: true, Times: 1},
			exitOK, []string{"2001@" + ws, "connection reset", "retry 1/3"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f *workspace.InjectedFault
			if tt.fault != (workspace.Fault{}) {
				tt.fault.App, tt.fault.Path = "api-app", tt.path
				f = e.inject(t, tt.fault)
			}
			logins := e.ws.RequestCount(workspace.PathLogin)
			r := runCaller(t, e.spEnv("external-service"), "--mode", "external", "--url", e.state.Apps["api-app"].URL,
				"--retries", "3", "call", tt.path)
			assert.Equal(t, tt.code, r.code, r.String())
			for _, s := range tt.contains {
				assert.Contains(t, r.stdout+r.stderr, s)
			}
			if f != nil {
				assert.Equal(t, tt.hits, f.Hits(), "the caller's requests the fault answered")
			}
			assert.Equal(t, logins, e.ws.RequestCount(workspace.PathLogin), "redirects are not followed")
		})
	}
}

func TestRetriesHonourMethodAndBudget(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	api := e.state.Apps["api-app"].URL
	down := e.inject(t, workspace.Fault{App: "api-app", Path: "/api/echo", Status: http.StatusBadGateway})
	r := runCaller(t, e.spEnv("external-service"), "--mode", "external", "--url", api, "call", "POST", "/api/echo", "--data", "{}")
	assert.Equal(t, exitServer, r.code)
	assert.Equal(t, 1, down.Hits(), "a POST is not retried after a 502: the app may have acted on it")
	flaky := e.inject(t, workspace.Fault{App: "api-app", Path: "/api/whoami", Status: http.StatusServiceUnavailable,
		RetryAfter: "0", Times: 2})
	r = runCaller(t, e.spEnv("external-service"), "--mode", "external", "--url", api, "--retries", "0", "call", "/api/whoami")
	assert.Equal(t, exitServer, r.code)
	assert.Equal(t, 1, flaky.Hits())
}

func TestRefreshOnceAfter401(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	env, api := e.spEnv("external-service"), e.state.Apps["api-app"].URL
	// A revoked token: the first call's token is rejected; the refreshed one works.
	tokens := e.ws.RequestCount(workspace.PathToken)
	s, err := newSession(t.Context(), testEnv(&options{mode: ModeExternal, timeout: 10 * time.Second, retries: 0}, func(k string) string { return env[k] }))
	require.NoError(t, err)
	creds, c := s.creds, s.client
	tok1, _, err := creds.token(t.Context())
	require.NoError(t, err)
	require.NoError(t, e.ws.RevokeTokens("external-service"))
	resp, err := c.Do(t.Context(), "GET", api+"/api/whoami", nil)
	require.NoError(t, err)
	assert.Equal(t, 200, resp.Status)
	assert.True(t, resp.Refreshed)
	tok2, _, err := creds.token(t.Context())
	require.NoError(t, err)
	assert.NotEqual(t, tok1.Reveal(), tok2.Reveal())
	assert.Equal(t, tokens+2, e.ws.RequestCount(workspace.PathToken), "one refresh, not more")

	// An app that rejects every token: one refresh, one retry, then the 401 is reported.
	rejects := e.inject(t, workspace.Fault{App: "api-app", Path: "/api/whoami", Status: http.StatusUnauthorized, Message: "token rejected"})
	r := runCaller(t, env, "--mode", "external", "--url", api, "call", "/api/whoami")
	assert.Equal(t, exitAuth, r.code)
	assert.Contains(t, r.stderr, "even after a refresh")
	assert.Contains(t, r.stderr, "the token has not expired: ok")
	assert.Equal(t, 2, rejects.Hits())
}

func TestTimeoutBoundsTheCommand(t *testing.T) {
	e := startEmulator(t, 0)
	e.inject(t, workspace.Fault{App: "api-app", Path: "/api/whoami", Stall: true})
	start := time.Now()
	r := runCaller(t, e.spEnv("external-service"), "--mode", "external", "--url", e.state.Apps["api-app"].URL,
		"--timeout", "300ms", "call", "/api/whoami")
	assert.Equal(t, exitNetwork, r.code)
	assert.Contains(t, r.stderr, "timed out")
	// Not a speed claim: without --timeout the call waits out the proxy's 120 s for a stalled app.
	assert.Less(t, time.Since(start), time.Minute, "not the proxy's 120 s wait for a stalled app")
}

// TestServeSpeaksH2C: behind the Apps proxy, HTTP/2 arrives in cleartext.
func TestServeSpeaksH2C(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	env := e.spEnv("external-service")
	env["TARGET_APP_URL"] = e.state.Apps["api-app"].URL
	base := startServe(t, env)
	h2c := &http.Client{Transport: &http.Transport{Protocols: new(http.Protocols)}}
	h2c.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	resp, err := h2c.Get(base + "/api/call?path=/api/whoami")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, 2, resp.ProtoMajor, "HTTP/2 in cleartext")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	var got struct {
		Response identity.WhoAmI `json:"response"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, "2001@"+e.state.WorkspaceID, got.Response.User)
}

func TestModeErrorsNameWhatIsMissing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode string
		env  map[string]string
		want string
	}{
		{"external", map[string]string{"DATABRICKS_HOST": "https://w.example", "DATABRICKS_CLIENT_ID": "x"}, "external mode needs DATABRICKS_CLIENT_SECRET"},
		{"external", map[string]string{}, "external mode needs DATABRICKS_HOST, DATABRICKS_CLIENT_ID, DATABRICKS_CLIENT_SECRET"},
		{"app", map[string]string{"DATABRICKS_HOST": "w.example"}, "app mode needs DATABRICKS_CLIENT_ID, DATABRICKS_CLIENT_SECRET"},
	}
	for _, tt := range tests {
		r := runCaller(t, tt.env, "--mode", tt.mode, "--url", "https://a.example", "whoami")
		assert.Equal(t, exitUsage, r.code)
		assert.Contains(t, r.stderr, tt.want)
	}
	r := runCaller(t, nil, "--mode", "external", "--url", "https://a.example", "call", "/health")
	assert.Equal(t, exitUsage, r.code)
}

func TestSecretFromStdinAndNoSecretsInOutput(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	sp, api := e.state.ServicePrincipals["external-service"], e.state.Apps["api-app"].URL
	e.inject(t, workspace.Fault{App: "api-app", Path: "/api/forbidden", Status: http.StatusForbidden})
	e.inject(t, workspace.Fault{App: "api-app", Path: "/api/redirect", Redirect: e.state.WorkspaceHost + workspace.PathLogin})
	env := map[string]string{"DATABRICKS_HOST": e.state.WorkspaceHost, "DATABRICKS_CLIENT_ID": sp.ClientID}
	var outputs []result
	runs := [][]string{
		{"call", "/api/whoami"}, {"call", "POST", "/api/echo", "--data", `{"a":1}`}, {"whoami"}, {"whoami", "--json"},
		{"doctor"}, {"doctor", "--json"}, {"call", "/api/forbidden"}, {"call", "/api/nope", "--json"}, {"call", "/api/redirect"},
	}
	for _, args := range runs {
		outputs = append(outputs, runCallerStdin(t, env, sp.ClientSecret+"\n",
			append([]string{"--mode", "external", "--client-secret-stdin", "--url", api}, args...)...))
	}
	tok := runCallerStdin(t, env, sp.ClientSecret+"\n", "--mode", "external", "--client-secret-stdin", "token")
	require.Equal(t, exitOK, tok.code, tok.String())
	assert.Contains(t, tok.stderr, "warning")
	token := strings.TrimSpace(tok.stdout)
	require.Regexp(t, "^"+testkit.JWT.String(), token, "token prints the bearer token on stdout")
	r := runCaller(t, e.env("DATABRICKS_HOST", e.state.WorkspaceHost, "DATABRICKS_TOKEN", token), "--url", api, "whoami")
	require.Equal(t, exitOK, r.code, r.String())
	assert.Contains(t, r.stdout, "The app saw you as "+sp.ID+"@", "the token printed is the service principal's")
	for _, r := range append(outputs, result{stderr: tok.stderr}) {
		testkit.AssertNoSecrets(t, r.stdout+r.stderr, sp.ClientSecret, token)
	}

	// A secret pasted as the flag's value is a usage error that does not repeat it (runCaller checks every output).
	for _, flag := range []string{"--client-secret-stdin=" + sp.ClientSecret, "-client-secret-stdin=" + sp.ClientSecret} {
		r := runCaller(t, env, "--mode", "external", flag, "whoami")
		assert.Equal(t, exitUsage, r.code)
		assert.Contains(t, r.stderr, "--client-secret-stdin takes no value: pipe the secret on stdin")
	}
}

func TestWhoAmIAndCallOutput(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	env, api := e.spEnv("external-service"), e.state.Apps["api-app"].URL
	r := runCaller(t, env, "--mode", "external", "--url", api, "whoami")
	require.Equal(t, exitOK, r.code, r.String())
	assert.Contains(t, r.stdout, "The app saw you as 2001@"+e.state.WorkspaceID+" (service_principal")
	assert.Contains(t, r.stdout, "external mode")
	assert.Contains(t, r.stdout, "auth type oauth-m2m")

	r = runCaller(t, env, "--mode", "external", "--url", api, "--json", "call", "POST", "/api/echo", "--data", `{"hello":"world"}`)
	require.Equal(t, exitOK, r.code, r.String())
	var got callResult
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	assert.Equal(t, 200, got.Status)
	assert.Equal(t, "oauth-m2m", got.AuthType)
	var echo struct {
		Received json.RawMessage `json:"received"`
	}
	require.NoError(t, json.Unmarshal(got.Body, &echo), "the app's answer, as it came: %s", got.Body)
	assert.JSONEq(t, `{"hello":"world"}`, string(echo.Received))
}

func TestAppYAML(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile("app.yaml")
	require.NoError(t, err)
	var spec struct {
		Command []string `yaml:"command"`
		Env     []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom string `yaml:"valueFrom"`
		} `yaml:"env"`
	}
	require.NoError(t, yaml.Unmarshal(body, &spec))
	require.Len(t, spec.Command, 3)
	assert.Equal(t, []string{"/bin/sh", "-c"}, spec.Command[:2])
	script := spec.Command[2]
	assert.Contains(t, script, "caller.part-*")
	assert.Contains(t, script, "exec ")
	assert.Contains(t, script, " serve")
	names := map[string]string{}
	for _, e := range spec.Env {
		names[e.Name] = e.ValueFrom
	}
	assert.Equal(t, "target-app", names["TARGET_APP"], "TARGET_APP comes from the app resource")
}

// A workspace that does not answer is a network failure for login too (6, naming it), not a failed login (3).
func TestLoginNothingListening(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	port := testkit.FreePort(t)
	r := runCaller(t, nil, "--host", "http://"+addr, "login", "--scopes", "sql", "--no-browser",
		"--port", fmt.Sprint(port), "--timeout", "2s")
	assert.Equal(t, exitNetwork, r.code)
	assert.Contains(t, r.stderr, "login to http://"+addr+": nothing is listening at the workspace http://"+addr)
	assert.Contains(t, r.stderr, "the workspace URL is right: http://"+addr+" (--host)")
	assert.NotContains(t, r.stderr, "the browser reached the loopback redirect")
}

// Requests that arrive while serve looks the target app up wait for that one lookup, each no longer than its own
// context; a failed lookup is not kept, so a later request looks again.
func TestServeSharesOneTargetLookup(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	upstream := e.ws.Upstream("api-app")
	require.NoError(t, e.ws.SetUpstream("api-app", "")) // not running yet: the Apps API says UNAVAILABLE
	lookup := workspace.PathApps + "/api-app"
	slow := e.inject(t, workspace.Fault{Method: http.MethodGet, Path: lookup, Delay: 10 * time.Second}) // until cleared

	opts := &options{mode: ModeExternal, timeout: 20 * time.Second}
	env := e.spEnv("external-service")
	getenv := func(k string) string { return env[k] }
	s, err := newSession(t.Context(), testEnv(opts, getenv))
	require.NoError(t, err)
	resolver := &targetResolver{session: s, name: "api-app", timeout: opts.timeout}
	var entered atomic.Int32
	handler := newServer(slog.New(slog.DiscardHandler), resolver, opts.timeout)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	call := func() (int, string) {
		resp, err := http.Get(srv.URL + "/api/call?path=/api/whoami")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// The app is not running, and the lookup is slow: five requests share it, and all get its answer.
	const n = 5
	answers := make(chan string, n)
	for range n {
		go func() {
			status, body := call()
			answers <- fmt.Sprint(status, " ", body)
		}()
	}
	require.Eventually(t, func() bool { return entered.Load() == n && slow.Hits() == 1 }, testkit.Patience, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = resolver.get(ctx) // returns at all only by its own deadline: the lookup is held until slow.Clear below
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a waiting request gives up at its own deadline")
	require.Eventually(t, func() bool { return resolver.waiting.Load() == n }, testkit.Patience, time.Millisecond,
		"the five requests wait for the one lookup")
	slow.Clear() // the lookup goes on to the Apps API
	for range n {
		answer := <-answers
		assert.True(t, strings.HasPrefix(answer, "502 "), answer)
		assert.Contains(t, answer, `app \"api-app\" is UNAVAILABLE, not RUNNING`)
	}
	assert.Equal(t, int64(1), e.ws.RequestCount(lookup), "one lookup for all the requests that waited")

	// The app starts: the failure was not kept, the next request looks again, and the answer is kept.
	require.NoError(t, e.ws.SetUpstream("api-app", upstream))
	for range 2 {
		status, body := call()
		assert.Equal(t, http.StatusOK, status, body)
	}
	assert.Equal(t, int64(2), e.ws.RequestCount(lookup))
}

// The first requests of `callapp serve` fetch their tokens at once from one fresh Config: the SDK's first resolution
// of a Config must not run from two goroutines at a time (the race detector finds it).
func TestConcurrentFirstTokens(t *testing.T) {
	t.Parallel()
	ws, _ := emulated.Start(t, workspace.Options{})
	env := emulated.AppEnv(ws, "caller-app") // the platform's environment of caller-app
	getenv := func(k string) string { return env[k] }
	creds, err := newCredentials(t.Context(), testEnv(&options{mode: ModeApp, timeout: 20 * time.Second}, getenv))
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, _, err := creds.token(t.Context())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
}
