package appclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"testing"

	"github.com/databricks-sample/go-apps-api/caller/appauth"
	"github.com/databricks-sample/go-apps-api/caller/appclient"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// What the examples take from their configuration or a secret store (never from their source). TestMain points them
// at an emulated workspace whose Apps proxy fronts api-app.
var appURL, workspaceURL, clientID, clientSecret string

// Keep your http.Client: its Transport puts a service principal's bearer token on each request to the app, and
// refreshes it after a 401.
func ExampleTransport() {
	creds := appclient.ConfigCredentials(appauth.External(workspaceURL, clientID, clientSecret))
	hc := &http.Client{Transport: &appclient.Transport{Creds: creds}}

	resp, err := hc.Get(appURL + "/api/whoami")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var who struct{ User, Kind string }
	_ = json.NewDecoder(resp.Body).Decode(&who)
	fmt.Println(resp.Status, who.User, who.Kind)
	// Output: 200 OK 2001@1234567890123456 service_principal
}

// The app by name, as `callapp --app api-app` finds it: its URL from the workspace's Apps API, then one call with
// retries, a bounded answer and typed errors.
func ExampleClient_Do() {
	ctx := context.Background()
	cfg := appauth.External(workspaceURL, clientID, clientSecret)
	target, err := appclient.Resolve(ctx, cfg, "api-app")
	if err != nil {
		log.Fatal(err) // *apierr.APIError (404: no such app), *appclient.AppNotRunningError, …
	}
	url, _ := target.APIURL("/api/whoami")

	c := appclient.New(appclient.ConfigCredentials(cfg))
	resp, err := c.Do(ctx, http.MethodGet, url, nil)
	var status *appclient.StatusError
	switch {
	case errors.As(err, &status):
		log.Fatalf("the app answered %d: %s", status.Status, status.Body)
	case err != nil:
		log.Fatal(err) // *appclient.NetworkError, *appclient.TooLargeError, or no token
	}
	fmt.Println(target.Name, target.State(), resp.Status)
	// Output: api-app RUNNING 200
}

// TestMain runs the examples against the emulator, with a few-line app behind api-app's proxy.
func TestMain(m *testing.M) {
	os.Exit(runWithEmulator(m))
}

func runWithEmulator(m *testing.M) int {
	ws, stop, err := emulated.StartForExamples()
	if err != nil {
		panic(err)
	}
	defer stop()
	state := ws.State()
	appURL, workspaceURL = state.Apps["api-app"].URL, state.WorkspaceHost
	sp := state.ServicePrincipals["external-service"]
	clientID, clientSecret = sp.ClientID, sp.ClientSecret
	return m.Run()
}
