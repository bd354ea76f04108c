package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/internal/gotool"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

type options struct {
	requests    int
	concurrency int
	startups    int
}

// figure is one line of the table.
type figure struct {
	name, measured, goal string
	met                  bool
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	progress := func(format string, args ...any) { fmt.Fprintf(stderr, "» "+format+"\n", args...) }
	dir, err := os.MkdirTemp("", "apps-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	progress("building the app and packaging it (make package-app)")
	root, err := gotool.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	if err := gotool.Build(ctx, dir, "./app"); err != nil {
		return err
	}
	appBin := filepath.Join(dir, "app")
	pkg := filepath.Join(dir, "build")
	if out, err := command(ctx, root, "make", "-s", "package-app", "BUILD="+pkg,
		"PACKAGE_GOOS="+runtime.GOOS, "PACKAGE_GOARCH="+runtime.GOARCH).CombinedOutput(); err != nil {
		return fmt.Errorf("make package-app: %w\n%s", err, out)
	}

	progress("starting the emulated workspace and the app under it")
	ws, err := workspace.Start(ctx, workspace.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer ws.Close()
	state := ws.State()
	appSP := state.ServicePrincipals["api-app"]
	appProc, err := startProcess(ctx, dir, "app", []string{appBin}, []string{
		"DATABRICKS_APP_NAME=api-app", "DATABRICKS_HOST=" + ws.URL(), "DATABRICKS_WORKSPACE_ID=" + state.WorkspaceID,
		"DATABRICKS_CLIENT_ID=" + appSP.ClientID, "DATABRICKS_CLIENT_SECRET=" + appSP.ClientSecret,
	})
	if err != nil {
		return err
	}
	defer appProc.stop()
	if err := ws.SetUpstream("api-app", appProc.url); err != nil {
		return err
	}

	// The headers the proxy sends for the external service principal: the identity every load run presents.
	ext := state.ServicePrincipals["external-service"]
	forwarded := http.Header{}
	forwarded.Set(identity.HeaderUser, identity.FormatUser(ext.ID, state.WorkspaceID))
	forwarded.Set(identity.HeaderPreferredUsername, ext.ClientID)
	forwarded.Set(identity.HeaderHost, strings.TrimPrefix(ws.AppURL("api-app"), "http://"))
	forwarded.Set(identity.HeaderRealIP, "127.0.0.1")
	forwarded.Set(identity.HeaderRequestID, "6a1f3c2e-1b2d-4e5f-8a9b-0c1d2e3f4a5b")

	whoami, err := get(ctx, appProc.url+"/api/whoami", forwarded)
	if err != nil {
		return err
	}
	bodyFile := filepath.Join(dir, "whoami.json")
	if err := os.WriteFile(bodyFile, whoami, 0o600); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bare, err := startProcess(ctx, dir, "bare", []string{self, "bare-server", "--addr", "$ADDR", "--body-file", bodyFile}, nil)
	if err != nil {
		return err
	}
	defer bare.stop()

	var figures []figure
	l := load{requests: o.requests, concurrency: o.concurrency}
	warm := load{requests: o.requests / 10, concurrency: o.concurrency}

	// 1 and 5: the app's whole stack against a bare handler, and the app's memory around that load.
	rssIdle := appProc.rss()
	progress("load: %d requests at concurrency %d, straight to the app and to a bare net/http handler", o.requests, o.concurrency)
	if _, err := warm.run(ctx, appProc.url+"/api/whoami", forwarded); err != nil {
		return err
	}
	direct, err := l.run(ctx, appProc.url+"/api/whoami", forwarded)
	if err != nil {
		return err
	}
	rssLoaded := appProc.rss()
	if _, err := warm.run(ctx, bare.url+"/", forwarded); err != nil {
		return err
	}
	bareRes, err := l.run(ctx, bare.url+"/", forwarded)
	if err != nil {
		return err
	}
	ratio := direct.rps(o.requests) / bareRes.rps(o.requests)
	figures = append(figures, figure{"1. middleware cost: app / bare req/s",
		fmt.Sprintf("%.2f (%.0f / %.0f req/s)", ratio, direct.rps(o.requests), bareRes.rps(o.requests)), "≥ 0.85", ratio >= 0.85})

	// 2: the same load through the emulator's Apps proxy, with a real M2M token.
	progress("load: the same through the emulator's Apps proxy (M2M token)")
	token, err := clientCredentials(ctx, ws.URL(), ext.ClientID, ext.ClientSecret)
	if err != nil {
		return err
	}
	bearer := http.Header{"Authorization": {"Bearer " + token}}
	if _, err := warm.run(ctx, ws.AppURL("api-app")+"/api/whoami", bearer); err != nil {
		return err
	}
	proxied, err := l.run(ctx, ws.AppURL("api-app")+"/api/whoami", bearer)
	if err != nil {
		return err
	}
	proxyRatio := proxied.rps(o.requests) / direct.rps(o.requests)
	figures = append(figures, figure{"2. proxy cost: proxied / direct req/s",
		fmt.Sprintf("%.2f; p50 %s → %s, p99 %s → %s", proxyRatio, ms(direct.p50), ms(proxied.p50), ms(direct.p99), ms(proxied.p99)),
		"(reported)", true})
	errorsSeen := direct.errors + bareRes.errors + proxied.errors
	figures = append(figures, figure{"   failed requests in loads 1 and 2", strconv.FormatInt(errorsSeen, 10), "0", errorsSeen == 0})

	// 6: workspace requests per /api/me, on behalf of a user whose token the proxy forwards.
	progress("counting workspace requests per /api/me")
	userToken, err := userLogin(ctx, ws.URL())
	if err != nil {
		return err
	}
	userBearer := http.Header{"Authorization": {"Bearer " + userToken}}
	if _, err := get(ctx, ws.AppURL("api-app")+"/api/me", userBearer); err != nil { // warm: metadata, M2M token
		return err
	}
	const meCalls = 100
	before := total(ws.RequestCounts())
	for range meCalls {
		if _, err := get(ctx, ws.AppURL("api-app")+"/api/me", userBearer); err != nil {
			return err
		}
	}
	perMe := float64(total(ws.RequestCounts())-before) / meCalls
	figures = append(figures, figure{"6. workspace requests per /api/me",
		fmt.Sprintf("%.2f (over %d calls, after the first)", perMe, meCalls), "2 (one per identity)", perMe == 2})

	// 4: start-up, packaged launcher against the binary started directly.
	progress("start-up: %d runs each of the packaged app.yaml command and the binary", o.startups)
	packagedCmd, err := appYAMLCommand(filepath.Join(pkg, "app", "app.yaml"))
	if err != nil {
		return err
	}
	directStart, err := medianStartup(ctx, dir, o.startups, "", []string{appBin})
	if err != nil {
		return err
	}
	packagedStart, err := medianStartup(ctx, dir, o.startups, filepath.Join(pkg, "app"), packagedCmd)
	if err != nil {
		return err
	}
	startRatio := float64(packagedStart) / float64(directStart)
	figures = append(figures, figure{"4. start-up to first 200: packaged / direct",
		fmt.Sprintf("%.2f (%s / %s, medians)", startRatio, ms(packagedStart), ms(directStart)), "≤ 2", startRatio <= 2})

	// 5, from the load run above.
	figures = append(figures, figure{"5. app RSS idle → after load 1",
		fmt.Sprintf("%s → %s", mib(rssIdle), mib(rssLoaded)), "(reported)", true})

	printFigures(stdout, o, figures)
	for _, f := range figures {
		if !f.met {
			return errors.New("a figure missed its goal")
		}
	}
	return nil
}

func printFigures(w io.Writer, o options, figures []figure) {
	fmt.Fprintf(w, "\nmake bench: one run on %d CPUs, %d requests per load at concurrency %d over loopback keep-alive.\n\n",
		runtime.NumCPU(), o.requests, o.concurrency)
	width := 0
	for _, f := range figures {
		width = max(width, len([]rune(f.name)))
	}
	for _, f := range figures {
		mark := "ok"
		if !f.met {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "%-*s  %s  [goal %s: %s]\n", width, f.name, f.measured, f.goal, mark)
	}
}

func total(counts map[string]int64) int64 {
	var n int64
	for _, c := range counts {
		n += c
	}
	return n
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mib(bytes int64) string {
	if bytes <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20))
}

func command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	return cmd
}

