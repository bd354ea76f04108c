package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

const module = "github.com/databricks-sample/go-apps-api"

var (
	// repoRoot is the repository these tests build, package and read: go test runs them in internal/e2e.
	repoRoot = func() string {
		dir, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			panic(err)
		}
		return dir
	}()
	// originalHome is where the developer's build cache lives, before clearDatabricksEnv moves HOME.
	originalHome = os.Getenv("HOME")

	scratchMu  sync.Mutex
	scratch    string                // what this test binary builds and packages; TestMain removes it
	binaries   = map[string]string{} // package and flags → built binary
	packageErr error
	packageLog []byte
	packaged   bool
)

func TestMain(m *testing.M) {
	code := m.Run()
	scratchMu.Lock()
	if scratch != "" {
		_ = os.RemoveAll(scratch)
	}
	scratchMu.Unlock()
	os.Exit(code)
}

// scratchDir is this test binary's folder for builds, made once. Callers hold scratchMu.
func scratchDir(t *testing.T) string {
	t.Helper()
	if scratch == "" {
		dir, err := os.MkdirTemp("", "go-apps-api-e2e-")
		require.NoError(t, err)
		scratch = dir
	}
	return scratch
}

// goCommand runs with the developer's HOME, so a test that moved HOME still builds with the warm build cache.
func goCommand(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "HOME="+originalHome)
	return cmd
}

// buildProgram builds a package of this module once per test binary and returns the binary.
func buildProgram(t *testing.T, pkg string, flags ...string) string {
	t.Helper()
	scratchMu.Lock()
	defer scratchMu.Unlock()
	key := strings.Join(append([]string{pkg}, flags...), " ")
	if bin, ok := binaries[key]; ok {
		return bin
	}
	bin := filepath.Join(scratchDir(t), fmt.Sprintf("%s-%d", strings.ReplaceAll(pkg, "/", "-"), len(binaries)))
	out, err := goCommand("go", append(append([]string{"build", "-o", bin}, flags...), module+"/"+pkg)...).CombinedOutput()
	require.NoError(t, err, "go build ./%s:\n%s", pkg, out)
	binaries[key] = bin
	return bin
}

// appBinary is app/ built for this machine. Under the race detector it is built with it too, so the load and
// shutdown tests check the app's own code for races, as they did when the app ran inside the test binary.
func appBinary(t *testing.T) string {
	t.Helper()
	if raceEnabled {
		return buildProgram(t, "app", "-race")
	}
	return buildProgram(t, "app")
}

// packagedApps runs `make package` once per test binary, for this machine's OS and architecture (the default,
// linux/amd64, is what CI runs on), and returns the folder holding one deployable folder per app.
func packagedApps(t *testing.T) string {
	t.Helper()
	scratchMu.Lock()
	defer scratchMu.Unlock()
	root := filepath.Join(scratchDir(t), "package")
	if !packaged {
		packaged = true
		packageLog, packageErr = goCommand("make", "package", "BUILD="+root,
			"PACKAGE_GOOS="+runtime.GOOS, "PACKAGE_GOARCH="+runtime.GOARCH).CombinedOutput()
	}
	require.NoError(t, packageErr, "make package:\n%s", packageLog)
	return root
}

// packagedApp is the API app's deployable folder, build/app/ as make package writes it.
func packagedApp(t *testing.T) string {
	t.Helper()
	return filepath.Join(packagedApps(t), "app")
}

// syncBuffer is an io.Writer a process writes to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a program the test started, with its output captured.
type process struct {
	cmd    *exec.Cmd
	Stdout *syncBuffer
	Stderr *syncBuffer
	exited chan struct{} // closed once the process has exited
	err    error         // how it exited, once exited is closed
}

// startProcess runs argv in dir with env as its whole environment, and stops it when the test ends.
func startProcess(t *testing.T, argv []string, dir string, env []string) *process {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append([]string{}, env...) // never nil: a nil Env would give the child this process's environment
	if raceEnabled {
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0") // a race-built child would otherwise linger 1 s at exit
	}
	p := &process{cmd: cmd, Stdout: &syncBuffer{}, Stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	require.NoError(t, cmd.Start())
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.Stop(t)
		assert.NotContains(t, p.Stderr.String(), "DATA RACE", "the race detector found a race in the app")
	})
	return p
}

// PID is the process's id, for reading its /proc entries.
func (p *process) PID() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM, as the platform does, and returns the exit status; it kills a process that has not exited
// 15 s later (the platform's grace).
func (p *process) Stop(t *testing.T) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Error("the process did not stop within 15 s of SIGTERM")
		return p.err
	}
}

// runningApp is app/ running as a process, listening on a loopback port.
type runningApp struct {
	*process
	URL string
}

// startApp starts the app's binary with env as its whole environment (none of the test's), on a free loopback port,
// and returns once /api/health answers.
func startApp(t *testing.T, env map[string]string) *runningApp {
	t.Helper()
	return startAppBinary(t, appBinary(t), env)
}

