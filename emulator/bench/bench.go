package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/internal/gotool"
	"github.com/databricks-sample/go-apps-api/emulator/runner"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

type options struct {
	requests    int
	concurrency int
	startups    int
	rounds      int    // rounds of figure 1's load, app and bare in turn
	appBinary   string // a prebuilt app to measure (figures 1, 2, 5, 6), for comparing two versions
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

	progress("building the app, the caller and the emulator, and packaging the app (make package-app)")
	root, err := gotool.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	if err := gotool.Build(ctx, dir, "./app", "./caller", "./emulator"); err != nil {
		return err
	}
	appBin := filepath.Join(dir, "app")
	if o.appBinary != "" {
		appBin = o.appBinary
	}
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
	bareEncoding, err := startProcess(ctx, dir, "bare", []string{self, "bare-server", "--encode", "--addr", "$ADDR",
		"--body-file", bodyFile}, nil)
	if err != nil {
		return err
	}
	defer bareEncoding.stop()

	var figures []figure
	l := load{requests: o.requests, concurrency: o.concurrency}
	warm := load{requests: o.requests / 10, concurrency: o.concurrency}

	// 1 and 5: the app's whole stack against bare handlers, and the app's memory around that load. The three are
	// loaded in turn for several rounds and the median ratios are reported: on a shared 2-core machine one run can land
	// on a busy moment for one side only.
	rssIdle := appProc.rss()
	progress("load: %d rounds of %d requests at concurrency %d, to the app and two bare net/http handlers in turn",
		o.rounds, o.requests, o.concurrency)
	targets := []string{appProc.url + "/api/whoami", bareEncoding.url + "/", bare.url + "/"}
	for _, target := range targets {
		if _, err := warm.run(ctx, target, forwarded); err != nil {
			return err
		}
	}
	var middleware, whole []float64
	var direct loadResult
	var loadErrors int64
	for range o.rounds {
		var rps [3]float64
		for i, target := range targets {
			res, err := l.run(ctx, target, forwarded)
			if err != nil {
				return err
			}
			loadErrors += res.errors
			rps[i] = res.rps(o.requests)
			if i == 0 {
				direct = res
			}
		}
		middleware = append(middleware, rps[0]/rps[1])
		whole = append(whole, rps[0]/rps[2])
	}
	rssLoaded := appProc.rss()
	median := func(xs []float64) (mid, lo, hi float64) {
		slices.Sort(xs)
		return xs[len(xs)/2], xs[0], xs[len(xs)-1]
	}
	mid, lo, hi := median(middleware)
	figures = append(figures, figure{"1. middleware cost: app / bare req/s",
		fmt.Sprintf("%.3f median of %d rounds (%.2f–%.2f)", mid, len(middleware), lo, hi), "≥ 0.85", mid >= 0.85})
	mid, lo, hi = median(whole)
	figures = append(figures, figure{"   the same, bare replaying bytes",
		fmt.Sprintf("%.2f median (%.2f–%.2f): encoding included", mid, lo, hi), "(reported)", true})

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
	errorsSeen := loadErrors + proxied.errors
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

	// 3: token requests per 1,000 calls in each of the caller's modes.
	const reuseCalls = 1000
	progress("token reuse: %d caller requests in local, external and app mode", reuseCalls)
	reuse, err := tokenReuse(ctx, ws, dir, reuseCalls)
	if err != nil {
		return err
	}
	figures = append(figures, figure{fmt.Sprintf("3. token requests per %d caller calls", reuseCalls),
		fmt.Sprintf("external %d, app %d, local %d (SDK: 1 discarded check + 1)", reuse["external"], reuse["app"], reuse["local"]),
		"1 (local 2)", reuse["external"] == 1 && reuse["app"] == 1 && reuse["local"] <= 2})

	// 4: start-up, packaged launcher against the binary started directly.
	progress("start-up: %d runs each of the packaged app.yaml command and the binary", o.startups)
	packaged, err := runner.ReadAppYAML(filepath.Join(pkg, "app", "app.yaml"))
	if err != nil {
		return err
	}
	if len(packaged.Command) == 0 {
		return fmt.Errorf("%s: no command", filepath.Join(pkg, "app", "app.yaml"))
	}
	directStart, err := medianStartup(ctx, dir, o.startups, "", []string{appBin})
	if err != nil {
		return err
	}
	packagedStart, err := medianStartup(ctx, dir, o.startups, filepath.Join(pkg, "app"), packaged.Command)
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
