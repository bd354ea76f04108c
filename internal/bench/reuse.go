package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/gotool"
)

// tokenReuse counts the workspace's token requests while the caller sends calls requests in each mode: with the
// caller's --repeat for local (a CLI profile through the stand-in) and external (M2M), and, for app mode, calls
// requests to the caller running as caller-app, which calls api-app each time with its own service principal.
func tokenReuse(ctx context.Context, ws *workspace.Workspace, dir, bin string, calls int) (map[string]int64, error) {
	state := ws.State()
	profile, err := ws.WriteProfile(filepath.Join(dir, "profile"), filepath.Join(bin, "emulator"))
	if err != nil {
		return nil, err
	}
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	target := ws.AppURL("api-app")
	ext := state.ServicePrincipals["external-service"]
	counts := map[string]int64{}

	repeat := func(mode string, env []string, args ...string) error {
		before := ws.RequestCount(workspace.PathToken)
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "callapp"), append(args, "--url", target, "--json",
			"--repeat", fmt.Sprint(calls), "whoami")...)
		cmd.Env = append(gotool.CleanEnv(home), env...)
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("callapp --mode %s --repeat %d: %w: %s", mode, calls, err, out)
		}
		var summary struct {
			Requests int            `json:"requests"`
			Statuses map[string]int `json:"statuses"`
		}
		if err := json.Unmarshal(out, &summary); err != nil || summary.Statuses["200"] != calls {
			return fmt.Errorf("callapp --mode %s --repeat %d: not %d×200: %s", mode, calls, calls, out)
		}
		counts[mode] = ws.RequestCount(workspace.PathToken) - before
		return nil
	}
	if err := repeat("local", []string{"DATABRICKS_CONFIG_FILE=" + profile.ConfigFile, "DATABRICKS_CLI_PATH=" + profile.CLIPath},
		"--mode", "local", "--profile", profile.Name); err != nil {
		return nil, err
	}
	if err := repeat("external", []string{"DATABRICKS_HOST=" + ws.URL(), "DATABRICKS_CLIENT_ID=" + ext.ClientID,
		"DATABRICKS_CLIENT_SECRET=" + ext.ClientSecret}, "--mode", "external"); err != nil {
		return nil, err
	}

	sp := state.ServicePrincipals["caller-app"]
	before := ws.RequestCount(workspace.PathToken)
	callerApp, err := startProcess(ctx, dir, "caller-app", []string{filepath.Join(bin, "callapp"), "serve", "--listen", "$ADDR"},
		[]string{"HOME=" + home, "DATABRICKS_APP_NAME=caller-app", "DATABRICKS_HOST=" + ws.URL(),
			"DATABRICKS_WORKSPACE_ID=" + state.WorkspaceID, "DATABRICKS_CLIENT_ID=" + sp.ClientID,
			"DATABRICKS_CLIENT_SECRET=" + sp.ClientSecret, "TARGET_APP_URL=" + target})
	if err != nil {
		return nil, err
	}
	defer callerApp.stop()
	// What caller-app's proxy forwards for the developer: caller-app is called straight, so the only tokens counted
	// are the ones caller-app fetches for itself.
	dev := http.Header{}
	dev.Set(identity.HeaderUser, identity.FormatUser(state.Users["dev@example.com"].ID, state.WorkspaceID))
	dev.Set(identity.HeaderEmail, "dev@example.com")
	for i := range calls {
		if _, err := get(ctx, callerApp.url+"/api/call?path=/api/whoami", dev); err != nil {
			return nil, fmt.Errorf("caller-app call %d: %w", i+1, err)
		}
	}
	counts["app"] = ws.RequestCount(workspace.PathToken) - before
	return counts, nil
}
