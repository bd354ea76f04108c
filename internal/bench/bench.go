package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/sqlengine/duckdb"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/gotool"
)

type options struct {
	duration       time.Duration // of each load
	concurrency    int
	rounds         int    // interleaved rounds of every load
	startups       int    // start-up runs of each kind
	appBinary      string // a prebuilt app to measure, for comparing two versions
	emulatorBinary string // a prebuilt emulator whose proxy to measure
	python         string // the Python of the FastAPI peer
}

// The rows of the load table, by name.
const (
	rowApp          = "app, GET /api/whoami"
	rowAppDefaults  = "the same app without app.yaml's env"
	rowBare         = "bare net/http handler, same bytes"
	rowBareEncoding = "bare handler encoding the same value"
	rowFastAPI      = "FastAPI on uvicorn, 1 worker"
	rowEmulatorM2M  = "emulator's proxy → app, M2M token"
	rowPlainM2M     = "plain ReverseProxy → app, M2M"
	rowEmulatorUser = "emulator's proxy → app, user token"
	rowPlainUser    = "plain ReverseProxy → app, user"
)

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	progress := func(format string, args ...any) { fmt.Fprintf(stderr, "» "+format+"\n", args...) }
	if err := checkWrk(); err != nil {
		return err
	}
	if o.duration < time.Second || o.duration%time.Second != 0 {
		return fmt.Errorf("--duration %s: a load runs for whole seconds (wrk's -d)", o.duration)
	}
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
	bin, err := gotool.CacheDir(ctx)
	if err != nil {
		return err
	}
	if err := gotool.Build(ctx, bin, "./app", "./caller", "./emulator"); err != nil {
		return err
	}
	appBin, emulatorBin := filepath.Join(bin, "app"), filepath.Join(bin, "emulator")
	if o.appBinary != "" {
		appBin = o.appBinary
	}
	if o.emulatorBinary != "" {
		emulatorBin = o.emulatorBinary
	}
	pkg := filepath.Join(dir, "build")
	if out, err := command(ctx, root, "make", "-s", "package-app", "BUILD="+pkg,
		"PACKAGE_GOOS="+runtime.GOOS, "PACKAGE_GOARCH="+runtime.GOARCH).CombinedOutput(); err != nil {
		return fmt.Errorf("make package-app: %w\n%s", err, out)
	}
	// An emulated workspace in this process, with its SQL engine: the app's data endpoints query its warehouse, and
	// the figures that count its requests read it. The proxy under load is the emulator's own process, started below.
	progress("starting the emulated workspace (with its SQL engine) and the app under it")
	ws, err := workspace.Start(ctx, workspace.Options{Logger: slog.New(slog.DiscardHandler), SQLEngine: duckdb.Open})
	if err != nil {
		return err
	}
	defer ws.Close()
	// The app runs with app.yaml's env, as deployed, valueFrom resolved from the app's resources as the platform
	// does; so do the bare handlers, which stand for the app's handler alone.
	packagedYAML := filepath.Join(pkg, "app", "app.yaml")
	packaged, err := ws.ReadAppYAML("api-app", packagedYAML)
	if err != nil {
		return err
	}
	if len(packaged.Command) == 0 {
		return fmt.Errorf("%s: no command", packagedYAML)
	}
	deployedEnv := packaged.Env
	state := ws.State()
	appSP := state.ServicePrincipals["api-app"]
	platformEnv := []string{
		"DATABRICKS_APP_NAME=api-app", "DATABRICKS_HOST=" + ws.URL(), "DATABRICKS_WORKSPACE_ID=" + state.WorkspaceID,
		"DATABRICKS_CLIENT_ID=" + appSP.ClientID, "DATABRICKS_CLIENT_SECRET=" + appSP.ClientSecret,
	}
	appProc, err := startProcess(ctx, dir, "app", []string{appBin}, append(platformEnv, deployedEnv...))
	if err != nil {
		return err
	}
	defer appProc.stop()
	// The same app without app.yaml's env: what its settings (the GC's) change.
	appDefaults, err := startProcess(ctx, dir, "app", []string{appBin}, platformEnv)
	if err != nil {
		return err
	}
	defer appDefaults.stop()
	if err := ws.SetUpstream("api-app", appProc.url); err != nil {
		return err
	}

	// The headers the proxy sends for the external service principal: what the direct loads present.
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
	bare, err := startProcess(ctx, dir, "bare", []string{self, "bare-server", "--addr", "$ADDR", "--body-file", bodyFile},
		deployedEnv)
	if err != nil {
		return err
	}
	defer bare.stop()
	bareEncoding, err := startProcess(ctx, dir, "bare", []string{self, "bare-server", "--encode", "--addr", "$ADDR",
		"--body-file", bodyFile}, deployedEnv)
	if err != nil {
		return err
	}
	defer bareEncoding.stop()

	progress("starting the emulator (%s) and a plain reverse proxy in front of the app", emulatorBin)
	emulator, emuState, err := startEmulator(ctx, dir, emulatorBin, appProc.url)
	if err != nil {
		return err
	}
	defer emulator.stop()
	plain, err := startProcess(ctx, dir, "plain-proxy", []string{self, "plain-proxy", "--addr", "$ADDR",
		"--upstream", appProc.url}, nil)
	if err != nil {
		return err
	}
	defer plain.stop()
	emuExt := emuState.ServicePrincipals["external-service"]
	m2m, err := clientCredentials(ctx, emuState.WorkspaceHost, emuExt.ClientID, emuExt.ClientSecret)
	if err != nil {
		return err
	}
	user, err := userLogin(ctx, emuState.WorkspaceHost, "dev@example.com", "offline_access all-apis")
	if err != nil {
		return err
	}
	// The plain proxy checks nothing, so its clients send what the emulator would forward, and the bearer token.
	plainM2M := forwarded.Clone()
	plainM2M.Set("Authorization", "Bearer "+m2m)
	plainUser := forwarded.Clone()
	plainUser.Set(identity.HeaderUser, identity.FormatUser(emuState.Users["dev@example.com"].ID, emuState.WorkspaceID))
	plainUser.Set(identity.HeaderEmail, "dev@example.com")
	plainUser.Set(identity.HeaderPreferredUsername, "dev@example.com")
	plainUser.Set(identity.HeaderAccessToken, user) // a token of the same shape as the forwarded one, for the app to decode
	plainUser.Set("Authorization", "Bearer "+user)
	emuAPI := emuState.Apps["api-app"].URL + "/api/whoami"

	// Every answer must be a 200 whose body names the caller the app should have seen.
	caller := func(h http.Header) string { return `"user":"` + h.Get(identity.HeaderUser) + `"` }
	emuCaller := func(principalID string) string {
		return `"user":"` + identity.FormatUser(principalID, emuState.WorkspaceID) + `"`
	}
	// The loads in groups: each proxy and its baseline are one group, so they always run back to back (see
	// roundOrder); the direct loads are another.
	direct := []target{
		{rowApp, appProc.url + "/api/whoami", forwarded, caller(forwarded), []*process{appProc}},
		{rowAppDefaults, appDefaults.url + "/api/whoami", forwarded, caller(forwarded), []*process{appDefaults}},
		{rowBare, bare.url + "/", forwarded, caller(forwarded), []*process{bare}},
		{rowBareEncoding, bareEncoding.url + "/", forwarded, caller(forwarded), []*process{bareEncoding}},
	}
	proxiedM2M := []target{
		{rowEmulatorM2M, emuAPI, http.Header{"Authorization": {"Bearer " + m2m}}, emuCaller(emuExt.ID),
			[]*process{emulator, appProc}},
		{rowPlainM2M, plain.url + "/api/whoami", plainM2M, caller(plainM2M), []*process{plain, appProc}},
	}
	proxiedUser := []target{
		{rowEmulatorUser, emuAPI, http.Header{"Authorization": {"Bearer " + user}},
			emuCaller(emuState.Users["dev@example.com"].ID), []*process{emulator, appProc}},
		{rowPlainUser, plain.url + "/api/whoami", plainUser, caller(plainUser), []*process{plain, appProc}},
	}
	fastAPINote := ""
	if py, parser, err := findFastAPI(ctx, o.python); err != nil {
		fastAPINote = "FastAPI row skipped: " + err.Error()
		progress("%s", fastAPINote)
	} else {
		progress("starting the FastAPI peer with %s (uvicorn's HTTP parser: %s)", py, parser)
		fastAPI, err := startFastAPI(ctx, dir, py)
		if err != nil {
			return err
		}
		defer fastAPI.stop()
		direct = append(direct, target{rowFastAPI, fastAPI.url + "/api/whoami", forwarded, caller(forwarded),
			[]*process{fastAPI}})
		fastAPINote = fmt.Sprintf("FastAPI: %s -m uvicorn, one worker, access log off, HTTP parser %s", py, parser)
	}

	groups := [][]target{direct, proxiedM2M, proxiedUser}
	targets := slices.Concat(groups...)
	rssIdle := appProc.rss()
	progress("warming up each of the %d targets", len(targets))
	warm := load{duration: time.Second, concurrency: o.concurrency, dir: dir}
	for _, t := range targets {
		if err := t.check(ctx); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		res, err := warm.run(ctx, t.url, t.header)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if res.errors > 0 {
			return fmt.Errorf("%s: %d of %d requests failed in the warm-up (%s)", t.name, res.errors, res.requests,
				res.failures)
		}
	}
	samples, err := measureRounds(ctx, groups, o.rounds, load{duration: o.duration, concurrency: o.concurrency, dir: dir},
		progress)
	if err != nil {
		return err
	}
	rssLoaded := appProc.rss()

	figures := loadFigures(samples)
	var failedRequests int64
	for _, ss := range samples {
		for _, s := range ss {
			failedRequests += s.errors
		}
	}
	figures = append(figures, figure{name: "   failed requests, all loads", value: exact(float64(failedRequests)),
		goal: atMost(0)})

	// 4: workspace requests per /api/me, on behalf of a user whose token the proxy forwards.
	progress("counting workspace requests per /api/me")
	userToken, err := userLogin(ctx, ws.URL(), "dev@example.com", "offline_access all-apis")
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
	figures = append(figures, figure{name: "4. workspace requests per /api/me", value: exact(perMe), digits: 2,
		goal: atMost(2), note: fmt.Sprintf("over %d calls after the first: SELECT current_user() as the user and as the app", meCalls)})

	// 5: token requests per 1,000 calls in each of the caller's modes.
	const reuseCalls = 1000
	progress("token reuse: %d caller requests in local, external and app mode", reuseCalls)
	reuse, err := tokenReuse(ctx, ws, dir, bin, reuseCalls)
	if err != nil {
		return err
	}
	figures = append(figures,
		figure{name: fmt.Sprintf("5. token requests per %d calls, external", reuseCalls), value: exact(float64(reuse["external"])), goal: atMost(1)},
		figure{name: "   app mode (callapp serve)", value: exact(float64(reuse["app"])), goal: atMost(1)},
		figure{name: "   local (CLI profile)", value: exact(float64(reuse["local"])), goal: atMost(2),
			note: "the SDK runs the CLI once to check it, then for the token"})

	// 6: start-up, packaged launcher against the binary started directly.
	progress("start-up: %d runs each of the packaged app.yaml command and the binary, in turn", o.startups)
	startRatios, packagedStart, directStart, err := startupRatios(ctx, dir, o.startups, filepath.Join(pkg, "app"),
		packaged.Command, []string{appBin})
	if err != nil {
		return err
	}
	figures = append(figures, figure{name: "6. start-up to first answer, packaged ÷ direct", value: spreadOf(startRatios),
		digits: 2, goal: atMost(2), note: fmt.Sprintf("%s / %s, medians", ms(packagedStart), ms(directStart))})

	// 7, from the loads above.
	figures = append(figures, figure{name: "7. app RSS after the loads, MiB", value: exact(float64(rssLoaded) / (1 << 20)),
		digits: 1, goal: reported, note: "idle: " + mib(rssIdle)})

	// 8: the data path, sequential calls of GET /api/orders against the engine's own time for the same work.
	const dataCalls = 50
	progress("the data path: %d rounds of %d calls of GET /api/orders and of the engine alone, alternating", o.rounds, dataCalls)
	through, alone, err := dataPath(ctx, ws, root, o.rounds, dataCalls)
	if err != nil {
		return err
	}
	extra, times := make([]float64, len(through)), make([]float64, len(through))
	for i := range through {
		extra[i], times[i] = (through[i]-alone[i])/float64(time.Millisecond), through[i]/alone[i]
	}
	figures = append(figures,
		figure{name: "8. GET /api/orders − the engine alone, ms", value: spreadOf(extra), digits: 2, goal: atMost(2),
			note: fmt.Sprintf("%s / %s, medians: proxy + app + warehouse, sequential; the engine runs the query as "+
				"the user and as the app at once, as the endpoint does", ms(time.Duration(spreadOf(through).median)),
				ms(time.Duration(spreadOf(alone).median)))},
		figure{name: "   GET /api/orders ÷ the engine alone", value: spreadOf(times), digits: 1, goal: reported})

	fmt.Fprintf(stdout, "\nmake bench: %d interleaved rounds on %d CPUs; each load %s at concurrency %d over loopback keep-alive.\n",
		o.rounds, runtime.NumCPU(), o.duration, o.concurrency)
	fmt.Fprintf(stdout, "Server CPU per request is the servers' user+system time (/proc/PID/stat) over the requests served;\n"+
		"the load generator, wrk -t1, used %s per request to the app.\n\n",
		us(spreadOf(collect(samples[rowApp], func(s sample) float64 { return float64(s.loadCPUPerReq) })).median))
	printLoads(stdout, targets, samples)
	if fastAPINote != "" {
		fmt.Fprintln(stdout, fastAPINote)
	}
	fmt.Fprintln(stdout)
	printFigures(stdout, figures)
	var failed []string
	for _, f := range figures {
		if f.failed() {
			failed = append(failed, strings.TrimSpace(f.name))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("missed by more than the measured range: %s", strings.Join(failed, "; "))
	}
	return nil
}

