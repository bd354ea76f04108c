package appauth_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/databricks-sample/go-apps-api/emulator/browser"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// What the examples take from their surroundings, as a program takes it from its configuration or a secret store
// (never from its source). TestMain points them at an emulated workspace.
var (
	appURL       string // https://<app-name>-<id>.<region>.databricksapps.com
	workspaceURL string // https://<workspace-url>
	clientID     string // the service principal's client id
	clientSecret string // and its OAuth secret
	cacheFile    string // where a custom-scope login keeps its token
	// Token federation: the service principal whose federation policy trusts the CI provider's tokens, and the
	// file where the CI job finds its provider's token.
	federatedClientID string
	idTokenFile       string
	openBrowser       func(url string) error
)

// TestMain runs the examples against the emulator: a workspace whose Apps proxy fronts api-app, a signed-in user
// with the CLI profile my-env, and the platform's environment of caller-app for FromApp. Run under the name
// databricks, the test binary is the emulator's Databricks CLI stand-in, which Local's profile runs.
func TestMain(m *testing.M) {
	emulated.ServeAsCLI()
	os.Exit(runWithEmulator(m))
}

func runWithEmulator(m *testing.M) int {
	home, cleanup := testkit.IsolateProcess() // ~/.databrickscfg is the emulator's
	defer cleanup()

	ws, stop, err := emulated.StartForExamples()
	if err != nil {
		panic(err)
	}
	defer stop()
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	profile, err := ws.WriteProfile(home, self)
	if err != nil {
		panic(err)
	}
	// The page's profile name: the emulator writes its profile as [emulator].
	cfg, err := os.ReadFile(profile.ConfigFile)
	if err != nil {
		panic(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "["+profile.Name+"]", "[my-env]", 1))
	if err := os.WriteFile(profile.ConfigFile, cfg, 0o600); err != nil {
		panic(err)
	}

	state := ws.State()
	appURL, workspaceURL = state.Apps["api-app"].URL, state.WorkspaceHost
	sp := state.ServicePrincipals["external-service"]
	clientID, clientSecret = sp.ClientID, sp.ClientSecret
	cacheFile = filepath.Join(home, ".databricks-caller", "token-cache.json")
	openBrowser = browser.Headless(func(err error) { fmt.Fprintln(os.Stderr, "browser:", err) })

	// A CI provider's token for the main branch of acme/api, which federated-service's policy trusts.
	federatedClientID = state.ServicePrincipals["federated-service"].ClientID
	idToken, err := workspace.MintIdentityToken(context.Background(), state.IdentityProviders["ci"].TokenEndpoint,
		"repo:acme/api:ref:refs/heads/main", "https://github.com/acme", time.Hour)
	if err != nil {
		panic(err)
	}
	idTokenFile = filepath.Join(home, "id-token.jwt")
	if err := os.WriteFile(idTokenFile, []byte(idToken), 0o600); err != nil {
		panic(err)
	}

	// The platform's environment inside caller-app, for FromApp.
	callerApp := state.ServicePrincipals["caller-app"]
	os.Setenv("DATABRICKS_HOST", state.WorkspaceHost)
	os.Setenv("DATABRICKS_CLIENT_ID", callerApp.ClientID)
	os.Setenv("DATABRICKS_CLIENT_SECRET", callerApp.ClientSecret)
	return m.Run()
}