func get(ctx context.Context, url string, header http.Header) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header = header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return body, nil
}

// clientCredentials gets an M2M token for a service principal.
func clientCredentials(ctx context.Context, host, clientID, secret string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"all-apis"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, host+workspace.PathToken, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(clientID, secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return tokenFrom(req)
}

// userLogin runs the authorization code flow with PKCE for the signed-in user, as `databricks auth login` does,
// without a browser: the emulator approves at once and its redirect carries the code.
func userLogin(ctx context.Context, host string) (string, error) {
	verifier := base64.RawURLEncoding.EncodeToString([]byte(rand.Text() + rand.Text()))
	sum := sha256.Sum256([]byte(verifier))
	redirect := "http://localhost:8020"
	q := url.Values{"client_id": {workspace.CLIClientID}, "response_type": {"code"}, "redirect_uri": {redirect},
		"state": {"bench"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "scope": {"offline_access all-apis"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+workspace.PathAuthorize+"?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		return "", fmt.Errorf("authorize answered %d without a code", resp.StatusCode)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {workspace.CLIClientID},
		"code": {loc.Query().Get("code")}, "code_verifier": {verifier}, "redirect_uri": {redirect}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, host+workspace.PathToken, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return tokenFrom(req)
}

func tokenFrom(req *http.Request) (string, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token endpoint answered %d %s", resp.StatusCode, tok.Error)
	}
	return tok.AccessToken, nil
}

// appYAMLCommand reads the command of an app.yaml.
func appYAMLCommand(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var y struct {
		Command []string `yaml:"command"`
	}
	if err := yaml.Unmarshal(data, &y); err != nil || len(y.Command) == 0 {
		return nil, fmt.Errorf("%s: no command: %v", path, err)
	}
	return y.Command, nil
}

// medianStartup starts argv n times in dir and returns the median time from exec to the first 200 from /api/health.
func medianStartup(ctx context.Context, dir string, n int, workDir string, argv []string) (time.Duration, error) {
	var times []time.Duration
	for range n {
		p, err := startProcess(ctx, dir, "startup", argv, nil, inDir(workDir))
		if err != nil {
			return 0, err
		}
		times = append(times, p.ready)
		p.stop()
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

// process is an app-like process listening on 127.0.0.1.
type process struct {
	cmd    *exec.Cmd
	url    string
	ready  time.Duration // from exec to the first 200 from /api/health (or any answer, for the bare server)
	exited chan struct{}
}

type processOption func(*exec.Cmd)

func inDir(dir string) processOption { return func(c *exec.Cmd) { c.Dir = dir } }

// startProcess runs argv with a free loopback port (in $ADDR of argv, and in APP_LISTEN_ADDR and
// DATABRICKS_APP_PORT) and waits until it answers.
func startProcess(ctx context.Context, dir, name string, argv, env []string, opts ...processOption) (*process, error) {
	port, err := workspace.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := make([]string, len(argv))
	for i, a := range argv {
		args[i] = strings.ReplaceAll(a, "$ADDR", addr)
	}
	logFile, err := os.CreateTemp(dir, name+"-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), append(env, "APP_LISTEN_ADDR="+addr, "DATABRICKS_APP_PORT="+strconv.Itoa(port),
		"TMPDIR="+dir)...)
	for _, o := range opts {
		o(cmd)
	}
	p := &process{cmd: cmd, url: "http://" + addr, exited: make(chan struct{})}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(p.url + "/api/health")
		if err == nil {
			resp.Body.Close()
			p.ready = time.Since(start)
			return p, nil
		}
		select {
		case <-p.exited:
			log, _ := os.ReadFile(logFile.Name())
			return nil, fmt.Errorf("%s exited before it answered:\n%s", name, log)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Since(start) > time.Minute {
			p.stop()
			return nil, fmt.Errorf("%s did not answer within a minute", name)
		}
	}
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// rss is the process's resident set size in bytes, from /proc (Linux); 0 where that is not available.
func (p *process) rss() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
