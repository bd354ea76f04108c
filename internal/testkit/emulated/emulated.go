// Package emulated starts the emulated Databricks workspace in-process for a test, with the app behind api-app's
// proxy when the test wants it, and mints the model's tokens. It is the emulator half of the test harness
// (internal/testkit is the other): every test package outside app/ and emulator/workspace uses it.
package emulated

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/databricks/databricks-sdk-go/config"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
	"github.com/databricks-sample/go-apps-api/emulator/databrickscli"
	"github.com/databricks-sample/go-apps-api/emulator/runner"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// Start starts the emulated workspace and its Apps proxies on free loopback ports, with the default model unless
// opts has one, and stops them when the test ends. The workspace logs, debug lines included, go to the buffer.
func Start(t testing.TB, opts workspace.Options) (*workspace.Workspace, *testkit.Buffer) {
	t.Helper()
	logs := &testkit.Buffer{}
	if opts.Config.Workspace.ID == "" {
		opts.Config = workspace.DefaultConfig()
	}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ws, err := workspace.Start(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.Close() })
	return ws, logs
}

// AppEnv is the environment the platform gives an app of ws: its name, the workspace, and its own service
// principal's credentials.
func AppEnv(ws *workspace.Workspace, app string) map[string]string {
	sp := ws.State().ServicePrincipals[app]
	return map[string]string{
		"DATABRICKS_APP_NAME": app, "DATABRICKS_HOST": ws.URL(), "DATABRICKS_WORKSPACE_ID": ws.WorkspaceID(),
		"DATABRICKS_CLIENT_ID": sp.ClientID, "DATABRICKS_CLIENT_SECRET": sp.ClientSecret,
	}
}

// APIAppEnv is AppEnv for api-app with what the repository's app.yaml reads from the app's resources, as the
// platform resolves valueFrom: WAREHOUSE_ID and REPORTS_VOLUME. app.yaml's fixed values (GOGC, …) are left out, so
// tests measure the app with Go's defaults.
func APIAppEnv(t testing.TB, ws *workspace.Workspace) map[string]string {
	t.Helper()
	env := AppEnv(ws, "api-app")
	file := filepath.Join(testkit.RepoRoot(t), "app.yaml")
	manifest, err := runner.ReadAppYAML(file)
	require.NoError(t, err)
	launch, err := ws.ReadAppYAML("api-app", file)
	require.NoError(t, err)
	for i, item := range manifest.Env {
		if item.ValueFrom != "" {
			_, v, _ := strings.Cut(launch.Env[i], "=")
			env[item.Name] = v
		}
	}
	return env
}

// WithApp starts the emulated workspace and app/ (built with the race detector when the test has it) behind
// api-app's proxy, with the platform's environment.
func WithApp(t testing.TB, opts workspace.Options) (*workspace.Workspace, *testkit.App) {
	t.Helper()
	ws, _ := Start(t, opts)
	app := testkit.StartApp(t, testkit.BuildRace(t, "app"), APIAppEnv(t, ws))
	require.NoError(t, ws.SetUpstream("api-app", app.URL))
	return ws, app
}

// M2MConfig is a service principal's SDK config for ws (such as "external-service"): it mints and refreshes its
// M2M tokens itself, and reads nothing from the environment.
func M2MConfig(ws *workspace.Workspace, sp string) *config.Config {
	p := ws.State().ServicePrincipals[sp]
	return &config.Config{Host: ws.URL(), ClientID: p.ClientID, ClientSecret: p.ClientSecret, AuthType: "oauth-m2m",
		Loaders: []config.Loader{sdkconfig.ExplicitOnly{}}, RetryTimeoutSeconds: 5}
}

// M2MToken is a token of one of the model's service principals (such as "external-service") with scope (such as
// "all-apis"), from the workspace's token endpoint.
func M2MToken(t testing.TB, ws *workspace.Workspace, sp, scope string) string {
	t.Helper()
	p := ws.State().ServicePrincipals[sp]
	return testkit.ClientCredentials(t, ws.URL()+workspace.PathToken, p.ClientID, p.ClientSecret, scope)
}

// ServeAsCLI makes a test binary the emulator's Databricks CLI stand-in when it runs under that name, which saves
// building one: a test installs a copy of its own binary beside the profile the emulator writes
// ([workspace.Workspace.WriteProfile]), and the SDK's databricks-cli auth runs it. Call it first in TestMain; it
// returns only when the binary runs as itself.
func ServeAsCLI() {
	if filepath.Base(os.Args[0]) != workspace.CLIFileName {
		return
	}
	if err := databrickscli.Run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "databricks:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// UserToken is an access token of one of the model's users (such as "ana@example.com") with scope (such as "sql"),
// from the workspace's own U2M flow: authorization code with PKCE, as the Databricks CLI runs it, with login_hint
// naming who signs in.
func UserToken(t testing.TB, ws *workspace.Workspace, user, scope string) string {
	t.Helper()
	conf := oauth2.Config{ClientID: workspace.CLIClientID, RedirectURL: "http://localhost:8020",
		Endpoint: oauth2.Endpoint{AuthURL: ws.URL() + workspace.PathAuthorize, TokenURL: ws.URL() + workspace.PathToken,
			AuthStyle: oauth2.AuthStyleInParams},
		Scopes: strings.Fields(scope)}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("login_hint", user))
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(authURL)
	require.NoError(t, err)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	code := loc.Query().Get("code")
	require.NotEmpty(t, code, "authorize refused: %s", loc.Query().Get("error_description"))
	tok, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	return tok.AccessToken
}

// StartForExamples starts the emulated workspace with the default model and WhoAmI behind api-app's proxy, for a
// package's runnable examples: TestMain has no testing.T. stop stops both.
func StartForExamples() (ws *workspace.Workspace, stop func(), err error) {
	ws, err = workspace.Start(context.Background(), workspace.Options{Config: workspace.DefaultConfig()})
	if err != nil {
		return nil, nil, err
	}
	app := httptest.NewServer(http.HandlerFunc(WhoAmI))
	stop = func() { app.Close(); _ = ws.Close() }
	if err := ws.SetUpstream("api-app", app.URL); err != nil {
		stop()
		return nil, nil, err
	}
	return ws, stop, nil
}

// WhoAmI is api-app's GET /api/whoami in a few lines, for examples that need an app behind the proxy but not app/
// itself: who the proxy says called, and the scopes of the user token it forwarded.
func WhoAmI(w http.ResponseWriter, r *http.Request) {
	id, err := identity.FromHeaders(r.Header)
	if err != nil {
		jsonhttp.WriteError(w, &jsonhttp.Error{Status: http.StatusUnauthorized, Code: jsonhttp.CodeUnauthenticated, Message: err.Error()})
		return
	}
	who := identity.WhoAmI{Identity: id, AccessTokenForwarded: id.AccessToken != ""}
	if claims, err := identity.DecodeClaims(id.AccessToken.Reveal()); err == nil {
		who.AccessTokenClaims = &claims
	}
	jsonhttp.Write(w, http.StatusOK, who)
}
