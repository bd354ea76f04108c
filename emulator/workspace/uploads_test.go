package workspace

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ws "github.com/databricks/databricks-sdk-go/service/workspace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// divert runs a JSON body through contentDiverter and returns what the decoder reads and what went to content.
func divert(t *testing.T, body string) (decoded, content string, err error) {
	t.Helper()
	var got bytes.Buffer
	out, err := io.ReadAll(newContentDiverter(strings.NewReader(body), &got))
	return string(out), got.String(), err
}

// The JSON of an import reaches the decoder with its content string emptied, wherever the member is and whatever
// else the object holds; the content's characters go to the upload, with the escapes JSON encoders use for base64
// undone.
func TestContentDiverterEmptiesTheContentString(t *testing.T) {
	tests := []struct{ name, body, decoded, content string }{
		{"first, as the SDK sends it", `{"content":"QUJD","format":"AUTO","path":"/a"}`,
			`{"content":"","format":"AUTO","path":"/a"}`, "QUJD"},
		{"last, with spaces", `{ "path" : "/a" , "content" : "QUJD" }`, `{ "path" : "/a" , "content" : "" }`, "QUJD"},
		{"escaped slash, line breaks and \\u", `{"content":"a\/b\n+\u002b="}`, `{"content":""}`, "a/b++="},
		{"a nested content is data", `{"x":{"content":"no"},"y":["content","no"],"content":"yes"}`,
			`{"x":{"content":"no"},"y":["content","no"],"content":""}`, "yes"},
		{"a value named content is no member", `{"path":"content","content":"ok"}`, `{"path":"content","content":""}`, "ok"},
		{"a longer name", `{"contents":"kept","content":"x"}`, `{"contents":"kept","content":""}`, "x"},
		{"quotes and backslashes elsewhere", `{"p\"ath":"a\\\"b","content":"x"}`, `{"p\"ath":"a\\\"b","content":""}`, "x"},
		{"no content", `{"path":"/a"}`, `{"path":"/a"}`, ""},
		{"content that is no string", `{"content":12}`, `{"content":12}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			decoded, content, err := divert(t, tt.body)
			require.NoError(t, err)
			assert.Equal(t, tt.decoded, decoded)
			assert.Equal(t, tt.content, content)
		})
	}
	for _, body := range []string{`{"content":"a\"b"}`, `{"content":"a\tb"}`, `{"content":"\u00e9"}`,
		`{"content":"a","content":"b"}`} {
		_, _, err := divert(t, body)
		assert.Error(t, err, body)
	}
}

// Every way a file is uploaded streams it: the SDK's Import (JSON, base64) and Upload (multipart) and the CLI's
// import-file store the same bytes, and a malformed body stores nothing.
func TestUploadsStreamEveryEncoding(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	w, _ := startWorkspace(t, Options{DataDir: dataDir})
	c := m2mClient(t, w)
	ctx := t.Context()
	x := homeOf(t, w, "external-service")
	content := randomBytes(t, 3<<20+1) // several of the diverter's and base64Writer's chunks, and padding

	require.NoError(t, c.Workspace.Import(ctx, ws.Import{Path: x + "/import.bin", Format: ws.ImportFormatAuto,
		Content: base64.StdEncoding.EncodeToString(content)}))
	require.NoError(t, c.Workspace.Upload(ctx, x+"/upload.bin", bytes.NewReader(content)))
	status, _ := importFile(t, w, m2mToken(t, w, "external-service"), x+"/import-file.bin", false, content)
	require.Equal(t, http.StatusOK, status)
	for _, name := range []string{"import.bin", "upload.bin", "import-file.bin"} {
		got, err := os.ReadFile(filepath.Join(dataDir, "files", filepath.FromSlash(x), name))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(content, got), name)
	}

	token := m2mToken(t, w, "external-service")
	for _, body := range []string{`{"path":"` + x + `/bad.bin","content":"not base64!"}`,
		`{"path":"` + x + `/bad.bin","content":"QUJD"`, `{"path":"` + x + `/bad.bin","content":"QQ==QQ=="}`} {
		status, code, _ := sendRaw(t, http.MethodPost, w.URL()+PathWorkspaceImport, token, strings.NewReader(body))
		assert.Equal(t, http.StatusBadRequest, status, body)
		assert.Equal(t, "INVALID_PARAMETER_VALUE", code, body)
	}
	entries, err := os.ReadDir(filepath.Join(dataDir, "files"))
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), uploadPrefix), "a temp file is left: %s", e.Name())
	}
	_, err = os.Stat(filepath.Join(dataDir, "files", filepath.FromSlash(x), "bad.bin"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// Each home folder, and /Shared, hold at most the disk quota; beyond it an upload is refused with the workspace's
// QUOTA_EXCEEDED, whichever API sent it, and nothing of it stays. Replacing a file counts only the difference, and
// deleting gives the bytes back.
func TestDiskQuota(t *testing.T) {
	const quota = 5 << 20
	dataDir := filepath.Join(t.TempDir(), "data")
	w, _ := startWorkspace(t, Options{DataDir: dataDir, DiskQuota: quota})
	c := m2mClient(t, w)
	ctx := t.Context()
	token := m2mToken(t, w, "external-service")
	x := homeOf(t, w, "external-service")
	two := make([]byte, 2<<20)

	for _, name := range []string{"a", "b"} {
		status, code := importFile(t, w, token, x+"/"+name, false, two)
		require.Equal(t, http.StatusOK, status, code)
	}
	status, code := importFile(t, w, token, x+"/c", false, two)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, codeQuotaExceeded, code)
	assertAPIError(t, c.Workspace.Upload(ctx, x+"/c", bytes.NewReader(two)), http.StatusBadRequest, codeQuotaExceeded)
	assertAPIError(t, c.Workspace.Import(ctx, ws.Import{Path: x + "/c", Content: base64.StdEncoding.EncodeToString(two)}),
		http.StatusBadRequest, codeQuotaExceeded)
	status, _ = importFile(t, w, token, x+"/a", true, make([]byte, 1<<20))
	require.Equal(t, http.StatusOK, status)
	status, _ = importFile(t, w, token, x+"/c", false, two)
	assert.Equal(t, http.StatusOK, status, "replacing a file of 2 MiB with one of 1 MiB gave 1 MiB back")

	// /Shared is a quota of its own, and another principal's home too.
	status, _ = importFile(t, w, token, "/Shared/s", false, two)
	assert.Equal(t, http.StatusOK, status)
	status, _ = importFile(t, w, managerToken(t, w), "/Users/dev@example.com/d", false, two)
	assert.Equal(t, http.StatusOK, status)

	status, code = importFile(t, w, token, x+"/d", false, two)
	require.Equal(t, codeQuotaExceeded, code, "status %d", status)
	require.NoError(t, c.Workspace.Delete(ctx, ws.Delete{Path: x + "/a"}))
	status, _ = importFile(t, w, token, x+"/d", false, make([]byte, 1<<20))
	assert.Equal(t, http.StatusOK, status, "deleting gave the bytes back")

	var held int64
	require.NoError(t, filepath.Walk(filepath.Join(dataDir, "files", filepath.FromSlash(x)), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			held += fi.Size()
		}
		return err
	}))
	assert.LessOrEqual(t, held, int64(quota))
	w.files.disk.mu.Lock()
	assert.Equal(t, held, w.files.disk.used["Users/"+strings.TrimPrefix(x, "/Users/")], "the count is the disk's")
	w.files.disk.mu.Unlock()
}

// A principal has at most maxUploadsPerPrincipal uploads in progress; the next is refused with 429 and Retry-After
// (the SDK waits and retries), while other principals upload as usual.
func TestConcurrentUploadsPerPrincipal(t *testing.T) {
	w, _ := startWorkspace(t, Options{})
	token := m2mToken(t, w, "external-service")
	x := homeOf(t, w, "external-service")

	// Uploads that never finish sending, until the test lets them.
	var writers []*io.PipeWriter
	var wg sync.WaitGroup
	statuses := make(chan int, maxUploadsPerPrincipal)
	for i := range maxUploadsPerPrincipal {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
			fmt.Sprintf("%s%s%s/f%d?overwrite=true", w.URL(), PathImportFile, x, i), pr)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		wg.Go(func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
		_, err = pw.Write([]byte("started"))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { // a signal from the workspace, not a guess of time: 30 s only if it hangs
		w.files.disk.mu.Lock()
		defer w.files.disk.mu.Unlock()
		return w.files.disk.inFlight[strings.TrimPrefix(x, "/Users/")] == maxUploadsPerPrincipal
	}, patience, time.Millisecond, "every upload is in progress")

	resp, body := send(t, http.MethodPost, w.URL()+PathImportFile+x+"/one-more?overwrite=true", "x", bearer(token))
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, string(body))
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Contains(t, string(body), "REQUEST_LIMIT_EXCEEDED")
	status, _ := importFile(t, w, managerToken(t, w), "/Users/dev@example.com/mine", false, []byte("x"))
	assert.Equal(t, http.StatusOK, status, "another principal uploads meanwhile")

	for _, pw := range writers {
		require.NoError(t, pw.Close())
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		assert.Equal(t, http.StatusOK, s)
	}
	status, _ = importFile(t, w, token, x+"/one-more", true, []byte("x"))
	assert.Equal(t, http.StatusOK, status, "once they end, the principal uploads again")
}

// Every listener of the emulator bounds request headers: 64 KiB, like the app's own server, then 431.
func TestListenersBoundRequestHeaders(t *testing.T) {
	w, _ := startWorkspace(t, Options{})
	for _, target := range []string{w.URL(), w.AppURL("api-app")} {
		for _, size := range []int{32 << 10, 128 << 10} {
			conn, err := net.Dial("tcp", strings.TrimPrefix(target, "http://"))
			require.NoError(t, err)
			_, err = fmt.Fprintf(conn, "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\nConnection: close\r\n\r\n",
				strings.Repeat("a", size))
			require.NoError(t, err)
			status := make([]byte, 12)
			_, err = io.ReadFull(conn, status)
			require.NoError(t, err)
			_ = conn.Close()
			if size > DefaultMaxHeaderBytes {
				assert.Equal(t, "HTTP/1.1 431", string(status), "%s, %d bytes of headers", target, size)
			} else {
				assert.NotEqual(t, "HTTP/1.1 431", string(status), "%s, %d bytes of headers", target, size)
			}
		}
	}
}
