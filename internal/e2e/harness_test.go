package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// The harness is internal/testkit (builds, processes, the environment, secrets) and internal/testkit/emulated
// (the workspace in-process, the app behind its proxy). What is here is this package's own: the packaged app.

func TestMain(m *testing.M) { os.Exit(testkit.Run(m)) }

var packaging struct {
	once sync.Once
	root string
	log  []byte
	err  error
}

// packagedApps runs `make package` once per test binary, for this machine's OS and architecture (the default,
// linux/amd64, is what CI runs on), and returns the folder holding one deployable folder per app.
func packagedApps(t *testing.T) string {
	t.Helper()
	packaging.once.Do(func() {
		packaging.root = filepath.Join(testkit.ScratchDir(t), "package")
		packaging.log, packaging.err = testkit.GoCommand(t, "make", "package", "BUILD="+packaging.root,
			"PACKAGE_GOOS="+runtime.GOOS, "PACKAGE_GOARCH="+runtime.GOARCH).CombinedOutput()
	})
	require.NoError(t, packaging.err, "make package:\n%s", packaging.log)
	return packaging.root
}

// packagedApp is the API app's deployable folder, build/app/ as make package writes it.
func packagedApp(t *testing.T) string {
	t.Helper()
	return filepath.Join(packagedApps(t), "app")
}

// asServicePrincipal is what the proxy forwards for a service principal, for tests that call the app directly.
func asServicePrincipal() http.Header {
	h := http.Header{}
	h.Set(identity.HeaderUser, "2001@1234567890123456")
	h.Set(identity.HeaderPreferredUsername, "3f8a1c0e-7d2b-4e6f-9a1b-2c3d4e5f6a7b")
	h.Set(identity.HeaderRequestID, "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")
	return h
}
