package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/internal/gotool"
)

// TestRealWorkspace plays the demo's rows against the two apps `make deploy` deployed to a real workspace. It is
// opt-in: it runs only when these are set (see docs/deploy.md):
//
//	E2E_PROFILE          a Databricks CLI profile logged in as a user with CAN USE on the API app
//	E2E_HOST             that workspace's URL, https://…
//	E2E_API_APP          the API app's name (make deploy's API_APP)
//	E2E_CALLER_APP       the caller app's name (CALLER_APP)
//
// and, for the rows that need them (each is skipped, saying why, when its variables are missing):
//
//	E2E_SCOPES                          scopes already logged in with `callapp --profile P login --scopes …`
//	E2E_CLIENT_ID, E2E_CLIENT_SECRET    a service principal with CAN USE on the API app (external, M2M)
//	E2E_NO_ACCESS_CLIENT_ID, E2E_NO_ACCESS_CLIENT_SECRET   one without it (403)
//
// Real ids are not known in advance, so where the demo checks exact values this checks their shape: a user arrives
// as <id>@<workspace id> with an email, a service principal with none.
func TestRealWorkspace(t *testing.T) {
	profile, host := os.Getenv("E2E_PROFILE"), os.Getenv("E2E_HOST")
	apiApp, callerApp := os.Getenv("E2E_API_APP"), os.Getenv("E2E_CALLER_APP")
	if profile == "" || host == "" || apiApp == "" || callerApp == "" {
		t.Skip("opt-in: set E2E_PROFILE, E2E_HOST, E2E_API_APP and E2E_CALLER_APP to run against a real workspace")
	}
	bin := t.TempDir()
	require.NoError(t, gotool.Build(t.Context(), bin, "./caller"))
	// The developer's own HOME: the CLI profile and its token cache live there.
	caller := callerProgram{path: filepath.Join(bin, "callapp"), home: os.Getenv("HOME")}
	var profileEnv []string
	for _, name := range []string{"DATABRICKS_CONFIG_FILE", "DATABRICKS_CLI_PATH"} {
		if v := os.Getenv(name); v != "" {
			profileEnv = append(profileEnv, name+"="+v)
		}
	}
	local := []string{"--mode", "local", "--profile", profile}
	m2m := func(idVar, secretVar string) []string {
		id, secret := os.Getenv(idVar), os.Getenv(secretVar)
		if id == "" || secret == "" {
			t.Skipf("set %s and %s to run this row", idVar, secretVar)
		}
		return []string{"DATABRICKS_HOST=" + host, "DATABRICKS_CLIENT_ID=" + id, "DATABRICKS_CLIENT_SECRET=" + secret}
	}

	var apiURL string
	t.Run("local", func(t *testing.T) {
		res := caller.run(t.Context(), profileEnv, append(local, "--app", apiApp, "whoami")...)
		assertArrived(t, res, identity.KindUser)
		apiURL = strings.TrimSuffix(res.json.URL, "/api/whoami")
	})
	t.Run("local+scopes", func(t *testing.T) {
		scopes := os.Getenv("E2E_SCOPES")
		if scopes == "" {
			t.Skip("set E2E_SCOPES to the scopes of a `callapp --profile P login --scopes …` you ran")
		}
		res := caller.run(t.Context(), profileEnv, append(local, "--scopes", scopes, "--app", apiApp, "whoami")...)
		assertArrived(t, res, identity.KindUser)
		require.NotNil(t, res.json.AccessTokenClaims, "the app has user authorization: the proxy forwards a token")
		assert.NotEmpty(t, res.json.AccessTokenClaims.Scopes)
	})
	t.Run("external", func(t *testing.T) {
		res := caller.run(t.Context(), m2m("E2E_CLIENT_ID", "E2E_CLIENT_SECRET"), "--mode", "external", "--app", apiApp, "whoami")
		assertArrived(t, res, identity.KindServicePrincipal)
	})
	t.Run("app-to-app", func(t *testing.T) {
		res := caller.run(t.Context(), profileEnv, append(local, "--app", callerApp, "call", "/api/call?path=/api/whoami")...)
		require.NoError(t, res.err)
		require.Zero(t, res.exitCode, "%+v", res.json)
		var body struct {
			Status   int             `json:"status"`
			Response identity.WhoAmI `json:"response"`
		}
		require.NoError(t, json.Unmarshal(res.json.Body, &body))
		assert.Equal(t, 200, body.Status)
		assert.Equal(t, identity.KindServicePrincipal, body.Response.Kind, "the API app saw the caller app's service principal")
		assert.Regexp(t, forwardedUser, body.Response.User)
	})
	t.Run("no CAN USE", func(t *testing.T) {
		res := caller.run(t.Context(), m2m("E2E_NO_ACCESS_CLIENT_ID", "E2E_NO_ACCESS_CLIENT_SECRET"),
			"--mode", "external", "--app", apiApp, "whoami")
		r := expectRefusal(res, 403, 4, fixFromChecklist)
		assert.Empty(t, r.problem)
		assert.Contains(t, r.detail, "update-permissions")
	})
	t.Run("bad token", func(t *testing.T) {
		if apiURL == "" {
			t.Skip("the local row found no URL for the API app")
		}
		res := caller.run(t.Context(), []string{"DATABRICKS_HOST=" + host, "DATABRICKS_TOKEN=not-a-real-token"},
			"--mode", "auto", "--url", apiURL, "whoami")
		r := expectRefusal(res, 401, 3, fixFromProxy)
		assert.Empty(t, r.problem, "%+v", res.json)
	})
}

// forwardedUser is X-Forwarded-User in production: "<numeric id>@<numeric workspace id>".
var forwardedUser = regexp.MustCompile(`^[0-9]+@[0-9]+$`)

// assertArrived checks that the app answered and saw a principal of this kind, in the production header format.
func assertArrived(t *testing.T, res callerResult, kind identity.Kind) {
	t.Helper()
	require.NoError(t, res.err)
	require.Zero(t, res.exitCode, "%+v", res.json)
	assert.Equal(t, kind, res.json.Kind)
	assert.Regexp(t, forwardedUser, res.json.User)
	if kind == identity.KindUser {
		assert.NotEmpty(t, res.json.Email, "users arrive with X-Forwarded-Email")
	} else {
		assert.Empty(t, res.json.Email, "service principals have no email")
	}
}
