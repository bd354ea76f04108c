package workspace

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// userEnvWith is this process's environment without its pip and npm settings, plus the given ones: the environment
// of a user whose installers are configured for a local mirror.
func userEnvWith(settings ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name := strings.ToUpper(kv[:strings.IndexByte(kv, '=')+1])
		if !strings.HasPrefix(name, "PIP_") && !strings.HasPrefix(name, "NPM_CONFIG_") {
			env = append(env, kv)
		}
	}
	return append(env, settings...)
}

// uploadFiles writes an app folder to the workspace files, as databricks sync does.
func uploadFiles(t *testing.T, w *Workspace, token, dir string, files map[string]string) {
	t.Helper()
	resp, body := send(t, http.MethodPost, w.URL()+PathWorkspaceMkdirs, `{"path":"`+dir+`"}`, bearer(token))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	for name, content := range files {
		resp, body = send(t, http.MethodPost, w.URL()+PathImportFile+dir+"/"+name+"?overwrite=true", content, bearer(token))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	}
}

// deployLogs is the app's log, as `databricks apps logs` reads it.
func deployLogs(t *testing.T, w *Workspace, app, token string) string {
	t.Helper()
	_, body := call(t, http.MethodGet, w.AppURL(app)+PathAppLogs, bearer(token))
	return string(body)
}

// pythonApp answers with what it imported from its dependency and which Python runs it. It has no app.yaml: the
// platform's default command runs it, python app.py.
const pythonApp = `import http.server, json, os, sys
import emuhello

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"greeting": emuhello.GREETING, "python": sys.executable, "version": os.environ.get("V", "")})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

host, port = os.environ["APP_LISTEN_ADDR"].rsplit(":", 1)
print("python app listening", flush=True)
http.server.HTTPServer((host, int(port)), Handler).serve_forever()
`

// TestDeploymentInstallsRequirements: a Python app deployed without its dependencies gets them from requirements.txt,
// installed by pip into a virtualenv of its own, from a local wheel folder that the user's pip configuration
// (PIP_FIND_LINKS, PIP_NO_INDEX) names, as on a machine with no access to PyPI. A redeploy with the same
// requirements reuses the virtualenv; a requirement pip cannot meet fails the deployment with pip's own words.
func TestDeploymentInstallsRequirements(t *testing.T) {
	t.Parallel()
	if err := exec.Command("python3", "-c", "import ensurepip, venv").Run(); err != nil {
		t.Skipf("python3 with its venv module is not installed (Debian: python3-venv): the platform's Python apps "+
			"cannot be emulated here (%v)", err)
	}
	wheels := t.TempDir()
	writeWheel(t, wheels, "emuhello", "1.0", "GREETING = 'hello from a wheel'\n")
	w, _ := startWorkspace(t, Options{StopGrace: 5 * time.Second,
		UserEnv: userEnvWith("PIP_FIND_LINKS="+wheels, "PIP_NO_INDEX=1")})
	token := managerToken(t, w)
	dev := sdkClient(t, w, token)
	dir := "/Workspace/Users/dev@example.com/python-app"
	uploadFiles(t, w, token, dir, map[string]string{"app.py": pythonApp, "requirements.txt": "emuhello==1.0\n"})

	d := deploy(t, dev, "caller-app", dir)
	require.Equal(t, apps.AppDeploymentStateSucceeded, d.Status.State, d.Status.Message)
	var seen map[string]string
	resp, body := call(t, http.MethodGet, w.AppURL("caller-app")+"/api/hello", bearer(token))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.NoError(t, json.Unmarshal(body, &seen))
	assert.Equal(t, "hello from a wheel", seen["greeting"])
	assert.True(t, strings.HasPrefix(seen["python"], filepath.Join(w.apps.build.appDir("caller-app"), "python-")),
		"the app runs in its own virtualenv: %s", seen["python"])
	logs := deployLogs(t, w, "caller-app", token)
	assert.Contains(t, logs, "Running pip install -r requirements.txt")
	assert.Contains(t, logs, "Successfully installed emuhello-1.0", "pip's output is in the app's log")
	assert.Contains(t, logs, "running the platform's default, python app.py")

	uploadFiles(t, w, token, dir, map[string]string{"app.py": strings.Replace(pythonApp, `"V", ""`, `"V", "v2"`, 1)})
	d = deploy(t, dev, "caller-app", dir)
	require.Equal(t, apps.AppDeploymentStateSucceeded, d.Status.State, d.Status.Message)
	assert.Contains(t, deployLogs(t, w, "caller-app", token), "Reusing the virtualenv of an earlier deployment")
	_, body = call(t, http.MethodGet, w.AppURL("caller-app")+"/api/hello", bearer(token))
	require.NoError(t, json.Unmarshal(body, &seen))
	assert.Equal(t, "v2", seen["version"])

	uploadFiles(t, w, token, dir, map[string]string{"requirements.txt": "emuhello==2.0\n"})
	_, err := waitFor[apps.AppDeployment](dev.Apps.Deploy(t.Context(), apps.CreateAppDeploymentRequest{
		AppName: "caller-app", AppDeployment: apps.AppDeployment{SourceCodePath: dir}}))
	require.Error(t, err)
	list, err := dev.Apps.ListDeploymentsAll(t.Context(), apps.ListAppDeploymentsRequest{AppName: "caller-app"})
	require.NoError(t, err)
	failed := list[0]
	assert.Equal(t, apps.AppDeploymentStateFailed, failed.Status.State)
	assert.Contains(t, failed.Status.Message, "pip install -r requirements.txt exited with status 1")
	assert.Contains(t, failed.Status.Message, "emuhello==2.0", "the installer's last lines")
	_, body = call(t, http.MethodGet, w.AppURL("caller-app")+"/api/hello", bearer(token))
	require.NoError(t, json.Unmarshal(body, &seen))
	assert.Equal(t, "v2", seen["version"], "the running deployment keeps serving")
}

