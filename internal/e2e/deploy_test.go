package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// The bundle is checked as far as it can be offline: it parses, its references resolve, its source folders are what
// make package builds, and sync uploads them although build/ is gitignored.
func TestBundle(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "databricks.yml"))
	require.NoError(t, err)
	var bundle struct {
		Bundle    struct{ Name string }
		Variables map[string]struct{ Default string }
		Sync      struct{ Include []string }
		Resources struct {
			Apps map[string]struct {
				Name           string   `yaml:"name"`
				SourceCodePath string   `yaml:"source_code_path"`
				UserAPIScopes  []string `yaml:"user_api_scopes"`
				Resources      []struct {
					Name string
					App  struct{ Name, Permission string }
				}
				Permissions []struct {
					Level     string
					GroupName string `yaml:"group_name"`
				}
			}
		}
	}
	require.NoError(t, yaml.Unmarshal(data, &bundle))
	require.NotEmpty(t, bundle.Bundle.Name)

	for _, ref := range regexp.MustCompile(`\$\{([^}]+)\}`).FindAllStringSubmatch(string(data), -1) {
		parts := strings.Split(ref[1], ".")
		switch parts[0] {
		case "var":
			assert.Contains(t, bundle.Variables, parts[1], "undefined variable in %s", ref[0])
		case "resources":
			require.Len(t, parts, 4, ref[0])
			assert.Equal(t, "apps", parts[1], ref[0])
			assert.Contains(t, bundle.Resources.Apps, parts[2], "undefined resource in %s", ref[0])
		default:
			t.Errorf("unexpected reference %s", ref[0])
		}
	}

	packageRoot := packagedApps(t)
	apps := bundle.Resources.Apps
	require.Contains(t, apps, "api_app")
	require.Contains(t, apps, "caller_app")
	for key, app := range apps {
		folder := strings.TrimPrefix(app.SourceCodePath, "./")
		assert.Contains(t, bundle.Sync.Include, folder+"/**", "%s: its gitignored source folder is not synced", key)
		assert.FileExists(t, filepath.Join(packageRoot, strings.TrimPrefix(folder, "build/"), "app.yaml"),
			"%s: make package does not build %s", key, folder)
		assert.Contains(t, app.Permissions, struct {
			Level     string
			GroupName string `yaml:"group_name"`
		}{"CAN_USE", "users"}, key)
	}
	assert.Equal(t, []string{"sql", "file.files", "dashboards.genie"}, apps["api_app"].UserAPIScopes,
		"the documentation page's example scopes, exactly")

	callerYAML, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "caller", "app.yaml"))
	require.NoError(t, err)
	require.Len(t, apps["caller_app"].Resources, 1)
	target := apps["caller_app"].Resources[0]
	assert.Contains(t, string(callerYAML), "valueFrom: "+target.Name, "caller/app.yaml reads the resource by its key")
	assert.Equal(t, "${resources.apps.api_app.name}", target.App.Name)
	assert.Equal(t, "CAN_USE", target.App.Permission)
}

func TestMakeDeployStopsWithoutLogin(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "databricks")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\nexit 1\n"), 0o755))
	out, err := exec.Command("make", "-s", "-C", testkit.RepoRoot(t), "deploy-check", "DATABRICKS="+fake, "PROFILE=my-env").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "databricks auth login --host https://<workspace-url> --profile my-env")

	out, err = exec.Command("make", "-s", "-C", testkit.RepoRoot(t), "deploy-check", "DATABRICKS=/nonexistent/databricks").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "is not installed")
}
