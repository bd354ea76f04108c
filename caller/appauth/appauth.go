// Package appauth builds the credentials for calling a Databricks App's API, in the three ways the documentation
// page "Connect to a Databricks app using token authentication" shows, plus its custom-scope login. Each way is one
// *config.Config of databricks-sdk-go with an explicit auth type; cfg.Authenticate(req) puts the bearer token on a
// request to the app:
//
//	cfg := appauth.Local("my-env")                             // local development: a Databricks CLI profile (U2M)
//	cfg := appauth.External(host, clientID, clientSecret)      // an external application: a service principal (M2M)
//	cfg := appauth.FromApp()                                   // another Databricks App: its own service principal
//	cfg := appauth.Federated(host, clientID, "/path/to/idp.jwt")  // token federation: an identity provider's JWT
//
//	req, _ := http.NewRequest("GET", "https://<app-name>-<id>.<region>.databricksapps.com/api/whoami", nil)
//	err := cfg.Authenticate(req)                               // Authorization: Bearer <token>
//	resp, err := http.DefaultClient.Do(req)
//
// A Config caches its token and refreshes it before it expires: build one per identity and reuse it. Never hand it
// to a WorkspaceClient for app calls (the client rewrites the host to the workspace's).
//
// The package holds credentials only: it prints nothing and decides nothing about retries or errors; caller/appclient
// calls apps with them, and the caller command (package main) explains failures.
package appauth

import (
	"os"

	"github.com/databricks/databricks-sdk-go/config"

	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
)

// Auth types, as the SDK names them, and "external-browser", the Python SDK's name for an in-process U2M login,
// for the token a Login cached.
const (
	AuthDatabricksCLI   = "databricks-cli"
	AuthM2M             = "oauth-m2m"
	AuthExternalBrowser = "external-browser"
	AuthFileOIDC        = "file-oidc"
	AuthEnvOIDC         = "env-oidc"
)

// Local is the page's local development path: the token of a Databricks CLI profile, as `databricks auth token
// --profile <profile>` prints it, after `databricks auth login --host https://<workspace-url> --profile <profile>`
// ("" is the DEFAULT profile). With `--scopes a,b` on that login (CLI v0.287.0 and later) the token carries those
// scopes.
func Local(profile string) *config.Config {
	return &config.Config{
		Profile:  profile,
		AuthType: AuthDatabricksCLI,
		// Only the profile: a DATABRICKS_HOST in the environment would otherwise replace the profile's host.
		Loaders: []config.Loader{config.ConfigFile},
	}
}

// External is the page's external application path: a service principal's OAuth client id and secret
// (machine-to-machine). host is the workspace URL; a bare host name gets https://.
func External(host, clientID, clientSecret string) *config.Config {
	return &config.Config{
		Host:         sdkconfig.NormaliseHost(host),
		ClientID:     clientID,
		ClientSecret: clientSecret,
		AuthType:     AuthM2M,
		// Nothing else: no DATABRICKS_TOKEN or profile from the environment next to the secret.
		Loaders: []config.Loader{sdkconfig.ExplicitOnly{}},
	}
}

// FromApp is the page's path from another Databricks App: no credentials of its own, the service principal the app
// runs as, whose DATABRICKS_HOST, DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET the platform sets. The same
// three variables are the page's option 2 for an external application.
func FromApp() *config.Config { return FromEnv(os.Getenv) }

// FromEnv is FromApp reading the three variables through getenv, for programs that pass their environment in.
func FromEnv(getenv func(string) string) *config.Config {
	return External(getenv("DATABRICKS_HOST"), getenv("DATABRICKS_CLIENT_ID"), getenv("DATABRICKS_CLIENT_SECRET"))
}

// Federated is token federation (workload identity federation): the JWT an identity provider issued to this
// workload (GitHub Actions, Azure DevOps, a Kubernetes service account, an Entra app), read from tokenFile and
// exchanged at the workspace's token endpoint for a Databricks OAuth token (grant type
// urn:ietf:params:oauth:grant-type:token-exchange). An app refuses the provider's token itself: Databricks does not
// exchange tokens on the server side. clientID is the service principal whose federation policy trusts the token;
// "" relies on an account-wide policy. The file is read again at each refresh, so a provider that rotates it works.
func Federated(host, clientID, tokenFile string) *config.Config {
	return &config.Config{
		Host:              sdkconfig.NormaliseHost(host),
		ClientID:          clientID,
		OIDCTokenFilepath: tokenFile,
		AuthType:          AuthFileOIDC,
		Loaders:           []config.Loader{sdkconfig.ExplicitOnly{}},
	}
}

// FederatedFromEnv is Federated with the identity provider's JWT in the environment variable DATABRICKS_OIDC_TOKEN
// (the SDK's env-oidc), for providers that hand it over that way.
func FederatedFromEnv(host, clientID string) *config.Config {
	return &config.Config{
		Host:     sdkconfig.NormaliseHost(host),
		ClientID: clientID,
		AuthType: AuthEnvOIDC,
		Loaders:  []config.Loader{sdkconfig.ExplicitOnly{}},
	}
}
