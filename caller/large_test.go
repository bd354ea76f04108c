package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// An answer larger than the caller reads is a failure naming the limit, never a silent cut: `caller call` once printed
// the first 10 MiB of a 1 GiB answer and exited 0.
func TestLargeAnswersFailNamingTheLimit(t *testing.T) {
	ws := newFakeWorkspace(t)
	app := newFakeApp(t, ws)
	for _, path := range []string{"/api/huge", "/api/huge-length"} {
		t.Run(path, func(t *testing.T) {
			r := runCaller(t, externalEnv(ws), "--mode", "external", "--url", app.URL, "call", path)
			assert.Equal(t, exitServer, r.code, r.String())
			assert.Contains(t, r.stderr, "larger than 10 MiB")
			assert.Zero(t, len(r.stdout), "nothing on stdout")

			r = runCaller(t, externalEnv(ws), "--mode", "external", "--url", app.URL, "--json", "call", path)
			assert.Equal(t, exitServer, r.code, r.String())
			var f struct {
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &f), r.stdout)
			assert.False(t, f.OK)
			assert.Contains(t, f.Error, "larger than 10 MiB")
		})
	}
}

// `caller serve` once answered a 1 GiB target answer with 200 and 60 MiB (the first 10 MiB, escaped), and 8 such
// calls at once took it to 2.3 GiB of RSS. Now it reads at most 1 MiB of an answer, refuses more with 502 naming the
// limit, and works on a bounded number of calls at once. It runs as a child process so that its RSS is its own.
func TestServeBoundsLargeAnswers(t *testing.T) {
	ws := newFakeWorkspace(t)
	app := newFakeApp(t, ws)
	bin := testkit.Build(t, "caller")
	port := testkit.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(bin, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--timeout", "20s")
	cmd.Env = []string{"HOME=" + t.TempDir(), "DATABRICKS_HOST=" + ws.URL, "DATABRICKS_CLIENT_ID=" + fakeClientID,
		"DATABRICKS_CLIENT_SECRET=" + fakeSecret, "TARGET_APP_URL=" + app.URL}
	logs := &testkit.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		assert.NotContains(t, logs.String(), fakeSecret)
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/api/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "serve did not start:\n%s", &logs)
	pid := cmd.Process.Pid
	idle := testkit.ProcStatusKB(t, pid, "VmRSS")

	const concurrency, rounds = 8, 3
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: concurrency}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	statuses := map[int]int{}
	var unexpected []string
	for range rounds {
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				resp, err := client.Get(base + "/api/call?path=/api/huge")
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					unexpected = append(unexpected, err.Error())
					return
				}
				defer resp.Body.Close()
				statuses[resp.StatusCode]++
				head, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				rest, _ := io.Copy(io.Discard, resp.Body)
				n := int64(len(head)) + rest
				var e jsonhttp.Error
				_ = json.Unmarshal(head, &e)
				if resp.StatusCode != http.StatusBadGateway || e.Code != jsonhttp.CodeBadGateway || !strings.Contains(e.Message, "larger than 1 MiB") {
					unexpected = append(unexpected, fmt.Sprintf("status %d, %d bytes: %+v", resp.StatusCode, n, e))
				}
			})
		}
		wg.Wait()
	}
	peak := testkit.ProcStatusKB(t, pid, "VmHWM")
	t.Logf("%d rounds of %d concurrent calls for a 1 GiB answer: statuses %v; RSS idle %d MiB, peak %d MiB",
		rounds, concurrency, statuses, idle>>10, peak>>10)
	assert.Empty(t, unexpected[:min(len(unexpected), 3)], "%d unexpected answers: each is a 502 naming the limit", len(unexpected))
	assert.Less(t, peak>>10, int64(160), "peak RSS, MiB")

	resp, err := client.Get(base + "/api/call?path=/api/whoami")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "an ordinary call still works")
}

// serve works on at most maxCallsInFlight calls at once; one more waits, then gets 503 with Retry-After.
func TestServeBoundsCallsInFlight(t *testing.T) {
	fx := newServeFixture(t)
	fx.hold, fx.held = make(chan struct{}), make(chan struct{}, 2*maxCallsInFlight)
	answers := make(chan int, maxCallsInFlight)
	for range maxCallsInFlight {
		go func() {
			rec, _ := fx.get("path=/api/whoami")
			answers <- rec.Code
		}()
	}
	for range maxCallsInFlight {
		<-fx.held
	}
	extra := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec, _ := fx.get("path=/api/whoami")
		extra <- rec
	}()
	select {
	case rec := <-extra:
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
		assert.NotEmpty(t, rec.Header().Get("Retry-After"))
	case <-fx.held:
		t.Error("a call over the limit reached the target")
	case <-time.After(callSlotWait + 10*time.Second):
		t.Fatal("no answer to the call over the limit")
	}
	close(fx.hold)
	for range maxCallsInFlight {
		assert.Equal(t, http.StatusOK, <-answers)
	}
}
