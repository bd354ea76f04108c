//go:build examples

// Package whoami_test is the Go recipe of docs/testing-your-app.md: the repository's app started
// under `emulator run` as a process, as a team would start its own Go app, and called through the emulated Apps
// proxy as a user (the CLI profile) and as a service principal (M2M), with the URLs and credentials of the state
// file. The build tag keeps it out of `go test ./...`, which tests the app in-process; `make test` runs it:
//
//	go test -tags examples ./examples/go/
package whoami_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

func TestWhoAmIUnderTheEmulator(t *testing.T) {
	dir := t.TempDir()
	emulator, stateFile := os.Getenv("EMULATOR"), filepath.Join(dir, "state.json") // make test builds it once
	if emulator == "" {
		emulator = filepath.Join(dir, "emulator")
		require.NoError(t, exec.Command("go", "build", "-o", emulator, "github.com/databricks-sample/go-apps-api/emulator").Run())
	}
	emu := exec.Command(emulator, "run", "--fresh", "--state", stateFile, "--", "go", "run", "../../app")
	require.NoError(t, emu.Start())
	t.Cleanup(func() { _ = emu.Process.Signal(syscall.SIGTERM); _ = emu.Wait() }) // it stops the app, then itself

	var state workspace.State
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(stateFile)
		return err == nil && json.Unmarshal(data, &state) == nil
	}, 2*time.Minute, 100*time.Millisecond, "the emulator wrote no state")

	sp := state.ServicePrincipals["external-service"]
	for name, tt := range map[string]struct {
		cfg  *config.Config
		user string
		kind identity.Kind
	}{
		"user": {&config.Config{Profile: state.Profile, ConfigFile: state.ConfigFile, AuthType: "databricks-cli"},
			identity.FormatUser(state.Users["dev@example.com"].ID, state.WorkspaceID), identity.KindUser},
		"m2m": {&config.Config{Host: state.WorkspaceHost, ClientID: sp.ClientID, ClientSecret: sp.ClientSecret, AuthType: "oauth-m2m"},
			identity.FormatUser(sp.ID, state.WorkspaceID), identity.KindServicePrincipal},
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, state.Apps["api-app"].URL+"/api/whoami", nil)
			require.NoError(t, err)
			require.NoError(t, tt.cfg.Authenticate(req)) // Authorization: Bearer <the principal's token>
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var who identity.WhoAmI
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&who))
			assert.Equal(t, tt.user, who.User)
			assert.Equal(t, tt.kind, who.Kind)
		})
	}
}
