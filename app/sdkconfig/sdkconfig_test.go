package sdkconfig_test

import (
	"context"
	"testing"

	"github.com/databricks/databricks-sdk-go/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
)

func TestNormaliseHost(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "https://adb-1.azuredatabricks.net", sdkconfig.NormaliseHost("adb-1.azuredatabricks.net/"))
	assert.Equal(t, "http://127.0.0.1:9", sdkconfig.NormaliseHost(" http://127.0.0.1:9 "))
	assert.Equal(t, "", sdkconfig.NormaliseHost(""))
}

// A Config with ExplicitOnly ignores the environment: here, a PAT and a client secret that would otherwise clash.
func TestExplicitOnlyIgnoresTheEnvironment(t *testing.T) { // not parallel: it sets the process environment
	t.Setenv("HOME", t.TempDir())
	t.Setenv("DATABRICKS_CLIENT_ID", "from-env")
	t.Setenv("DATABRICKS_CLIENT_SECRET", "from-env")
	cfg := &config.Config{Host: "http://127.0.0.1:1", Token: "t", AuthType: "pat",
		Loaders: []config.Loader{sdkconfig.ExplicitOnly{}}, HostMetadataResolver: noMetadata}
	require.NoError(t, cfg.EnsureResolved())
	assert.Empty(t, cfg.ClientID)
	assert.Empty(t, cfg.ClientSecret)
}

func noMetadata(ctx context.Context, host string) (*config.HostMetadata, error) { return nil, nil }
