package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// The emulator's CI identity provider trusts this subject for federated-service (its federation policy).
const (
	ciSubject  = "repo:acme/api:ref:refs/heads/main"
	ciAudience = "https://github.com/acme"
)

// idpToken is a JWT the emulator's identity provider ci issued, as a CI job gets one from its provider.
func idpToken(t *testing.T, e *emulator, subject string) string {
	t.Helper()
	token, err := workspace.MintIdentityToken(t.Context(), e.state.IdentityProviders["ci"].TokenEndpoint, subject,
		ciAudience, 10*time.Minute)
	require.NoError(t, err)
	return token
}

// TestE2EFederated: an identity provider's token, exchanged by the SDK (file-oidc or env-oidc) for a Databricks
// token of the service principal whose federation policy trusts it, reaches the app as that service principal.
func TestE2EFederated(t *testing.T) {
	e := startEmulator(t, 0)
	sp := e.state.ServicePrincipals["federated-service"]
	file := filepath.Join(t.TempDir(), "idp.jwt")
	require.NoError(t, os.WriteFile(file, []byte(idpToken(t, e, ciSubject)), 0o600))

	r := runCaller(t, e.env("DATABRICKS_HOST", e.state.WorkspaceHost, "DATABRICKS_CLIENT_ID", sp.ClientID),
		"--mode", "federated", "--oidc-token-file", file, "--app", "api-app", "whoami")
	require.Equal(t, exitOK, r.code, r.String())
	assert.Contains(t, r.stdout, "The app saw you as "+sp.ID+"@"+e.state.WorkspaceID)
	assert.Contains(t, r.stdout, "auth type file-oidc")

	// env-oidc: the SDK reads DATABRICKS_OIDC_TOKEN from the process environment.
	t.Setenv("DATABRICKS_OIDC_TOKEN", idpToken(t, e, ciSubject))
	r = runCaller(t, e.env("DATABRICKS_HOST", e.state.WorkspaceHost, "DATABRICKS_OIDC_TOKEN", "set",
		"DATABRICKS_CLIENT_ID", sp.ClientID), "--mode", "federated", "--app", "api-app", "whoami", "--json")
	require.Equal(t, exitOK, r.code, r.String())
	assert.Contains(t, r.stdout, `"auth_type": "env-oidc"`)

	// A subject no policy trusts: the exchange is refused, and the caller says what to check.
	require.NoError(t, os.WriteFile(file, []byte(idpToken(t, e, "repo:acme/api:pull_request")), 0o600))
	r = runCaller(t, e.env("DATABRICKS_HOST", e.state.WorkspaceHost, "DATABRICKS_CLIENT_ID", sp.ClientID),
		"--mode", "federated", "--oidc-token-file", file, "--url", e.state.Apps["api-app"].URL, "whoami")
	assert.Equal(t, exitAuth, r.code, r.String())
	assert.Contains(t, r.stderr, "federation policy")

	r = runCaller(t, e.env(), "--mode", "federated", "--url", e.state.Apps["api-app"].URL, "whoami")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "federated mode needs the workspace")
}

// TestE2EIdentityProviderTokenAsIs: the page's rule: an app cannot be called with an identity provider's token
// (Azure Entra ID's, a CI provider's). The proxy refuses it with 401, and the caller and doctor say to exchange it.
func TestE2EIdentityProviderTokenAsIs(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	env := e.env("DATABRICKS_HOST", e.state.WorkspaceHost, "DATABRICKS_TOKEN", idpToken(t, e, ciSubject))

	r := runCaller(t, env, "--mode", "auto", "--url", e.state.Apps["api-app"].URL, "whoami")
	assert.Equal(t, exitAuth, r.code, r.String())
	assert.Contains(t, r.stderr, "token federation")
	assert.Contains(t, r.stderr, "urn:ietf:params:oauth:grant-type:token-exchange")
	assert.Contains(t, r.stderr, "--mode federated")

	r = runCaller(t, env, "--mode", "auto", "--url", e.state.Apps["api-app"].URL, "doctor")
	assert.Equal(t, exitAuth, r.code, r.String())
	assert.Contains(t, r.stdout, "FAIL  issuer")
	assert.Contains(t, r.stdout, "not by the workspace")
}
