package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/credentials/u2m"
	"github.com/databricks/databricks-sdk-go/credentials/u2m/cache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/browser"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// sdkToken authenticates a request the way callers do (cfg.Authenticate) and returns the bearer token it set.
func sdkToken(t *testing.T, cfg *config.Config) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://unused.invalid", nil)
	require.NoError(t, err)
	require.NoError(t, cfg.Authenticate(req))
	token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	require.True(t, ok, "the SDK set a bearer token")
	return token
}

// u2mLogin runs the SDK's in-process U2M flow with custom scopes against the emulator.
func u2mLogin(t *testing.T, w *workspace.Workspace, scopes ...string) *u2m.PersistentAuth {
	t.Helper()
	return u2mLoginWith(t, w, scopes)
}

// u2mLoginWith is u2mLogin with more options for the SDK, such as a token cache the test can look into.
func u2mLoginWith(t *testing.T, w *workspace.Workspace, scopes []string, opts ...u2m.PersistentAuthOption) *u2m.PersistentAuth {
	t.Helper()
	ctx, fail := context.WithCancelCause(t.Context())
	t.Cleanup(func() { fail(nil) })
	arg, err := u2m.NewBasicWorkspaceOAuthArgument(w.URL())
	require.NoError(t, err)
	port, err := workspace.FreePort()
	require.NoError(t, err)
	auth, err := u2m.NewPersistentAuth(ctx, append([]u2m.PersistentAuthOption{u2m.WithOAuthArgument(arg),
		u2m.WithScopes(scopes), u2m.WithBrowser(browser.Headless(fail)), u2m.WithPort(port)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = auth.Close() })
	require.NoError(t, auth.Challenge())
	return auth
}

// TestSDKAuthFlows proves, with the real SDK as the client, that each way of getting a token reaches an app
// through the proxy as the right principal, and that no token or secret reaches the emulator's logs.
func TestSDKAuthFlows(t *testing.T) {
	testkit.CleanEnv(t)
	w, logs := startEmulator(t, workspace.Options{})
	state := w.State()
	apiApp := w.AppURL("api-app")
	var secrets []string // everything that must never be logged
	for _, sp := range state.ServicePrincipals {
		if sp.ClientSecret != "" { // federated-service has none
			secrets = append(secrets, sp.ClientSecret)
		}
	}

	m2m := func(sp string) *config.Config {
		return &config.Config{Host: w.URL(), AuthType: "oauth-m2m", ClientID: state.ServicePrincipals[sp].ClientID,
			ClientSecret: state.ServicePrincipals[sp].ClientSecret, RetryTimeoutSeconds: 5}
	}

	t.Run("M2M external service principal", func(t *testing.T) {
		token := sdkToken(t, m2m("external-service"))
		secrets = append(secrets, token)
		status, seen := callApp(t, apiApp+"/api/whoami", token)
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, identity.FormatUser("2001", "1234567890123456"), seen.Headers.Get(identity.HeaderUser))
		assert.Empty(t, seen.Headers.Get(identity.HeaderEmail))
		assert.Empty(t, seen.Headers.Get(identity.HeaderAccessToken))
	})

	t.Run("spoofed identity headers never reach the app, and request ids differ", func(t *testing.T) {
		token := sdkToken(t, m2m("external-service"))
		ids := map[string]bool{}
		for range 3 {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, apiApp+"/api/whoami", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header["x-forwarded-user"] = []string{"1@1", "2@1"} // lower case, sent twice
			req.Header["X-FORWARDED-EMAIL"] = []string{"ceo@example.com"}
			req.Header["X-Forwarded-Access-Token"] = []string{"forged"}
			req.Header["X-Request-ID"] = []string{"fixed"}
			status, seen := doApp(t, req)
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, []string{"2001@1234567890123456"}, seen.Headers.Values(identity.HeaderUser))
			assert.Empty(t, seen.Headers.Values(identity.HeaderEmail))
			assert.Empty(t, seen.Headers.Values(identity.HeaderAccessToken))
			assert.Empty(t, seen.Headers.Values("Authorization"))
			id := seen.Headers.Get(identity.HeaderRequestID)
			assert.NotEqual(t, "fixed", id)
			assert.False(t, ids[id], "request id repeated")
			ids[id] = true
		}
	})

	t.Run("M2M app to app: caller-app's own service principal", func(t *testing.T) {
		token := sdkToken(t, m2m("caller-app"))
		secrets = append(secrets, token)
		status, seen := callApp(t, apiApp+"/api/whoami", token)
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, "2003@1234567890123456", seen.Headers.Get(identity.HeaderUser))
	})

	t.Run("M2M without CAN_USE is refused", func(t *testing.T) {
		token := sdkToken(t, m2m("no-access-service"))
		secrets = append(secrets, token)
		status, _ := callApp(t, apiApp+"/api/whoami", token)
		assert.Equal(t, http.StatusForbidden, status)
	})

	t.Run("M2M with a wrong secret fails at the token endpoint", func(t *testing.T) {
		cfg := m2m("external-service")
		cfg.ClientSecret = "wrong-secret"
		err := cfg.Authenticate(httpRequest(t))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "invalid_client")
	})

	t.Run("CLI profile through the stand-in", func(t *testing.T) {
		self, err := os.Executable()
		require.NoError(t, err)
		profile, err := w.WriteProfile(filepath.Join(t.TempDir(), "profile"), self)
		require.NoError(t, err)
		cfg := &config.Config{Profile: profile.Name, ConfigFile: profile.ConfigFile,
			Loaders: []config.Loader{config.ConfigFile}, RetryTimeoutSeconds: 5}
		token := sdkToken(t, cfg)
		secrets = append(secrets, token)
		assert.Equal(t, "databricks-cli", cfg.AuthType)

		status, seen := callApp(t, apiApp+"/api/whoami", token)
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, "1001@1234567890123456", seen.Headers.Get(identity.HeaderUser))
		assert.Equal(t, "dev@example.com", seen.Headers.Get(identity.HeaderEmail))
		forwarded := seen.Headers.Get(identity.HeaderAccessToken)
		require.NotEmpty(t, forwarded)
		secrets = append(secrets, forwarded)
		claims, err := identity.DecodeClaims(forwarded)
		require.NoError(t, err)
		assert.Equal(t, []string{"sql", "file.files", "dashboards.genie"}, claims.Scopes)

		cache := filepath.Join(filepath.Dir(profile.CLIPath), workspace.TokenCacheName)
		info, err := os.Stat(cache)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the token cache is owner-only")
		raw, err := os.ReadFile(cache)
		require.NoError(t, err)
		var cached struct {
			Tokens map[string]struct {
				RefreshToken string `json:"refresh_token"`
			} `json:"tokens"`
		}
		require.NoError(t, json.Unmarshal(raw, &cached))
		require.NotEmpty(t, cached.Tokens)
		for _, tok := range cached.Tokens {
			require.NotEmpty(t, tok.RefreshToken)
			secrets = append(secrets, tok.RefreshToken)
		}

		// The stand-in on its own: version, help, and --host without a profile.
		out, err := exec.Command(profile.CLIPath, "version").Output()
		require.NoError(t, err)
		assert.Equal(t, "Databricks CLI v0.296.0+emulator\n", string(out))
		out, err = exec.Command(profile.CLIPath, "--help").Output()
		require.NoError(t, err)
		assert.Contains(t, string(out), "OFFLINE STAND-IN")
		cmd := exec.Command(profile.CLIPath, "auth", "token", "--host", w.URL(), "--force-refresh")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		require.NoError(t, err, stderr.String())
		assert.Contains(t, string(out), `"token_type": "Bearer"`)
		assert.NotContains(t, stderr.String(), "eyJ", "the stand-in prints no token on stderr")
		// A profile's scopes (what `databricks auth login --scopes` writes) are the scopes it asks for.
		narrow := filepath.Join(t.TempDir(), "narrow.cfg")
		require.NoError(t, os.WriteFile(narrow, []byte("[narrow]\nhost = "+w.URL()+"\nscopes = sql\n"), 0o600))
		cmd = exec.Command(profile.CLIPath, "auth", "token", "--profile", "narrow")
		cmd.Env = append(os.Environ(), "DATABRICKS_CONFIG_FILE="+narrow)
		out, err = cmd.Output()
		require.NoError(t, err)
		var narrowToken struct {
			AccessToken string `json:"access_token"`
		}
		require.NoError(t, json.Unmarshal(out, &narrowToken))
		secrets = append(secrets, narrowToken.AccessToken)
		claims, err = identity.DecodeClaims(narrowToken.AccessToken)
		require.NoError(t, err)
		assert.Equal(t, []string{"sql"}, claims.Scopes)

		out, err = exec.Command(profile.CLIPath, "workspace", "list").CombinedOutput()
		assert.Error(t, err)
		assert.Contains(t, string(out), "supports only")
	})

	t.Run("in-process U2M with custom scopes", func(t *testing.T) {
		auth := u2mLogin(t, w, "sql", "file.files", "dashboards.genie")
		tok, err := auth.Token()
		require.NoError(t, err)
		secrets = append(secrets, tok.AccessToken)
		status, seen := callApp(t, apiApp+"/api/whoami", tok.AccessToken)
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, "1001@1234567890123456", seen.Headers.Get(identity.HeaderUser))
		forwarded := seen.Headers.Get(identity.HeaderAccessToken)
		secrets = append(secrets, forwarded)
		claims, err := identity.DecodeClaims(forwarded)
		require.NoError(t, err)
		assert.Equal(t, []string{"sql", "file.files", "dashboards.genie"}, claims.Scopes)

		// The app can use the forwarded token as the user, through the SDK's pat auth.
		me := &config.Config{Host: w.URL(), AuthType: "pat", Token: forwarded, RetryTimeoutSeconds: 5}
		req, err := http.NewRequest(http.MethodGet, w.URL()+workspace.PathWarehouses, nil)
		require.NoError(t, err)
		require.NoError(t, me.Authenticate(req))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("in-process U2M missing a scope gets 403", func(t *testing.T) {
		tok, err := u2mLogin(t, w, "sql").Token()
		require.NoError(t, err)
		secrets = append(secrets, tok.AccessToken)
		status, _ := callApp(t, apiApp+"/api/whoami", tok.AccessToken)
		assert.Equal(t, http.StatusForbidden, status)
	})

	t.Run("no token or secret in the logs", func(t *testing.T) {
		out := logs.String()
		require.NotEmpty(t, out)
		for _, s := range secrets {
			require.NotEmpty(t, s)
			assert.NotContains(t, out, s)
		}
	})
}

