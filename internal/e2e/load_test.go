package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// hammer sends n authenticated GETs from c workers and returns how many failed, with the first few errors.
func hammer(ctx context.Context, cfg *config.Config, target string, n, c int) (failed int64, sample []string) {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: c}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				err := getOK(ctx, client, cfg, target)
				if err != nil {
					mu.Lock()
					failed++
					if len(sample) < 5 {
						sample = append(sample, err.Error())
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return failed, sample
}

func getOK(ctx context.Context, client *http.Client, cfg *config.Config, target string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	if cfg != nil {
		if err := cfg.Authenticate(req); err != nil {
			return err
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// 20,000 requests (make stress; 2,000 in make test, under the race detector) at concurrency 64 through the Apps
// proxy to the app: no errors, and afterwards nothing left behind beyond what a warm process keeps. The app runs as
// its own process, so what it keeps is read from /proc (its open files: a connection or a request that never ends
// holds one; its resident memory); the proxy and the client run in this one, which counts its goroutines and heap.
func TestStressLoadThroughTheProxy(t *testing.T) {
	testkit.CleanEnv(t)
	ws, app := emulated.WithApp(t, workspace.Options{})
	cfg := emulated.M2MConfig(ws, "external-service")
	// Resolve before going concurrent: the SDK's first resolution is not safe to race (the race detector says so).
	require.NoError(t, cfg.EnsureResolved())
	target := ws.AppURL("api-app") + "/api/whoami"

	failed, sample := hammer(t.Context(), cfg, target, 500, 64) // warm: connections, token, pools
	require.Zero(t, failed, sample)
	runtime.GC()
	goroutines := runtime.NumGoroutine()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	appFiles := openFiles(t, app.PID())
	appRSS := testkit.ProcStatusKB(t, app.PID(), "VmRSS")

	requests := stressRequests(t)
	start := time.Now()
	failed, sample = hammer(t.Context(), cfg, target, requests, 64)
	elapsed := time.Since(start)
	assert.Zero(t, failed, "failed requests, e.g. %v", sample)
	t.Logf("%d requests at concurrency 64 through the proxy in %s (%.0f req/s, race detector on: %v)",
		requests, elapsed.Round(time.Millisecond), float64(requests)/elapsed.Seconds(), testkit.RaceEnabled)

	// Idle keep-alive connections of the proxy's transport close after their idle timeout; close ours and wait.
	assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutines+8 }, testkit.Patience, 100*time.Millisecond,
		"goroutines: %d before the load, %d after", goroutines, runtime.NumGoroutine())
	assert.Eventually(t, func() bool { return openFiles(t, app.PID()) <= appFiles+8 }, testkit.Patience, 100*time.Millisecond,
		"the app's open files: %d before the load, %d after", appFiles, openFiles(t, app.PID()))
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	const heapBound, rssBound = 32 << 20, 64 << 10 // bytes, KiB
	assert.Less(t, int64(after.HeapInuse)-int64(before.HeapInuse), int64(heapBound),
		"heap in use grew from %d to %d bytes", before.HeapInuse, after.HeapInuse)
	rss := testkit.ProcStatusKB(t, app.PID(), "VmRSS")
	assert.Less(t, rss-appRSS, int64(rssBound), "the app's RSS grew from %d to %d KiB", appRSS, rss)
	t.Logf("after the load: goroutines %d (baseline %d), heap in use %.1f MiB (before %.1f MiB, bound +%d MiB); "+
		"the app: open files %d (baseline %d), RSS %d MiB (before %d MiB, bound +%d MiB)",
		runtime.NumGoroutine(), goroutines, float64(after.HeapInuse)/(1<<20), float64(before.HeapInuse)/(1<<20), heapBound>>20,
		openFiles(t, app.PID()), appFiles, rss>>10, appRSS>>10, rssBound>>10)
	assert.Contains(t, app.Stdout.String(), `"msg":"request"`)
}

// openFiles counts a process's open file descriptors (Linux).
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err, "this test counts a child's open files through /proc (Linux)")
	return len(fds)
}

