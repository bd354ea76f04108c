package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/databricks/databricks-sdk-go/client"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/service/apps"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/browser"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/gotool"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// customScopes are the API app's user authorization scopes: the documentation page's example scopes, exactly.
const customScopes = "sql,file.files,dashboards.genie"

// run builds, starts the emulator with both apps, plays every row and prints the table. It fails if a row differs
// from what is expected.
func run(ctx context.Context, stdout, stderr io.Writer) error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "apps-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	progress := func(format string, args ...any) { fmt.Fprintf(stderr, "» "+format+"\n", args...) }
	progress("building the app, the caller and the emulator")
	bin, err := gotool.CacheDir(ctx)
	if err != nil {
		return err
	}
	if err := gotool.Build(ctx, bin, "./app", "./caller", "./emulator"); err != nil {
		return err
	}

	progress("starting the emulated workspace with api-app and caller-app under it")
	emu, err := startEmulator(ctx, dir, bin)
	if err != nil {
		return err
	}
	defer emu.stop()
	progress("in a browser, until the demo ends: %s/ (sign in as dev@example.com)", emu.state.Apps["api-app"].URL)

	var rows []row
	for _, sc := range scenarios(emu.state) {
		progress("%s: %s", sc.path, sc.how)
		r := sc.play(ctx, emu)
		r.path, r.how = sc.path, sc.how
		rows = append(rows, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	var dataRows []dataRow
	for _, sc := range dataScenarios(emu.state) {
		progress("data %s: %s", sc.path, sc.how)
		r := sc.play(ctx, emu)
		r.path, r.how = sc.path, sc.how
		dataRows = append(dataRows, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	fmt.Fprintln(stdout)
	printTable(stdout, rows)
	fmt.Fprintln(stdout)
	printDataTable(stdout, dataRows)
	paths := len(rows) + len(dataRows)
	fmt.Fprintf(stdout, "\n%d paths in %.1f s.\n", paths, time.Since(start).Seconds())

	var failed []string
	for _, r := range rows {
		if r.problem != "" {
			failed = append(failed, r.path+": "+r.problem)
		}
	}
	for _, r := range dataRows {
		if r.problem != "" {
			failed = append(failed, "data "+r.path+": "+r.problem)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d paths did not behave as expected:\n  %s\nThe emulator's last log lines:\n%s",
			len(failed), paths, strings.Join(failed, "\n  "), emu.logTail(30))
	}
	fmt.Fprintln(stdout, "Every path behaved as expected.")
	return nil
}

// emulator is the emulator process, with both apps running under it.
type emulator struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    *testkit.Buffer // the emulator's and the apps' output, written while the demo reads it
	state  workspace.State
	bin    string
	home   string
}

// startEmulator runs `emulator run` for both apps, each from an app.yaml as the platform would, and waits for the
// state file it writes once everything listens.
func startEmulator(ctx context.Context, dir, bin string) (*emulator, error) {
	apps := map[string]string{
		// As app.yaml does: WAREHOUSE_ID and REPORTS_VOLUME from api-app's resources, which the emulator resolves.
		"api.yaml": fmt.Sprintf("command: [%q]\nenv:\n  - name: WAREHOUSE_ID\n    valueFrom: sql-warehouse\n"+
			"  - name: REPORTS_VOLUME\n    valueFrom: reports-volume\n", filepath.Join(bin, "app")),
		// As caller/app.yaml does: TARGET_APP is the app resource target-app, which the emulator resolves to api-app.
		"caller.yaml": fmt.Sprintf("command: [%q, serve]\nenv:\n  - name: TARGET_APP\n    valueFrom: target-app\n",
			filepath.Join(bin, "callapp")),
	}
	for name, content := range apps {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	stateFile := filepath.Join(dir, "state.json")
	e := &emulator{exited: make(chan struct{}), log: &testkit.Buffer{}, bin: bin, home: filepath.Join(dir, "home")}
	if err := os.Mkdir(e.home, 0o700); err != nil {
		return nil, err
	}
	e.cmd = exec.Command(filepath.Join(bin, "emulator"), "run", "--fresh", "--state", stateFile,
		"--profile-dir", filepath.Join(dir, "profile"),
		"--app", "api-app", "--app-yaml", filepath.Join(dir, "api.yaml"),
		"--app", "caller-app", "--app-yaml", filepath.Join(dir, "caller.yaml"))
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	e.cmd.Env = gotool.CleanEnv(e.home)
	// Its own process group: Ctrl-C reaches the demo, which then stops the emulator (and so the apps) itself.
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the emulator: %w", err)
	}
	go func() {
		_ = e.cmd.Wait()
		close(e.exited)
	}()

	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for {
		if data, err := os.ReadFile(stateFile); err == nil && json.Unmarshal(data, &e.state) == nil {
			return e, nil
		}
		select {
		case <-e.exited:
			return nil, fmt.Errorf("the emulator exited before it was ready:\n%s", e.log)
		case <-ctx.Done():
			e.stop()
			return nil, ctx.Err()
		case <-deadline.C:
			e.stop()
			return nil, fmt.Errorf("the emulator was not ready after 2 minutes:\n%s", e.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logTail returns the last n lines the emulator and the apps under it logged.
func (e *emulator) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(e.log.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// stop sends the emulator SIGTERM, which stops both apps as the platform does, and kills it if it lingers.
func (e *emulator) stop() {
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
		<-e.exited
	}
}

// caller runs the caller with --json and the extra environment, and decodes what it printed.
func (e *emulator) caller(ctx context.Context, extraEnv []string, args ...string) callerResult {
	return callerProgram{path: filepath.Join(e.bin, "callapp"), home: e.home}.run(ctx, extraEnv, args...)
}

// callerProgram is the caller binary, run as a user would run it, with HOME set and without the Databricks settings
// of whoever runs the demo.
type callerProgram struct {
	path string
	home string
}

// run runs the caller with --json and the extra environment, and decodes what it printed.
func (c callerProgram) run(ctx context.Context, extraEnv []string, args ...string) (result callerResult) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.path, append([]string{"--json"}, args...)...)
	cmd.Env = append(gotool.CleanEnv(c.home), extraEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		result.exitCode = exitErr.ExitCode()
	case err != nil:
		result.err = err
		return result
	}
	if jsonErr := json.Unmarshal(out, &result.json); jsonErr != nil {
		result.err = fmt.Errorf("caller printed no JSON (%v): %s %s", jsonErr, out, stderr.Bytes())
	}
	return result
}

// grantCanUse gives a service principal CAN USE on an app through the Permissions API, as the signed-in user
// running `databricks apps update-permissions` would: with the SDK's Apps client and the emulator's CLI profile.
func (e *emulator) grantCanUse(ctx context.Context, app, clientID string) error {
	c, err := client.New(&config.Config{Profile: e.state.Profile, ConfigFile: e.state.ConfigFile,
		AuthType: "databricks-cli", DatabricksCliPath: e.state.CLIPath, Loaders: []config.Loader{config.ConfigFile},
		RetryTimeoutSeconds: 10})
	if err != nil {
		return err
	}
	_, err = apps.NewApps(c).UpdatePermissions(ctx, apps.AppPermissionsRequest{AppName: app,
		AccessControlList: []apps.AppAccessControlRequest{{ServicePrincipalName: clientID,
			PermissionLevel: apps.AppPermissionLevelCanUse}}})
	return err
}

// ciToken is a token of the emulator's CI identity provider for the main branch of acme/api: what a CI job gets
// from its provider (GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL, say).
func (e *emulator) ciToken(ctx context.Context) (string, error) {
	idp, ok := e.state.IdentityProviders["ci"]
	if !ok {
		return "", errors.New("the emulator's model has no identity provider ci")
	}
	return workspace.MintIdentityToken(ctx, idp.TokenEndpoint, "repo:acme/api:ref:refs/heads/main",
		"https://github.com/acme", 10*time.Minute)
}

// profileEnv points the caller at the emulator's .databrickscfg and its databricks CLI stand-in.
func (e *emulator) profileEnv() []string {
	return []string{"DATABRICKS_CONFIG_FILE=" + e.state.ConfigFile, "DATABRICKS_CLI_PATH=" + e.state.CLIPath}
}

// login runs `callapp login` with custom scopes, and plays the user's browser: the emulator's authorize endpoint
// approves as the signed-in user and redirects to the caller's loopback callback.
func (e *emulator) login(ctx context.Context, scopes string) error {
	port, err := workspace.FreePort()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "callapp"), "login", "--profile", e.state.Profile,
		"--scopes", scopes, "--no-browser", "--port", strconv.Itoa(port))
	cmd.Env = append(gotool.CleanEnv(e.home), e.profileEnv()...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	var seen testkit.Buffer // the browser's failure callback writes from another goroutine
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		_, _ = seen.Write([]byte(line + "\n"))
		if strings.HasPrefix(line, e.state.WorkspaceHost+workspace.PathAuthorize) {
			browse := browser.Headless(func(err error) { _, _ = seen.Write([]byte(err.Error() + "\n")); cancel() })
			if err := browse(line); err != nil {
				return err
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("callapp login: %w: %s", err, seen.String())
	}
	return nil
}

// callerResult is what one caller run printed: on success the app's answer, on failure the caller's diagnosis.
type callerResult struct {
	exitCode int
	err      error
	json     struct {
		identity.WhoAmI
		OK       *bool `json:"ok"` // present, false, on failure
		Status   int   `json:"status"`
		Response *struct {
			Code string `json:"error_code"`
			Fix  string `json:"fix"`
		} `json:"response_error"`
		Checklist []string `json:"checklist"`
		// call's output: the body the app answered.
		Body json.RawMessage `json:"body"`
		// The URL the caller called.
		URL string `json:"url"`
	}
}
