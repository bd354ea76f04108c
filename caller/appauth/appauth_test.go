package appauth_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/databricks-sample/go-apps-api/caller/appauth"
)

// Each way names its auth type: without one, the SDK swallows a failure into a generic message, and inside an app
// a token next to the platform's client id and secret is "more than one authorization method configured".
func TestEachWayHasAnExplicitAuthType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  *config.Config
		want string
	}{
		{"local", appauth.Local("my-env"), appauth.AuthDatabricksCLI},
		{"external", appauth.External("adb-1.example.com", "id", "secret"), appauth.AuthM2M},
		{"from app", appauth.FromEnv(func(string) string { return "x" }), appauth.AuthM2M},
		{"federated", appauth.Federated("adb-1.example.com", "id", "/run/token"), appauth.AuthFileOIDC},
		{"federated from env", appauth.FederatedFromEnv("adb-1.example.com", "id"), appauth.AuthEnvOIDC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.cfg.AuthType)
			assert.NotEmpty(t, tt.cfg.Loaders, "never the SDK's default loaders")
		})
	}
	assert.Equal(t, "https://adb-1.example.com", appauth.External("adb-1.example.com/", "id", "s").Host, "the platform may omit the scheme")
}

func TestFileTokenCacheIsOwnerOnly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cache", "token-cache.json")
	c := &appauth.FileTokenCache{Path: path}
	_, err := c.Lookup("k")
	assert.Error(t, err, "empty cache")
	require.NoError(t, c.Store("k", &oauth2.Token{AccessToken: "a", RefreshToken: "r", Expiry: time.Now().Add(time.Hour)}))
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	dir, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), dir.Mode().Perm())
	got, err := c.Lookup("k")
	require.NoError(t, err)
	assert.Equal(t, "r", got.RefreshToken)

	require.NoError(t, os.Chmod(path, 0o644))
	_, err = c.Lookup("k")
	assert.ErrorContains(t, err, "readable by others")
}
