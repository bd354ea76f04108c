package appauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"slices"
	"strings"

	"github.com/databricks-sample/go-apps-api/caller/appauth"
)

// whoAmI is the part of the app's GET /api/whoami answer the examples print.
type whoAmI struct {
	User   string `json:"user"`
	Kind   string `json:"kind"`
	Claims *struct {
		Scopes []string `json:"scopes"`
	} `json:"access_token_claims"`
}

// Local development: after `databricks auth login --host https://<workspace-url> --profile my-env`.
func ExampleLocal() {
	cfg := appauth.Local("my-env")

	req, _ := http.NewRequest(http.MethodGet, appURL+"/api/whoami", nil)
	if err := cfg.Authenticate(req); err != nil { // Authorization: Bearer <the profile's OAuth token>
		log.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var who whoAmI
	_ = json.NewDecoder(resp.Body).Decode(&who)
	fmt.Println(resp.Status, who.User, who.Kind)
	// Output: 200 OK 1001@1234567890123456 user
}

// An external application: a service principal's client id and secret (M2M), from the environment or a secret
// store.
func ExampleExternal() {
	cfg := appauth.External(workspaceURL, clientID, clientSecret)

	req, _ := http.NewRequest(http.MethodGet, appURL+"/api/whoami", nil)
	if err := cfg.Authenticate(req); err != nil {
		log.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var who whoAmI
	_ = json.NewDecoder(resp.Body).Decode(&who)
	fmt.Println(resp.Status, who.User, who.Kind)
	// Output: 200 OK 2001@1234567890123456 service_principal
}

// From another Databricks App: no credentials in code, the app's own service principal.
func ExampleFromApp() {
	cfg := appauth.FromApp() // DATABRICKS_HOST, DATABRICKS_CLIENT_ID, DATABRICKS_CLIENT_SECRET, set by the platform

	req, _ := http.NewRequest(http.MethodGet, appURL+"/api/whoami", nil)
	if err := cfg.Authenticate(req); err != nil {
		log.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var who whoAmI
	_ = json.NewDecoder(resp.Body).Decode(&who)
	fmt.Println(resp.Status, who.User, who.Kind)
	// Output: 200 OK 2003@1234567890123456 service_principal
}

// Token federation: a CI job (GitHub Actions, Azure DevOps, a Kubernetes workload) holds a token of its identity
// provider, not a Databricks secret. An app refuses that token; the SDK exchanges it for a Databricks OAuth token of
// the service principal whose federation policy trusts it.
func ExampleFederated() {
	cfg := appauth.Federated(workspaceURL, federatedClientID, idTokenFile) // the provider's JWT, in a file

	req, _ := http.NewRequest(http.MethodGet, appURL+"/api/whoami", nil)
	if err := cfg.Authenticate(req); err != nil { // Authorization: Bearer <the exchanged Databricks token>
		log.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var who whoAmI
	_ = json.NewDecoder(resp.Body).Decode(&who)
	fmt.Println(resp.Status, who.User, who.Kind)
	// Output: 200 OK 2005@1234567890123456 service_principal
}

// Custom scopes: an app with user authorization needs a token with its scopes (Edit > User authorization). The
// login is authorization code + PKCE with client_id=databricks-cli; its token is cached for later runs.
func ExampleNewLogin() {
	scopes := []string{"sql", "file.files", "dashboards.genie"}
	login, err := appauth.NewLogin(context.Background(), workspaceURL, scopes,
		appauth.LoginOptions{Profile: "my-env", CacheFile: cacheFile, OpenURL: openBrowser})
	if err != nil {
		log.Fatal(err)
	}
	if err := login.Run(); err != nil { // the browser signs in and redirects to http://localhost:8020
		log.Fatal(err)
	}
	cfg := login.Config()

	req, _ := http.NewRequest(http.MethodGet, appURL+"/api/whoami", nil)
	if err := cfg.Authenticate(req); err != nil {
		log.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var who whoAmI
	_ = json.NewDecoder(resp.Body).Decode(&who)
	slices.Sort(who.Claims.Scopes)
	fmt.Println(resp.Status, who.User, "with scopes", strings.Join(who.Claims.Scopes, " "))
	// Output: 200 OK 1001@1234567890123456 with scopes dashboards.genie file.files sql
}
