package workspace

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// putVolumeFile uploads body to a volume path through the Files API and returns the status and the error code.
func putVolumeFile(t *testing.T, w *Workspace, token, file string, overwrite bool, body io.Reader) (int, string) {
	t.Helper()
	u := w.URL() + PathFsFiles + file
	if overwrite {
		u += "?overwrite=true"
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, u, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var answer struct {
		ErrorCode string `json:"error_code"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	return resp.StatusCode, answer.ErrorCode
}

// A volume holds at most its quota of files on the emulator's disk: an upload past it is refused with
// QUOTA_EXCEEDED and leaves nothing behind; replacing a file counts the difference, deleting gives its bytes back.
func TestVolumeQuota(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	w, _ := startWorkspace(t, Options{DataDir: dataDir, VolumeQuota: 1 << 20})
	token := userToken(t, w, "dev@example.com", "file.files")
	kib := func(n int) io.Reader { return strings.NewReader(strings.Repeat("x", n<<10)) }

	status, _ := putVolumeFile(t, w, token, reports+"/a.bin", false, kib(600))
	require.Equal(t, http.StatusNoContent, status)
	status, code := putVolumeFile(t, w, token, reports+"/b.bin", false, kib(600))
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, codeQuotaExceeded, code)
	folder := filepath.Join(dataDir, "volumes", "samples", "sales", "reports")
	entries, err := os.ReadDir(folder)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"a.bin", "revenue-by-quarter.csv"}, names, "nothing of the refused upload is kept")

	status, _ = putVolumeFile(t, w, token, reports+"/a.bin", true, kib(300))
	require.Equal(t, http.StatusNoContent, status, "replacing 600 KiB with 300 KiB fits")
	status, _ = putVolumeFile(t, w, token, reports+"/b.bin", false, kib(600))
	require.Equal(t, http.StatusNoContent, status, "the replaced file gave 300 KiB back")
	status, code = putVolumeFile(t, w, token, reports+"/c.bin", false, kib(200))
	require.Equal(t, codeQuotaExceeded, code, "status %d", status)

	resp, body := call(t, http.MethodDelete, w.URL()+PathFsFiles+reports+"/a.bin", bearer(token))
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	status, _ = putVolumeFile(t, w, token, reports+"/c.bin", false, kib(200))
	assert.Equal(t, http.StatusNoContent, status, "deleting gave the bytes back")
}

// At most maxUploadsPerPrincipal uploads of one principal are in progress at once; one more gets 429 with
// Retry-After, which the SDK retries, and another principal's upload goes on.
func TestVolumeUploadsInProgressAreBounded(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	token := userToken(t, w, "dev@example.com", "file.files")
	type held struct {
		pw   *io.PipeWriter
		done chan int
	}
	var uploads []held
	for i := range maxUploadsPerPrincipal {
		pr, pw := io.Pipe()
		h := held{pw: pw, done: make(chan int, 1)}
		uploads = append(uploads, h)
		go func() {
			status, _ := putVolumeFile(t, w, token, reports+"/held-"+string(rune('a'+i))+".bin", false, pr)
			h.done <- status
		}()
		_, err := pw.Write([]byte("started"))
		require.NoError(t, err)
	}
	inFlight := func() int {
		d := w.data.volumes.disk
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.inFlight["dev@example.com"]
	}
	require.Eventually(t, func() bool { return inFlight() == maxUploadsPerPrincipal }, patience, time.Millisecond,
		"every upload's handler has counted it")
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, w.URL()+PathFsFiles+reports+"/one-more.bin",
		strings.NewReader("x"))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))

	for _, h := range uploads {
		require.NoError(t, h.pw.Close())
		assert.Equal(t, http.StatusNoContent, <-h.done)
	}
	status, _ := putVolumeFile(t, w, token, reports+"/one-more.bin", false, strings.NewReader("x"))
	assert.Equal(t, http.StatusNoContent, status, "once they have ended")
}