func httpRequest(t *testing.T) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://unused.invalid", nil)
	require.NoError(t, err)
	return req
}

// TestRefreshAfterExpiry uses three-second tokens (valid for at least two, as exp is whole seconds): the SDK gets
// new ones once they expire, and the proxy refuses the expired ones. The SDK keeps time by the real clock, so the
// test sleeps past the expiry, a wait that only gets longer on a slow machine; each token is used the moment it is
// issued (the slow U2M login comes first), milliseconds of a lifetime of two seconds or more.
func TestRefreshAfterExpiry(t *testing.T) {
	testkit.CleanEnv(t)
	w, _ := startEmulator(t, workspace.Options{TokenLifetime: 3 * time.Second})
	sp := w.State().ServicePrincipals["external-service"]
	apiApp := w.AppURL("api-app") + "/api/whoami"

	cfg := &config.Config{Host: w.URL(), AuthType: "oauth-m2m", ClientID: sp.ClientID, ClientSecret: sp.ClientSecret,
		RetryTimeoutSeconds: 5}
	auth := u2mLogin(t, w, "all-apis")
	u2mFirst, err := auth.Token()
	require.NoError(t, err)
	m2mFirst := sdkToken(t, cfg)
	for _, token := range []string{m2mFirst, u2mFirst.AccessToken} {
		status, _ := callApp(t, apiApp, token)
		require.Equal(t, http.StatusOK, status)
	}

	issued := time.Now()                                        // every token so far was issued before
	time.Sleep(time.Until(issued.Add(3100 * time.Millisecond))) // past every expiry: exp is at most 3 s after issue

	for _, token := range []string{m2mFirst, u2mFirst.AccessToken} {
		status, _ := callApp(t, apiApp, token)
		assert.Equal(t, http.StatusUnauthorized, status, "an expired token is refused")
	}
	tokensBefore := w.RequestCount(workspace.PathToken)
	m2mNext := sdkToken(t, cfg)
	assert.NotEqual(t, m2mFirst, m2mNext)
	u2mNext, err := auth.Token() // refresh_token grant
	require.NoError(t, err)
	assert.NotEqual(t, u2mFirst.AccessToken, u2mNext.AccessToken)
	assert.Greater(t, w.RequestCount(workspace.PathToken), tokensBefore)
	for _, token := range []string{m2mNext, u2mNext.AccessToken} {
		status, seen := callApp(t, apiApp, token)
		require.Equal(t, http.StatusOK, status)
		assert.NotEmpty(t, seen.Headers.Get(identity.HeaderUser))
	}
}