// loadFigures are figures 1 to 3, each a ratio of two targets taken round by round.
func loadFigures(samples map[string][]sample) []figure {
	ratio := func(a, b string, f func(sample) float64) spread { return spreadOf(ratios(samples[a], samples[b], f)) }
	cpuMedian := func(row string) string { return us(spreadOf(collect(samples[row], cpuOf)).median) }
	figures := []figure{
		{name: "1. app CPU per request ÷ bare handler's", value: ratio(rowApp, rowBare, cpuOf), digits: 2, goal: atMost(1.3),
			note: cpuMedian(rowApp) + " / " + cpuMedian(rowBare)},
		{name: "   app req/s ÷ bare handler's", value: ratio(rowApp, rowBare, rpsOf), digits: 2, goal: reported,
			note: "the load generator shares the cores: this flattens differences"},
		{name: "   app CPU per request ÷ bare encoding's", value: ratio(rowApp, rowBareEncoding, cpuOf), digits: 2,
			goal: reported, note: "JSON encoding excluded: the middleware alone"},
		{name: "   app CPU per request ÷ without app.yaml's env", value: ratio(rowApp, rowAppDefaults, cpuOf), digits: 2,
			goal: reported, note: cpuMedian(rowApp) + " / " + cpuMedian(rowAppDefaults) + ": what GOGC and GOMEMLIMIT change"},
	}
	if _, ok := samples[rowFastAPI]; ok {
		figures = append(figures,
			figure{name: "2. app req/s ÷ FastAPI's", value: ratio(rowApp, rowFastAPI, rpsOf), digits: 1, goal: atLeast(10)},
			figure{name: "   bare handler req/s ÷ FastAPI's", value: ratio(rowBare, rowFastAPI, rpsOf), digits: 1,
				goal: reported, note: "the most any Go app gets here: the load generator shares the two cores"},
			figure{name: "   FastAPI CPU per request ÷ app's", value: ratio(rowFastAPI, rowApp, cpuOf), digits: 1,
				goal: reported, note: cpuMedian(rowFastAPI) + " / " + cpuMedian(rowApp)})
	}
	return append(figures,
		figure{name: "3. emulator's proxy ÷ plain proxy req/s, M2M", value: ratio(rowEmulatorM2M, rowPlainM2M, rpsOf),
			digits: 2, goal: atLeast(0.9)},
		figure{name: "   the same, user token", value: ratio(rowEmulatorUser, rowPlainUser, rpsOf), digits: 2, goal: atLeast(0.9),
			note: "the emulator also forwards a user token"},
		figure{name: "   CPU per request (proxy + app) ÷ plain's, M2M", value: ratio(rowEmulatorM2M, rowPlainM2M, cpuOf),
			digits: 2, goal: reported, note: cpuMedian(rowEmulatorM2M) + " / " + cpuMedian(rowPlainM2M)},
		figure{name: "   the same, user token", value: ratio(rowEmulatorUser, rowPlainUser, cpuOf), digits: 2, goal: reported,
			note: cpuMedian(rowEmulatorUser) + " / " + cpuMedian(rowPlainUser)},
		figure{name: "   proxied ÷ direct req/s, M2M", value: ratio(rowEmulatorM2M, rowApp, rpsOf), digits: 2, goal: reported,
			note: "what putting the emulator in front of the app costs a local test"},
	)
}

// printLoads is the table of every target's throughput and server CPU per request, medians and ranges.
func printLoads(w io.Writer, targets []target, samples map[string][]sample) {
	var rows [][]string
	for _, t := range targets {
		ss := samples[t.name]
		rps, cpu := spreadOf(collect(ss, rpsOf)), spreadOf(collect(ss, cpuOf))
		p50 := spreadOf(collect(ss, func(s sample) float64 { return float64(s.p50) }))
		rows = append(rows, []string{t.name,
			fmt.Sprintf("%.0f (%.0f–%.0f)", rps.median, rps.lo, rps.hi),
			fmt.Sprintf("%s (%s–%s)", us(cpu.median), us(cpu.lo), us(cpu.hi)),
			ms(time.Duration(p50.median))})
	}
	printTable(w, []string{"target", "req/s", "server CPU per request", "p50"}, rows)
}

func total(counts map[string]int64) int64 {
	var n int64
	for _, c := range counts {
		n += c
	}
	return n
}

func us(ns float64) string { return fmt.Sprintf("%.0f µs", ns/float64(time.Microsecond)) }

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