// writeWheel writes a pure-Python wheel of one module, name/__init__.py, as pip installs it.
func writeWheel(t *testing.T, dir, name, version, code string) {
	t.Helper()
	info := name + "-" + version + ".dist-info/"
	files := []struct{ path, content string }{
		{name + "/__init__.py", code},
		{info + "METADATA", "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n"},
		{info + "WHEEL", "Wheel-Version: 1.0\nGenerator: workspace-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	for _, f := range files {
		fw, err := zw.Create(f.path)
		require.NoError(t, err)
		_, err = fw.Write([]byte(f.content))
		require.NoError(t, err)
		sum := sha256.Sum256([]byte(f.content))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.path, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.content))
	}
	fmt.Fprintf(&record, "%sRECORD,,\n", info)
	fw, err := zw.Create(info + "RECORD")
	require.NoError(t, err)
	_, err = fw.Write([]byte(record.String()))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+"-"+version+"-py3-none-any.whl"), buf.Bytes(), 0o644))
}

// nodeApp serves what its one dependency says, and whether its build ran. It has no app.yaml: the platform's
// default command runs it, npm run start.
var nodeApp = map[string]string{
	"package.json": `{"name":"node-app","version":"1.0.0","private":true,
  "dependencies":{"emutiny":"1.0.0"},
  "scripts":{"start":"node server.js","build":"node build.js"}}`,
	"build.js": `require("fs").writeFileSync("built.txt", "yes")`,
	"server.js": `const http = require("http"), fs = require("fs"), tiny = require("emutiny");
const [host, port] = process.env.APP_LISTEN_ADDR.split(":");
http.createServer((req, res) => {
  res.setHeader("Content-Type", "application/json");
  res.end(JSON.stringify({greeting: tiny(), built: fs.existsSync("built.txt"), version: process.env.V || ""}));
}).listen(Number(port), host, () => console.log("node app listening"));
`,
}

// TestDeploymentInstallsNodeModules: a Node.js app deployed without node_modules gets its one dependency from npm
// install, against the registry the user's npm configuration names (NPM_CONFIG_REGISTRY: here a registry this test
// serves on loopback), then npm run build, then the default npm run start. A redeploy with the same package.json
// installs nothing: the registry is not asked again.
func TestDeploymentInstallsNodeModules(t *testing.T) {
	t.Parallel()
	requireNode(t)
	registry, asked := npmRegistry(t, "emutiny", "1.0.0", `module.exports = () => "hello from npm";`)
	w, _ := startWorkspace(t, Options{StopGrace: 5 * time.Second,
		UserEnv: userEnvWith("NPM_CONFIG_REGISTRY="+registry+"/", "NPM_CONFIG_AUDIT=false", "NPM_CONFIG_FUND=false")})
	token := managerToken(t, w)
	dev := sdkClient(t, w, token)
	dir := "/Workspace/Users/dev@example.com/node-app"
	uploadFiles(t, w, token, dir, nodeApp)

	d := deploy(t, dev, "caller-app", dir)
	require.Equal(t, apps.AppDeploymentStateSucceeded, d.Status.State, d.Status.Message)
	var seen map[string]any
	resp, body := call(t, http.MethodGet, w.AppURL("caller-app")+"/api/hello", bearer(token))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.NoError(t, json.Unmarshal(body, &seen))
	assert.Equal(t, "hello from npm", seen["greeting"])
	assert.Equal(t, true, seen["built"], "npm run build ran before the start")
	logs := deployLogs(t, w, "caller-app", token)
	for _, step := range []string{"Running npm install", "Running npm run build", "running the platform's default, npm run start"} {
		assert.Contains(t, logs, step)
	}
	first := asked.Load()
	require.Positive(t, first, "npm asked the registry the user configured")

	uploadFiles(t, w, token, dir, map[string]string{"server.js": strings.Replace(nodeApp["server.js"], `process.env.V || ""`, `"v2"`, 1)})
	d = deploy(t, dev, "caller-app", dir)
	require.Equal(t, apps.AppDeploymentStateSucceeded, d.Status.State, d.Status.Message)
	_, body = call(t, http.MethodGet, w.AppURL("caller-app")+"/api/hello", bearer(token))
	require.NoError(t, json.Unmarshal(body, &seen))
	assert.Equal(t, "v2", seen["version"])
	assert.Equal(t, "hello from npm", seen["greeting"])
	assert.Equal(t, first, asked.Load(), "an unchanged package.json installs nothing")
	assert.Contains(t, deployLogs(t, w, "caller-app", token), "Reusing node_modules of an earlier deployment")
}

