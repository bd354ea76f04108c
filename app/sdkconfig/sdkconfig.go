// Package sdkconfig holds what the app and the caller both do when they build databricks-sdk-go configs from the
// platform's variables.
package sdkconfig

import (
	"strings"

	"github.com/databricks/databricks-sdk-go/config"
)

// NormaliseHost adds the https:// scheme a bare host name lacks: on the platform DATABRICKS_HOST may come without
// one, and the SDK needs it.
func NormaliseHost(host string) string {
	host = strings.TrimRight(strings.TrimSpace(host), "/")
	if host != "" && !strings.Contains(host, "://") {
		host = "https://" + host
	}
	return host
}

// ExplicitOnly is a config.Loader that loads nothing, so a Config's own fields are all its configuration. Without it
// the SDK also reads DATABRICKS_* from the process environment and ~/.databrickscfg: inside an app, the app's own
// client id and secret would then sit next to a user's token.
type ExplicitOnly struct{}

func (ExplicitOnly) Name() string                   { return "explicit fields only" }
func (ExplicitOnly) Configure(*config.Config) error { return nil }
