package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// startEmulatorProcess runs `emulator serve` as a child process, so that its memory is its own, and returns it with
// its state once it listens.
func startEmulatorProcess(t *testing.T) (*testkit.Process, workspace.State, string) {
	t.Helper()
	dir := t.TempDir()
	statePath, dataDir := filepath.Join(dir, "state.json"), filepath.Join(dir, "data")
	// Built without the race detector even under -race: the race detector's shadow memory would be what is measured.
	emu := testkit.StartProcess(t, []string{testkit.Build(t, "emulator"), "serve", "--state", statePath,
		"--data-dir", dataDir, "--profile-dir", filepath.Join(dir, "profile")}, dir, []string{"HOME=" + dir})
	for {
		if state, err := workspace.ReadState(statePath); err == nil {
			return emu, state, dataDir
		}
		select {
		case <-emu.Exited():
			t.Fatalf("the emulator exited before it listened: %v\n%s", emu.Err(), emu.Stderr)
		case <-t.Context().Done():
			t.Fatal("the test ended before the emulator listened")
		case <-time.After(20 * time.Millisecond): // a polling interval, not a budget
		}
	}
}

// The bursts against a running emulator: 64 concurrent 10 MiB imports by one principal (as the SDK's
// w.Workspace.Import sends them: JSON, base64) once took it from 21 MiB to 1.9 GiB of RSS and 641 MB of disk, and
// 500 connections each sending a megabyte of headers they never finish held 859 MiB. Uploads are now streamed, at
// most 20 in progress per principal (429 beyond, which the SDK retries), each home within its disk quota
// (QUOTA_EXCEEDED beyond), and headers bounded at 64 KiB (431 beyond).
func TestEmulatorMemoryStaysBoundedUnderBursts(t *testing.T) {
	emu, state, dataDir := startEmulatorProcess(t)
	pid := emu.PID()
	sp := state.ServicePrincipals["external-service"]
	token := testkit.ClientCredentials(t, state.WorkspaceHost+workspace.PathToken, sp.ClientID, sp.ClientSecret, "all-apis")
	idle := testkit.ProcStatusKB(t, pid, "VmRSS")

	const uploads = 64
	content := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x"), workspace.MaxFileSize))
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: uploads}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	statuses := map[string]int{}
	var wg sync.WaitGroup
	for i := range uploads {
		wg.Go(func() {
			body, _ := json.Marshal(map[string]any{"content": content, "format": "AUTO", "overwrite": true,
				"path": fmt.Sprintf("/Users/%s/f%d", sp.ClientID, i)})
			req, _ := http.NewRequest(http.MethodPost, state.WorkspaceHost+workspace.PathWorkspaceImport, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			answer := "connection closed" // a refusal before the whole body was sent may end the connection first
			if err == nil {
				var e struct {
					Code string `json:"error_code"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				answer = fmt.Sprintf("%d %s", resp.StatusCode, e.Code)
			}
			mu.Lock()
			statuses[answer]++
			mu.Unlock()
		})
	}
	wg.Wait()
	uploadPeak := testkit.ProcStatusKB(t, pid, "VmHWM")
	var onDisk int64
	require.NoError(t, filepath.Walk(dataDir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			onDisk += fi.Size()
		}
		return err
	}))
	t.Logf("%d concurrent 10 MiB imports: %v; RSS idle %d MiB, peak %d MiB; %d MiB on disk",
		uploads, statuses, idle>>10, uploadPeak>>10, onDisk>>20)
	for answer := range statuses {
		assert.Contains(t, []string{"200 ", "429 REQUEST_LIMIT_EXCEEDED", "400 QUOTA_EXCEEDED", "connection closed"}, answer)
	}
	assert.Positive(t, statuses["200 "])
	assert.Less(t, uploadPeak>>10, int64(128), "peak RSS, MiB")
	assert.LessOrEqual(t, onDisk, int64(workspace.DefaultDiskQuota), "bytes on disk")

	// Connections that each send a megabyte of headers and never finish them. The emulator reads 64 KiB of them,
	// answers 431 and closes, so most of each write fails; once every write has ended, the headers are held or not.
	const conns = 500
	header := strings.Repeat("a", 1<<20)
	addr := strings.TrimPrefix(state.WorkspaceHost, "http://")
	open := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range open {
			_ = c.Close()
		}
	}()
	var writes sync.WaitGroup
	for range conns {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		open = append(open, c)
		writes.Go(func() {
			_, _ = fmt.Fprintf(c, "GET /api/2.0/preview/scim/v2/Me HTTP/1.1\r\nHost: x\r\nX-Big: %s", header)
		})
	}
	writes.Wait()
	peak := testkit.ProcStatusKB(t, pid, "VmHWM")
	t.Logf("%d connections sending 1 MiB of headers: RSS peak %d MiB, now %d MiB",
		conns, peak>>10, testkit.ProcStatusKB(t, pid, "VmRSS")>>10)
	assert.Less(t, peak>>10, int64(128), "peak RSS, MiB")
}