// npmRegistry serves one package of one version as the npm registry does (its packument and its tarball) and counts
// the requests it gets.
func npmRegistry(t *testing.T, name, version, code string) (string, *atomic.Int64) {
	t.Helper()
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	for path, content := range map[string]string{
		"package/package.json": fmt.Sprintf(`{"name":%q,"version":%q,"main":"index.js"}`, name, version),
		"package/index.js":     code,
	} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(content)),
			ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(content))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	sha1sum := sha1.Sum(tgz.Bytes())
	sha512sum := sha512.Sum512(tgz.Bytes())
	var asked atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		tarball := "/" + name + "/-/" + name + "-" + version + ".tgz"
		switch r.URL.Path {
		case "/" + name:
			rw.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(rw).Encode(map[string]any{"name": name, "dist-tags": map[string]string{"latest": version},
				"versions": map[string]any{version: map[string]any{"name": name, "version": version, "main": "index.js",
					"dist": map[string]string{"tarball": srv.URL + tarball, "shasum": hex.EncodeToString(sha1sum[:]),
						"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sha512sum[:])}}}})
		case tarball:
			_, _ = rw.Write(tgz.Bytes())
		default:
			http.NotFound(rw, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &asked
}

// TestDeploymentOfAPackageWithoutDependencies: a package.json with no dependencies installs nothing (npm makes no
// node_modules), twice, and its start script runs.
func TestDeploymentOfAPackageWithoutDependencies(t *testing.T) {
	t.Parallel()
	requireNode(t)
	w, _ := startWorkspace(t, Options{StopGrace: 5 * time.Second, UserEnv: userEnvWith("NPM_CONFIG_OFFLINE=true")})
	token := managerToken(t, w)
	dev := sdkClient(t, w, token)
	dir := "/Workspace/Users/dev@example.com/plain-node"
	uploadFiles(t, w, token, dir, map[string]string{
		"package.json": `{"name":"plain","version":"1.0.0","private":true,"scripts":{"start":"node server.js"}}`,
		"server.js": `const [host, port] = process.env.APP_LISTEN_ADDR.split(":");
require("http").createServer((req, res) => res.end("plain")).listen(Number(port), host);`})
	for range 2 {
		d := deploy(t, dev, "caller-app", dir)
		require.Equal(t, apps.AppDeploymentStateSucceeded, d.Status.State, d.Status.Message)
		resp, body := call(t, http.MethodGet, w.AppURL("caller-app")+"/api/x", bearer(token))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "plain", string(body))
	}
}

// TestDefaultCommand: with no command in app.yaml, npm run start for a package.json, else python and the first .py
// file: the root folder's first, else the first in a folder below.
func TestDefaultCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		files []string
		want  []string
	}{
		{[]string{"package.json", "app.py"}, []string{"npm", "run", "start"}},
		{[]string{"a/first.py", "zeta.py", "main.py"}, []string{"python", "main.py"}},
		{[]string{"src/app.py", "README.md"}, []string{"python", "src/app.py"}},
		{[]string{"node_modules/x/setup.py", "web/z.py"}, []string{"python", "web/z.py"}},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		for _, f := range tt.files {
			require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, f), nil, 0o644))
		}
		got, err := defaultCommand(dir)
		require.NoError(t, err, tt.files)
		assert.Equal(t, tt.want, got, tt.files)
	}
	_, err := defaultCommand(t.TempDir())
	assert.ErrorContains(t, err, "nothing the platform would run")
}

// requireNode skips a test that deploys a Node.js app where node or npm is missing (CI installs both).
func requireNode(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the platform's Node.js apps cannot be emulated here", tool)
		}
	}
}