// startAppBinary is startApp for a given build of the app.
func startAppBinary(t *testing.T, bin string, env map[string]string) *runningApp {
	t.Helper()
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	p := startProcess(t, []string{bin, "--addr", "127.0.0.1:0"}, "", kv)
	a := &runningApp{process: p}
	deadline := time.After(30 * time.Second)
	for a.URL == "" {
		select {
		case <-p.exited:
			t.Fatalf("the app exited early: %v\n%s%s", p.err, p.Stdout, p.Stderr)
		case <-deadline:
			t.Fatalf("the app did not log its address within 30 s; stdout:\n%s", p.Stdout)
		case <-time.After(10 * time.Millisecond):
		}
		a.URL = listeningURL(p.Stdout.String())
	}
	waitHealthy(t, a.URL, p)
	return a
}

// listeningURL finds the app's "listening" log line and returns its base URL.
func listeningURL(logs string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
			return "http://" + line.Addr
		}
	}
	return ""
}

// waitHealthy waits until base/api/health answers 200, failing early if the process exits.
func waitHealthy(t *testing.T, base string, p *process) {
	t.Helper()
	require.Eventually(t, func() bool {
		select {
		case <-p.exited:
			return true
		default:
		}
		resp, err := http.Get(base + "/api/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "no 200 from %s/api/health", base)
	select {
	case <-p.exited:
		t.Fatalf("the app exited: %v\n%s%s", p.err, p.Stdout, p.Stderr)
	default:
	}
}

// freePort is a port free on 127.0.0.1 now, for a program that takes a port rather than an address.
func freePort(t *testing.T) string {
	t.Helper()
	port, err := workspace.FreePort()
	require.NoError(t, err)
	return strconv.Itoa(port)
}

// startEmulator starts the emulated workspace and its Apps proxies in-process, quietly.
func startEmulator(t *testing.T, opts workspace.Options) *workspace.Workspace {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	ws, err := workspace.Start(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}

// appEnv is the platform's environment for api-app in ws: its service principal's credentials.
func appEnv(ws *workspace.Workspace) map[string]string {
	sp := ws.State().ServicePrincipals["api-app"]
	return map[string]string{
		"DATABRICKS_APP_NAME": "api-app", "DATABRICKS_HOST": ws.URL(), "DATABRICKS_WORKSPACE_ID": ws.WorkspaceID(),
		"DATABRICKS_CLIENT_ID": sp.ClientID, "DATABRICKS_CLIENT_SECRET": sp.ClientSecret,
	}
}

// underEmulator starts the emulated workspace and the app behind api-app's proxy, with the platform's environment.
func underEmulator(t *testing.T, opts workspace.Options) (*workspace.Workspace, *runningApp) {
	t.Helper()
	ws := startEmulator(t, opts)
	app := startApp(t, appEnv(ws))
	require.NoError(t, ws.SetUpstream("api-app", app.URL))
	return ws, app
}

// m2mConfig is the external service principal's SDK config: it mints and refreshes its M2M tokens itself.
func m2mConfig(ws *workspace.Workspace) *config.Config {
	sp := ws.State().ServicePrincipals["external-service"]
	return &config.Config{Host: ws.URL(), ClientID: sp.ClientID, ClientSecret: sp.ClientSecret, AuthType: "oauth-m2m",
		Loaders: []config.Loader{sdkconfig.ExplicitOnly{}}, RetryTimeoutSeconds: 5}
}

// clearDatabricksEnv keeps a developer's own Databricks settings out of the SDK configs these tests build.
func clearDatabricksEnv(t *testing.T) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, prefix := range []string{"DATABRICKS_", "ARM_", "GOOGLE_", "ACTIONS_ID_TOKEN_"} {
			if strings.HasPrefix(name, prefix) {
				t.Setenv(name, "")
			}
		}
	}
}

// asServicePrincipal is what the proxy forwards for a service principal, for tests that call the app directly.
func asServicePrincipal() http.Header {
	h := http.Header{}
	h.Set(identity.HeaderUser, "2001@1234567890123456")
	h.Set(identity.HeaderPreferredUsername, "3f8a1c0e-7d2b-4e6f-9a1b-2c3d4e5f6a7b")
	h.Set(identity.HeaderRequestID, "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")
	return h
}

// jwtPattern matches any JWT: its header and claims are base64url JSON objects, so both begin "eyJ".
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*`)

// assertNoSecrets checks that output holds none of the secrets and no token: the emulator's tokens are JWTs the
// test never sees (the app's M2M token, the user's forwarded token), so any JWT in the output is a leak.
func assertNoSecrets(t *testing.T, output string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		require.NotEmpty(t, secret)
		assert.NotContains(t, output, secret)
	}
	assert.Empty(t, jwtPattern.FindAllString(output, 3), "tokens in the output")
}

// procStatusKB reads one "Name:   123 kB" field of /proc/PID/status (VmRSS: resident now, VmHWM: the peak).
func procStatusKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err, "this test measures a child's memory through /proc (Linux)")
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