// SIGTERM (the app's context) in the middle of a load: every request the app accepted completes, and the app exits 0
// in well under 10 s. "Accepted" is counted where it happens: every request line the app logged must match a 200 its
// client received. The only failures are connections the app never took: refused once it stopped listening, or reset
// by the kernel while still waiting in the listener's accept queue when it closed.
func TestStressShutdownUnderLoad(t *testing.T) {
	app := testkit.StartApp(t, testkit.BuildRace(t, "app"), nil)
	target := app.URL + "/api/whoami"
	header := asServicePrincipal()

	var ok, refused, reset, other atomic.Int64
	var otherErr atomic.Value
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32}}
	for range 32 {
		wg.Go(func() {
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, target, nil)
				req.Header = header.Clone()
				resp, err := client.Do(req)
				switch {
				case err == nil:
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						ok.Add(1)
					} else {
						other.Add(1)
						otherErr.Store(fmt.Sprintf("status %d", resp.StatusCode))
					}
				case errors.Is(err, syscall.ECONNREFUSED):
					refused.Add(1)
					time.Sleep(time.Millisecond)
				case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF):
					reset.Add(1)
					time.Sleep(time.Millisecond)
				default:
					other.Add(1)
					otherErr.Store(err.Error())
				}
			}
		})
	}
	require.Eventually(t, func() bool { return ok.Load() > 200 }, testkit.Patience, 10*time.Millisecond)

	stopped := time.Now()
	err := app.Stop(t)
	took := time.Since(stopped)
	close(stopLoad)
	wg.Wait()

	assert.NoError(t, err, "exit status: it stopped on SIGTERM, in its drain time")
	assert.Zero(t, other.Load(), "requests that failed other than at the connection: e.g. %v", otherErr.Load())
	logged := strings.Count(app.Stdout.String(), `"path":"/api/whoami","status":200`)
	assert.Equal(t, logged, int(ok.Load()), "requests the app logged as answered vs 200s its clients received")
	t.Logf("shutdown under load: %d requests accepted and completed (%d logged), %d connections refused and %d reset "+
		"unaccepted after close, stopped in %s", ok.Load(), logged, refused.Load(), reset.Load(), took.Round(time.Millisecond))
}

// Tokens that live 4 s expire several times during a run of requests; the SDK refreshes them and no request fails.
// The SDK renews a token in the background in the second half of its life: with 4 s tokens (3 s to the SDK, which
// counts whole seconds), a token request has 1.5 s to come back before the old token runs out, which no loaded
// machine takes; with 2 s tokens it had half a second.
func TestStressTokensExpiringDuringARun(t *testing.T) {
	testkit.CleanEnv(t)
	const lifetime = 4 * time.Second
	ws, _ := emulated.WithApp(t, workspace.Options{TokenLifetime: lifetime})
	cfg := emulated.M2MConfig(ws, "external-service")
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(3*lifetime + time.Second)
	var n int
	for time.Now().Before(deadline) {
		require.NoError(t, getOK(t.Context(), client, cfg, ws.AppURL("api-app")+"/api/whoami"), "request %d", n)
		n++
		time.Sleep(20 * time.Millisecond)
	}
	tokens := ws.RequestCount(workspace.PathToken)
	t.Logf("%d requests over %s with %s tokens: %d token requests, 0 failures", n, 3*lifetime+time.Second, lifetime, tokens)
	assert.GreaterOrEqual(t, tokens, int64(3), "the tokens did expire and were refreshed")
}

// stressRequests is how many requests a load test sends: STRESS_REQUESTS (make stress sets 20,000), else 2,000.
func stressRequests(t *testing.T) int {
	v := os.Getenv("STRESS_REQUESTS")
	if v == "" {
		return 2000
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "STRESS_REQUESTS")
	return n
}
