package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// An answer larger than the caller reads is a failure naming the limit, never a silent cut: `callapp call` once printed
// the first 10 MiB of a 1 GiB answer and exited 0.
func TestLargeAnswersFailNamingTheLimit(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	env, api := e.spEnv("external-service"), e.state.Apps["api-app"].URL
	for _, chunked := range []bool{true, false} { // streamed as it is made, or with its Content-Length
		t.Run(fmt.Sprintf("chunked=%t", chunked), func(t *testing.T) {
			e.inject(t, workspace.Fault{App: "api-app", Path: "/api/huge", BodyBytes: 1 << 30, Chunked: chunked})
			r := runCaller(t, env, "--mode", "external", "--url", api, "call", "/api/huge")
			assert.Equal(t, exitServer, r.code, r.String())
			assert.Contains(t, r.stderr, "larger than 10 MiB")
			assert.Zero(t, len(r.stdout), "nothing on stdout")

			r = runCaller(t, env, "--mode", "external", "--url", api, "--json", "call", "/api/huge")
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

// `callapp serve` once answered a 1 GiB target answer with 200 and 60 MiB (the first 10 MiB, escaped), and 8 such
// calls at once took it to 2.3 GiB of RSS. Now it reads at most 1 MiB of an answer, refuses more with 502 naming the
// limit, and works on a bounded number of calls at once. It runs as a child process so that its RSS is its own.
func TestServeBoundsLargeAnswers(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	e.inject(t, workspace.Fault{App: "api-app", Path: "/api/huge", BodyBytes: 1 << 30, Chunked: true})
	sp := e.state.ServicePrincipals["external-service"]
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	serve := testkit.StartProcess(t, []string{testkit.Build(t, "caller"), "serve", "--listen", addr, "--timeout", "20s"}, "",
		[]string{"HOME=" + t.TempDir(), "DATABRICKS_HOST=" + e.state.WorkspaceHost, "DATABRICKS_CLIENT_ID=" + sp.ClientID,
			"DATABRICKS_CLIENT_SECRET=" + sp.ClientSecret, "TARGET_APP_URL=" + e.state.Apps["api-app"].URL})
	base := "http://" + addr
	(&testkit.App{Process: serve, URL: base}).WaitHealthy(t)
	t.Cleanup(func() {
		assert.NoError(t, serve.Stop(t), "serve drains and exits on SIGTERM")
		testkit.AssertNoSecrets(t, serve.Stdout.String()+serve.Stderr.String(), sp.ClientSecret)
	})
	idle := testkit.ProcStatusKB(t, serve.PID(), "VmRSS")

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
	peak := testkit.ProcStatusKB(t, serve.PID(), "VmHWM")
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
	t.Parallel()
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
	case <-time.After(callSlotWait + testkit.Patience):
		t.Fatal("no answer to the call over the limit")
	}
	close(fx.hold)
	for range maxCallsInFlight {
		assert.Equal(t, http.StatusOK, <-answers)
	}
}
