package databrickscli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// The stand-in run in-process, as the SDK's databricks-cli auth runs it, against an emulated workspace. Its home,
// where the profile and the token cache live, is a temp dir (Run uses its binary's folder).

// startWorkspace is the emulated workspace with its default model, stopped when the test ends. (Not
// internal/testkit/emulated's Start: that package runs this one as the stand-in.)
func startWorkspace(t *testing.T) *workspace.Workspace {
	t.Helper()
	ws, err := workspace.Start(t.Context(), workspace.Options{Config: workspace.DefaultConfig(),
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}

type standIn struct {
	home   string
	getenv func(string) string
}

func newStandIn(t *testing.T, ws *workspace.Workspace) standIn {
	t.Helper()
	home := t.TempDir()
	_, err := ws.WriteProfile(home, "") // [emulator] with the workspace's host; no binary copied
	require.NoError(t, err)
	return standIn{home: home, getenv: func(string) string { return "" }}
}

// self is where the stand-in would be: its profile and token cache are beside it.
func (s standIn) self() string { return filepath.Join(s.home, "databricks") }

func (s standIn) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, s.getenv, s.self(), &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

// token runs auth token with args and returns the token it printed.
func (s standIn) token(t *testing.T, args ...string) tokenOutput {
	t.Helper()
	out, err := s.run(t, append([]string{"auth", "token"}, args...)...)
	require.NoError(t, err, out)
	var tok tokenOutput
	require.NoError(t, json.Unmarshal([]byte(out), &tok), out)
	require.NotEmpty(t, tok.AccessToken)
	assert.Equal(t, "Bearer", tok.TokenType)
	expiry, err := time.Parse(time.RFC3339Nano, tok.Expiry)
	require.NoError(t, err)
	assert.True(t, expiry.After(time.Now()))
	return tok
}

func TestVersionHelpAndWhatItDoesNotDo(t *testing.T) {
	t.Parallel()
	s := standIn{home: t.TempDir(), getenv: func(string) string { return "" }}
	out, err := s.run(t, "version")
	require.NoError(t, err)
	assert.Equal(t, "Databricks CLI "+Version+"\n", out)
	for _, help := range [][]string{nil, {"--help"}, {"help"}, {"-h"}} {
		out, err = s.run(t, help...)
		require.NoError(t, err)
		assert.Contains(t, out, "OFFLINE STAND-IN")
	}
	_, err = s.run(t, "apps", "list")
	assert.ErrorContains(t, err, "supports only `version`, `auth token` and `auth login`, not \"apps list\"")
	_, err = s.run(t, "auth", "token")
	assert.ErrorContains(t, err, "pass --profile NAME or --host URL")
	_, err = s.run(t, "auth", "token", "--profile", "p", "extra")
	assert.ErrorContains(t, err, "unexpected arguments")
	_, err = s.run(t, "auth", "login")
	assert.ErrorContains(t, err, "takes --profile NAME")
}

// auth token logs the signed-in user in once, caches the token and its refresh token owner-only, and answers from
// the cache after that; --force-refresh uses the refresh token, not a new login.
func TestAuthTokenLogsInOnceThenUsesTheCache(t *testing.T) {
	t.Parallel()
	ws := startWorkspace(t)
	s := newStandIn(t, ws)

	first := s.token(t, "--profile", workspace.ProfileName)
	claims, err := identity.DecodeClaims(first.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, "dev@example.com", claims.Subject)
	assert.Equal(t, int64(1), ws.RequestCount(workspace.PathAuthorize), "one login")

	cache := filepath.Join(s.home, workspace.TokenCacheName)
	info, err := os.Stat(cache)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	again := s.token(t, "--profile", workspace.ProfileName)
	assert.Equal(t, first.AccessToken, again.AccessToken, "from the cache")
	refreshed := s.token(t, "--profile", workspace.ProfileName, "--force-refresh")
	assert.NotEqual(t, first.AccessToken, refreshed.AccessToken)
	assert.Equal(t, int64(1), ws.RequestCount(workspace.PathAuthorize), "refreshed, not logged in again")

	// By host, with the flag or as the real CLI's positional argument: a login of its own.
	byHost := s.token(t, "--host", ws.URL())
	assert.Equal(t, byHost.AccessToken, s.token(t, ws.URL()).AccessToken)
	assert.Equal(t, int64(2), ws.RequestCount(workspace.PathAuthorize))

	testkit.AssertNoSecrets(t, first.Expiry+again.Expiry, first.AccessToken)
}

// auth login stores the profile's scopes as the CLI does since v0.287.0; auth token then returns a token with
// exactly those scopes, and a login without --scopes goes back to the default.
func TestAuthLoginWithScopes(t *testing.T) {
	t.Parallel()
	ws := startWorkspace(t)
	s := newStandIn(t, ws)
	cfgFile := filepath.Join(s.home, workspace.ProfileFileName)

	out, err := s.run(t, "auth", "login", "--profile", "scoped", "--host", ws.URL(), "--scopes", "sql, file.files")
	require.NoError(t, err, out)
	assert.Equal(t, "Profile scoped was successfully saved\n", out)
	profile, err := readProfile(cfgFile, "scoped")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"host": ws.URL(), "auth_type": "databricks-cli", "scopes": "sql,file.files",
		"databricks_cli_path": s.self()}, profile, "the SDK runs the stand-in for the profile, not a databricks on PATH")
	claims, err := identity.DecodeClaims(s.token(t, "--profile", "scoped").AccessToken)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"sql", "file.files"}, claims.Scopes)

	_, err = s.run(t, "auth", "login", "--profile", "scoped")
	require.NoError(t, err)
	profile, err = readProfile(cfgFile, "scoped")
	require.NoError(t, err)
	assert.NotContains(t, profile, "scopes", "no --scopes: the default all-apis")
	claims, err = identity.DecodeClaims(s.token(t, "--profile", "scoped").AccessToken)
	require.NoError(t, err)
	assert.Equal(t, []string{"all-apis"}, claims.Scopes)

	// The emulator's own profile and header are kept: the emulator still knows the file for its own.
	body, err := os.ReadFile(cfgFile)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(body), "; Written by the Databricks Apps emulator"), string(body))
	_, err = readProfile(cfgFile, workspace.ProfileName)
	assert.NoError(t, err)
	_, err = ws.WriteProfile(s.home, "")
	assert.NoError(t, err, "the emulator may rewrite a profile file it wrote")
}

