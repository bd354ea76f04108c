package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// TestIdpTokenCommand mints a token with the command, as a user scripts it, and exchanges it for the federated
// service principal's Databricks token, which the app's proxy accepts.
func TestIdpTokenCommand(t *testing.T) {
	testkit.CleanEnv(t)
	w, logs := startEmulator(t, workspace.Options{})
	stateFile := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, w.WriteState(stateFile))
	state := w.State()

	var stdout bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"emulator", "idp-token", "--state", stateFile, "--issuer", "ci",
		"--subject", "repo:acme/api:ref:refs/heads/main", "--audience", "https://github.com/acme", "--lifetime", "5m"},
		os.Getenv, &stdout, &bytes.Buffer{}))
	subjectToken := strings.TrimSuffix(stdout.String(), "\n")
	require.Len(t, strings.Split(subjectToken, "."), 3, "one JWT on one line")

	resp, err := http.PostForm(w.URL()+workspace.PathToken, url.Values{"grant_type": {workspace.GrantTokenExchange},
		"subject_token_type": {workspace.TokenTypeJWT}, "subject_token": {subjectToken},
		"client_id": {state.ServicePrincipals["federated-service"].ClientID}, "scope": {"all-apis"}})
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	status, seen := callApp(t, w.AppURL("api-app")+"/api/whoami", tok.AccessToken)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, identity.FormatUser("2005", state.WorkspaceID), seen.Headers.Get(identity.HeaderUser))
	assert.NotContains(t, logs.String(), subjectToken)

	tests := []struct {
		name     string
		args     []string
		mentions string
	}{
		{"no state", []string{"--issuer", "ci", "--subject", "s"}, "needs --state FILE"},
		{"no subject", []string{"--state", stateFile, "--issuer", "ci"}, "needs --state FILE"},
		{"unknown issuer", []string{"--state", stateFile, "--issuer", "github", "--subject", "s"}, "identity providers are ci, entra"},
		{"unknown subject", []string{"--state", stateFile, "--issuer", "ci", "--subject", "repo:x/y"}, "issues tokens for the subjects"},
		{"lifetime too long", []string{"--state", stateFile, "--issuer", "ci", "--subject", "s", "--lifetime", "72h"}, "--lifetime 72h0m0s"},
		{"missing state file", []string{"--state", stateFile + ".gone", "--issuer", "ci", "--subject", "s"}, "start the emulator with --state"},
		{"an argument", []string{"--state", stateFile, "--issuer", "ci", "--subject", "s", "extra"}, "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(t.Context(), append([]string{"emulator", "idp-token"}, tt.args...), os.Getenv, &out, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.mentions)
			assert.Empty(t, out.String())
		})
	}

	var help bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"emulator", "idp-token", "--help"}, os.Getenv, &help, &bytes.Buffer{}))
	assert.Contains(t, help.String(), "emulator idp-token --state FILE --issuer NAME --subject S")
}