// With single-use refresh tokens, the SDK stores each rotated refresh token and keeps refreshing; a process still
// holding a spent one gets the SDK's InvalidRefreshTokenError ("log in again"), which it recognises by the exact
// description the emulator answers.
func TestSDKWithSingleUseRefreshTokens(t *testing.T) {
	testkit.CleanEnv(t)
	cfg := workspace.DefaultConfig()
	cfg.Workspace.OAuth.SingleUseRefreshTokens = true
	w, _ := startEmulator(t, workspace.Options{Config: cfg})
	tokens := cache.NewInMemoryTokenCache()
	auth := u2mLoginWith(t, w, []string{"all-apis"}, u2m.WithTokenCache(tokens))
	arg, err := u2m.NewBasicWorkspaceOAuthArgument(w.URL())
	require.NoError(t, err)
	key := arg.GetCacheKey()

	first, err := tokens.Lookup(key)
	require.NoError(t, err)
	require.NotEmpty(t, first.RefreshToken)
	for range 2 {
		_, err := auth.ForceRefreshToken()
		require.NoError(t, err)
	}
	latest, err := tokens.Lookup(key)
	require.NoError(t, err)
	assert.NotEqual(t, first.RefreshToken, latest.RefreshToken, "the SDK stored the rotated refresh token")
	status, _ := callApp(t, w.AppURL("api-app")+"/api/whoami", latest.AccessToken)
	assert.Equal(t, http.StatusOK, status)

	require.NoError(t, tokens.Store(key, first)) // another process's cache, still holding the spent token
	_, err = auth.ForceRefreshToken()
	var invalid *u2m.InvalidRefreshTokenError
	assert.ErrorAs(t, err, &invalid)
}