func TestAuthTokenErrorsNameTheProblem(t *testing.T) {
	t.Parallel()
	ws := startWorkspace(t)
	s := newStandIn(t, ws)
	cfgFile := filepath.Join(s.home, workspace.ProfileFileName)
	down := fmt.Sprintf("http://127.0.0.1:%d", testkit.FreePort(t)) // nothing listens there
	_, err := writeProfile(cfgFile, "down", down, "", "")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfgFile, append(must(os.ReadFile(cfgFile)), "\n[nohost]\nauth_type = databricks-cli\n"...), 0o600))

	_, err = s.run(t, "auth", "token", "--profile", "ghost")
	assert.ErrorContains(t, err, `no profile "ghost" in `+cfgFile)
	_, err = s.run(t, "auth", "token", "--profile", "nohost")
	assert.ErrorContains(t, err, `profile "nohost" in `+cfgFile+" has no host")
	_, err = s.run(t, "auth", "token", "--profile", "down")
	assert.ErrorContains(t, err, "the workspace "+down+" is not reachable (is the emulator running?)")
	_, err = s.run(t, "auth", "login", "--profile", "ghost")
	assert.ErrorContains(t, err, `no profile "ghost" in `+cfgFile+": pass --host to create it")
}

// The profile file is found as the CLI finds it, with the stand-in's own first after the environment.
func TestConfigFileLookup(t *testing.T) {
	t.Parallel()
	home, userHome := t.TempDir(), t.TempDir()
	env := map[string]string{"HOME": userHome}
	getenv := func(k string) string { return env[k] }
	assert.Equal(t, filepath.Join(userHome, ".databrickscfg"), configFile(getenv, home), "no profile beside the stand-in")
	require.NoError(t, os.WriteFile(filepath.Join(home, workspace.ProfileFileName), nil, 0o600))
	assert.Equal(t, filepath.Join(home, workspace.ProfileFileName), configFile(getenv, home))
	env["DATABRICKS_CONFIG_FILE"] = "/elsewhere/.databrickscfg"
	assert.Equal(t, "/elsewhere/.databrickscfg", configFile(getenv, home))
}

// writeProfile edits one profile and keeps the rest of the file; it refuses what it cannot complete.
func TestWriteProfile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ".databrickscfg")
	host, err := writeProfile(path, "new", "http://127.0.0.1:9/", "sql", "/opt/emulator/databricks")
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:9", host)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	got, err := readProfile(path, "new")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"host": "http://127.0.0.1:9/", "auth_type": "databricks-cli", "scopes": "sql",
		"databricks_cli_path": "/opt/emulator/databricks"}, got)

	require.NoError(t, os.WriteFile(path, []byte("; mine\n[prod]\nhost = https://w.example\ntoken = dapi#1\n\n"+
		"[new]\nhost = http://127.0.0.1:9\nauth_type = databricks-cli\nscopes = sql\n"), 0o600))
	host, err = writeProfile(path, "new", "", "", "/opt/emulator/databricks")
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:9", host, "the profile's own host")
	got, err = readProfile(path, "new")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"host": "http://127.0.0.1:9", "auth_type": "databricks-cli"}, got,
		"an existing profile keeps its own settings")
	prod, err := readProfile(path, "prod")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"host": "https://w.example", "token": "dapi#1"}, prod, "another profile is kept, # and all")
	assert.True(t, strings.HasPrefix(string(must(os.ReadFile(path))), "; mine\n"), "comments are kept")

	_, err = writeProfile(path, "other", "", "sql", "")
	assert.ErrorContains(t, err, "pass --host to create it")
	require.NoError(t, os.WriteFile(path, []byte("[bare]\nauth_type = databricks-cli\n"), 0o600))
	_, err = writeProfile(path, "bare", "", "", "")
	assert.ErrorContains(t, err, `profile "bare" in `+path+" has no host: pass --host")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
