package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// builtApp joins the parts of the packaged app (what the platform runs) into one executable.
func builtApp(t *testing.T) string {
	t.Helper()
	parts, err := filepath.Glob(filepath.Join(packagedApp(t), "app.part-*"))
	require.NoError(t, err)
	require.NotEmpty(t, parts)
	bin := filepath.Join(t.TempDir(), "app")
	f, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o700)
	require.NoError(t, err)
	for _, p := range parts { // Glob sorts: aa, ab, …
		part, err := os.ReadFile(p)
		require.NoError(t, err)
		_, err = f.Write(part)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	return bin
}

// echoBodyLimit is the largest body /api/echo takes (maxEchoBody in app/handlers.go): the test's bodies fill it.
const echoBodyLimit = 1 << 20

// 64 concurrent 1 MiB bodies made of '<' once took the app from 17 MiB to 1.9 GiB of RSS, and it stayed there: the
// JSON encoder wrote each '<' as \u003c (6 bytes), and the buffer pool kept the 8 MiB buffers. The app runs as a child
// process here, so its RSS (peak and settled) is its own.
func TestEchoMemoryStaysBoundedUnderLargeBodies(t *testing.T) {
	app := testkit.StartApp(t, builtApp(t), map[string]string{"DATABRICKS_APP_NAME": "api-app"})
	base := app.URL
	pid := app.PID()
	idle := testkit.ProcStatusKB(t, pid, "VmRSS")

	const concurrency, rounds = 64, 3
	body := append(append([]byte{'"'}, bytes.Repeat([]byte{'<'}, echoBodyLimit-2)...), '"')
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: concurrency}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	statuses := map[int]int{}
	var unexpected []string // the first few
	for range rounds {
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, base+"/api/echo", bytes.NewReader(body))
				req.Header = asServicePrincipal()
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					unexpected = append(unexpected, err.Error())
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses[resp.StatusCode]++
				switch {
				case resp.StatusCode == http.StatusOK && n > echoBodyLimit && n < echoBodyLimit+4096:
				case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
				default:
					unexpected = append(unexpected, fmt.Sprintf("status %d, %d bytes", resp.StatusCode, n))
				}
			})
		}
		wg.Wait()
	}
	peak := testkit.ProcStatusKB(t, pid, "VmHWM")
	time.Sleep(2 * time.Second) // not a bound: a moment for the app to settle before the second reading
	settled := testkit.ProcStatusKB(t, pid, "VmRSS")
	t.Logf("%d rounds of %d concurrent 1 MiB '<' bodies: statuses %v; RSS idle %d MiB, peak %d MiB, settled %d MiB",
		rounds, concurrency, statuses, idle>>10, peak>>10, settled>>10)

	assert.Empty(t, unexpected[:min(len(unexpected), 3)], "%d unexpected answers: every answer is the echo (about the size of the body) or a 503 with Retry-After", len(unexpected))
	assert.Positive(t, statuses[http.StatusOK])
	// Eight bodies in flight at a few MiB each, and the runtime's headroom: well under these bounds.
	assert.Less(t, peak>>10, int64(256), "peak RSS, MiB")
	assert.Less(t, settled>>10, int64(256), "settled RSS, MiB")
}
