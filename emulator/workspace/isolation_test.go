package workspace

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/runner"
)

// serveProbe is an app that tries to read what the platform's container keeps from it: the paths in PROBE_READ
// (separated by ;), the environment of the process PROBE_PID, and to unmount PROBE_UNMOUNT. It answers with what it
// got, its environment's names, its HOME, TMPDIR and working folder.
func serveProbe() {
	result := map[string]any{}
	reads := map[string]string{}
	for _, p := range strings.Split(os.Getenv("PROBE_READ"), ";") {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			entries, err := os.ReadDir(p)
			reads[p] = fmt.Sprintf("%d entries, %v", len(entries), err)
		} else if data, err := os.ReadFile(p); err == nil {
			reads[p] = "read: " + string(data)
		} else {
			reads[p] = "refused: " + err.Error()
		}
	}
	result["reads"] = reads
	if data, err := os.ReadFile("/proc/" + os.Getenv("PROBE_PID") + "/environ"); err == nil {
		result["emulator_environ"] = string(data)
	}
	result["unmount"] = fmt.Sprint(syscall.Unmount(os.Getenv("PROBE_UNMOUNT"), syscall.MNT_DETACH))
	var names []string
	for _, kv := range os.Environ() {
		names = append(names, kv[:strings.IndexByte(kv, '=')])
	}
	result["env"] = names
	result["home"], result["tmpdir"] = os.Getenv("HOME"), os.Getenv("TMPDIR")
	result["cwd"], _ = os.Getwd()
	ln, err := net.Listen("tcp", os.Getenv("APP_LISTEN_ADDR"))
	if err != nil {
		os.Exit(1)
	}
	_ = http.Serve(ln, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(rw).Encode(result)
	}))
}

// TestDeployedAppIsIsolated: a deployed app sees its snapshot as its working folder, a home and TMPDIR of its own,
// the platform's environment and nothing of the emulator's. On Linux, where the machine allows namespaces, it cannot
// read the state file (service principal secrets), the data folder (other principals' private files, other apps'
// snapshots), nor the emulator's environment through /proc, and cannot unmount what hides them.
func TestDeployedAppIsIsolated(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "state.json") // before the workspace: it writes there until it stops
	w, _ := startWorkspace(t, Options{StopGrace: 5 * time.Second,
		UserEnv: append(os.Environ(), "EMULATOR_SHELL_SECRET=from-the-shell")})
	require.NoError(t, w.WriteState(state))
	w.KeepStateFile(state)
	token := managerToken(t, w)
	dev := sdkClient(t, w, token)

	outsider := issueAt(t, w, time.Now(), "outsider@example.com", "all-apis")
	uploadFiles(t, w, outsider, "/Users/outsider@example.com", map[string]string{"private.txt": "outsider's secret"})
	other := "/Workspace/Users/dev@example.com/other"
	self, err := os.Executable()
	require.NoError(t, err)
	uploadFiles(t, w, token, other, map[string]string{"app.yaml": fmt.Sprintf("command: [%q, \"-test.run=^$\"]\n"+
		"env:\n  - name: %s\n    value: serve\n", self, testAppMode)})
	deploy(t, dev, "api-app", other)
	otherSnapshot := w.apps.byName["api-app"].active.dir

	probe := "/Workspace/Users/dev@example.com/probe"
	uploadTestApp(t, w, token, probe, "probe", "v1")
	var d *apps.AppDeployment
	privateFile := filepath.Join(w.dataDir, "files", "Users", "outsider@example.com", "private.txt")
	d, err = waitFor[apps.AppDeployment](dev.Apps.Deploy(t.Context(), apps.CreateAppDeploymentRequest{
		AppName: "caller-app", AppDeployment: apps.AppDeployment{SourceCodePath: probe, EnvVars: []apps.EnvVar{
			{Name: testAppMode, Value: "probe"},
			{Name: "PROBE_READ", Value: strings.Join([]string{state, privateFile, otherSnapshot, w.dataDir}, ";")},
			{Name: "PROBE_PID", Value: fmt.Sprint(os.Getpid())},
			{Name: "PROBE_UNMOUNT", Value: w.dataDir}}}}))
	require.NoError(t, err)
	resp, body := call(t, http.MethodGet, w.AppURL("caller-app")+"/api/probe", bearer(token))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var seen struct {
		Reads           map[string]string `json:"reads"`
		EmulatorEnviron string            `json:"emulator_environ"`
		Unmount         string            `json:"unmount"`
		Env             []string          `json:"env"`
		Home, TmpDir    string
		Cwd             string `json:"cwd"`
	}
	require.NoError(t, json.Unmarshal(body, &seen))
	t.Logf("probe: %s", body)

	assert.Equal(t, d.DeploymentArtifacts.SourceCodePath, probe)
	assert.Equal(t, w.apps.byName["caller-app"].active.dir, seen.Cwd, "its snapshot is its working folder")
	assert.Equal(t, w.apps.build.appHome("caller-app"), seen.Home)
	assert.True(t, strings.HasPrefix(seen.TmpDir, seen.Home+"/"), "its TMPDIR is its own: %s", seen.TmpDir)
	assert.NotContains(t, seen.Env, "EMULATOR_SHELL_SECRET", "nothing of the emulator's environment")
	for _, name := range seen.Env {
		assert.True(t, strings.HasPrefix(name, "DATABRICKS_") || strings.HasPrefix(name, "PROBE_") ||
			strings.HasPrefix(name, "APP_") || name == testAppMode || name == "TARGET_APP" ||
			strings.Contains(" PATH HOME TMPDIR PWD LANG PYTHONUNBUFFERED VIRTUAL_ENV ", " "+name+" "),
			"%s is not the platform's", name)
	}

	if problem := runner.SandboxProblem(); problem != nil {
		t.Skipf("this machine cannot isolate apps (%v): the file checks need Linux namespaces", problem)
	}
	for path, got := range seen.Reads {
		assert.NotContains(t, got, "read:", "the app read %s", path)
		assert.NotContains(t, got, "secret")
	}
	assert.Equal(t, "2 entries, <nil>", seen.Reads[w.dataDir], "of the data folder it sees only the way to its own "+
		"folders, apps/ and deployments/, not the workspace's files/")
	assert.Contains(t, seen.Reads[otherSnapshot], "no such file or directory", "another app's snapshot is not there")
	assert.Empty(t, seen.EmulatorEnviron, "the emulator's process is not in its /proc")
	assert.NotEqual(t, "<nil>", seen.Unmount, "it cannot unmount what hides the data folder")
}
