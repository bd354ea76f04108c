package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// Databricks Apps refuses to deploy a source folder holding any file larger than this.
const platformMaxFileBytes = 10 * 1024 * 1024

var (
	packageOnce sync.Once
	packageRoot string // what make package wrote: one folder per deployable app
	packageErr  error
	packageLog  []byte
)

// packagedApp runs `make package` once for the whole test binary, into a temporary folder, for this machine's OS and
// architecture (the default, linux/amd64, is what CI runs on), and returns the app's folder.
func packagedApp(t *testing.T) string {
	t.Helper()
	packageOnce.Do(func() {
		packageRoot, packageErr = os.MkdirTemp("", "app-package-")
		if packageErr != nil {
			return
		}
		cmd := exec.Command("make", "-C", "..", "package", "BUILD="+packageRoot,
			"PACKAGE_GOOS="+runtime.GOOS, "PACKAGE_GOARCH="+runtime.GOARCH)
		packageLog, packageErr = cmd.CombinedOutput()
	})
	require.NoError(t, packageErr, "make package:\n%s", packageLog)
	return filepath.Join(packageRoot, "app")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if packageRoot != "" {
		os.RemoveAll(packageRoot)
	}
	os.Exit(code)
}

// Every file of every deployable folder fits the platform's limit, and each folder holds just app.yaml and the parts of
// its binary.
func TestPackagedFilesFitThePlatformLimit(t *testing.T) {
	packagedApp(t)
	want := map[string]string{"app": "app.part-", "caller": "caller.part-"} // and app.yaml in each
	folders, err := os.ReadDir(packageRoot)
	require.NoError(t, err)
	for _, folder := range folders {
		entries, err := os.ReadDir(filepath.Join(packageRoot, folder.Name()))
		require.NoError(t, err)
		parts := 0
		for _, e := range entries {
			info, err := e.Info()
			require.NoError(t, err)
			assert.LessOrEqual(t, info.Size(), int64(platformMaxFileBytes), "%s/%s is %d bytes", folder.Name(), e.Name(), info.Size())
			switch {
			case e.Name() == "app.yaml":
			case strings.HasPrefix(e.Name(), want[folder.Name()]):
				parts++
			default:
				t.Errorf("%s/%s: make package put an unexpected file in a deployable folder", folder.Name(), e.Name())
			}
		}
		assert.FileExists(t, filepath.Join(packageRoot, folder.Name(), "app.yaml"))
		assert.GreaterOrEqual(t, parts, 2, "%s: a binary over 10 MB needs at least two parts", folder.Name())
		delete(want, folder.Name())
	}
	assert.Empty(t, want, "make package did not build these folders")
}

// The packaged app.yaml's command, run as the platform runs it, starts the app, which answers /api/health and stops
// cleanly on SIGTERM: the shell's exec hands the signal to the Go process.
func TestPackagedLauncher(t *testing.T) {
	src := packagedApp(t)
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644))
	}
	var manifest struct {
		Command []string `yaml:"command"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "app.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &manifest))
	require.NotEmpty(t, manifest.Command)

	ws := newFakeWorkspace(t)
	port := freePort(t)
	env := platformEnv(ws.URL)
	env["DATABRICKS_APP_PORT"] = port
	env["PATH"] = os.Getenv("PATH")
	tmp := t.TempDir()
	env["TMPDIR"] = tmp // where the launcher unpacks the binary
	args := make([]string, len(manifest.Command))
	for i, a := range manifest.Command { // the platform substitutes this one variable in command
		args[i] = strings.ReplaceAll(a, "$DATABRICKS_APP_PORT", port)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	base := "http://127.0.0.1:" + port
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/api/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "no 200 from /api/health; stderr:\n%s", &stderr)

	status, body := call(t, "GET", base+"/api/me", asUser(userToken), "")
	assert.Equal(t, http.StatusOK, status, "%v", body)
	if _, err := os.Stat("/proc/self/fd"); err == nil {
		left, err := os.ReadDir(tmp)
		require.NoError(t, err)
		assert.Empty(t, left, "the running app left its joined binary in TMPDIR") // a 17 MB copy at every start
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		assert.NoError(t, err, "exit status after SIGTERM")
	case <-time.After(10 * time.Second):
		t.Fatal("the app did not exit within 10 s of SIGTERM")
	}
	assert.Contains(t, stdout.String(), `"msg":"stopped"`)
	if _, err := os.Stat("/proc/self/fd"); err == nil {
		left, err := os.ReadDir(tmp)
		require.NoError(t, err)
		assert.Empty(t, left, "the stopped app left files in TMPDIR")
	}
	for _, secret := range []string{userToken, spSecret, spToken} {
		assert.NotContains(t, stdout.String()+stderr.String(), secret)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
}
