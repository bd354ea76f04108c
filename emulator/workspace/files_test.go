package workspace

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/databricks/databricks-sdk-go"
	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/databricks/databricks-sdk-go/config"
	ws "github.com/databricks/databricks-sdk-go/service/workspace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
)

// homeOf is a service principal's home folder, /Users/<application id>: the one folder it may write besides /Shared.
func homeOf(t *testing.T, w *Workspace, spName string) string {
	t.Helper()
	sp, ok := w.State().ServicePrincipals[spName]
	require.True(t, ok, spName)
	return "/Users/" + sp.ClientID
}

// m2mClient is databricks-sdk-go as an external service would configure it: OAuth M2M with a service principal.
func m2mClient(t *testing.T, w *Workspace) *databricks.WorkspaceClient {
	t.Helper()
	sp := w.State().ServicePrincipals["external-service"]
	c, err := databricks.NewWorkspaceClient(&databricks.Config{Host: w.URL(), AuthType: "oauth-m2m",
		ClientID: sp.ClientID, ClientSecret: sp.ClientSecret, RetryTimeoutSeconds: 5,
		Loaders: []config.Loader{sdkconfig.ExplicitOnly{}}})
	require.NoError(t, err)
	return c
}

// assertAPIError checks that err is the workspace's error with this status and code.
func assertAPIError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var apiErr *apierr.APIError
	require.True(t, errors.As(err, &apiErr), "want an API error, got %v", err)
	assert.Equal(t, status, apiErr.StatusCode, apiErr.Message)
	assert.Equal(t, code, apiErr.ErrorCode, apiErr.Message)
}

// sendRaw makes a plain request, as the CLI's files client does, and returns the status and the error code if any.
func sendRaw(t *testing.T, method, target, token string, body io.Reader) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, body)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if method == http.MethodPost && !strings.Contains(target, PathImportFile) {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var e struct {
		Code string `json:"error_code"`
	}
	_ = json.Unmarshal(data, &e)
	return resp.StatusCode, e.Code, data
}

func importFile(t *testing.T, w *Workspace, token, wsPath string, overwrite bool, content []byte) (int, string) {
	t.Helper()
	status, code, _ := sendRaw(t, http.MethodPost,
		fmt.Sprintf("%s%s%s?overwrite=%t", w.URL(), PathImportFile, wsPath, overwrite), token, bytes.NewReader(content))
	return status, code
}

// importFileStatus is importFile for goroutines other than the test's: it reports failures instead of stopping.
func importFileStatus(ctx context.Context, w *Workspace, token, wsPath string, overwrite bool, content []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		fmt.Sprintf("%s%s%s?overwrite=%t", w.URL(), PathImportFile, wsPath, overwrite), bytes.NewReader(content))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func TestWorkspaceFilesWithTheSDK(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	c := m2mClient(t, w)
	ctx := t.Context()
	app := "/Workspace" + homeOf(t, w, "external-service") + "/my-app"

	require.NoError(t, c.Workspace.MkdirsByPath(ctx, app+"/static"))
	info, err := c.Workspace.GetStatusByPath(ctx, app)
	require.NoError(t, err)
	assert.Equal(t, ws.ObjectTypeDirectory, info.ObjectType)
	assert.Equal(t, app, info.Path)
	assert.NotZero(t, info.ObjectId)

	// Upload is multipart/form-data; the same object answers under /Users as under /Workspace/Users.
	main := []byte("package main\n\nfunc main() {}\n")
	require.NoError(t, c.Workspace.Upload(ctx, app+"/main.go", bytes.NewReader(main)))
	rc, err := c.Workspace.Download(ctx, strings.TrimPrefix(app, "/Workspace")+"/main.go")
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	assert.Equal(t, main, got)

	assertAPIError(t, c.Workspace.Upload(ctx, app+"/main.go", strings.NewReader("again")),
		http.StatusBadRequest, codeAlreadyExists)
	main = []byte("package main // v2\n")
	require.NoError(t, c.Workspace.Upload(ctx, app+"/main.go", bytes.NewReader(main), ws.UploadOverwrite()))

	// Import and Export are JSON with base64 content.
	appYAML := []byte("command: [\"./app\"]\n")
	require.NoError(t, c.Workspace.Import(ctx, ws.Import{Path: app + "/app.yaml", Format: ws.ImportFormatAuto,
		Content: base64.StdEncoding.EncodeToString(appYAML)}))
	exported, err := c.Workspace.Export(ctx, ws.ExportRequest{Path: app + "/app.yaml", Format: ws.ExportFormatSource})
	require.NoError(t, err)
	gotYAML, err := exported.Bytes()
	require.NoError(t, err)
	assert.Equal(t, appYAML, gotYAML)

	info, err = c.Workspace.GetStatusByPath(ctx, app+"/main.go")
	require.NoError(t, err)
	assert.Equal(t, ws.ObjectTypeFile, info.ObjectType)
	assert.Equal(t, int64(len(main)), info.Size)
	assert.NotZero(t, info.ModifiedAt)

	objects, err := c.Workspace.ListAll(ctx, ws.ListWorkspaceRequest{Path: app})
	require.NoError(t, err)
	kinds := map[string]ws.ObjectType{}
	for _, o := range objects {
		kinds[o.Path] = o.ObjectType
	}
	assert.Equal(t, map[string]ws.ObjectType{app + "/app.yaml": ws.ObjectTypeFile, app + "/main.go": ws.ObjectTypeFile,
		app + "/static": ws.ObjectTypeDirectory}, kinds)
	_, err = c.Workspace.ListAll(ctx, ws.ListWorkspaceRequest{Path: app + "/missing"})
	assert.True(t, apierr.IsMissing(err), "list a missing folder: %v", err)

	assertAPIError(t, c.Workspace.Delete(ctx, ws.Delete{Path: app}), http.StatusBadRequest, codeDirectoryNotEmpty)
	require.NoError(t, c.Workspace.Delete(ctx, ws.Delete{Path: app + "/main.go"}))
	require.NoError(t, c.Workspace.Delete(ctx, ws.Delete{Path: app + "/static"}))
	require.NoError(t, c.Workspace.Delete(ctx, ws.Delete{Path: app, Recursive: true}))
	_, err = c.Workspace.GetStatusByPath(ctx, app)
	assertAPIError(t, err, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	assertAPIError(t, c.Workspace.Delete(ctx, ws.Delete{Path: app}), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
}

// TestImportFile follows the CLI's sync: import-file, mkdirs on 404, retry; overwrite=false is the deploy lock.
func TestImportFile(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	c := m2mClient(t, w)
	token := m2mToken(t, w, "external-service")
	root := "/Workspace" + homeOf(t, w, "external-service") + "/.bundle/dev"

	status, code := importFile(t, w, token, root+"/state/deploy.lock", false, []byte("me"))
	assert.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, "RESOURCE_DOES_NOT_EXIST", code)
	require.NoError(t, c.Workspace.MkdirsByPath(t.Context(), root+"/state"))
	status, _ = importFile(t, w, token, root+"/state/deploy.lock", false, []byte("me"))
	require.Equal(t, http.StatusOK, status)
	status, code = importFile(t, w, token, root+"/state/deploy.lock", false, []byte("someone else"))
	assert.Equal(t, http.StatusConflict, status)
	assert.Equal(t, codeAlreadyExists, code)
	status, _ = importFile(t, w, token, root+"/state/deploy.lock", true, []byte("me again"))
	require.Equal(t, http.StatusOK, status)
	lock, err := c.Workspace.ReadFile(t.Context(), root+"/state/deploy.lock")
	require.NoError(t, err)
	assert.Equal(t, "me again", string(lock))

	// A 9 MiB part, as bundles upload them, comes back byte for byte.
	part := randomBytes(t, 9<<20)
	status, _ = importFile(t, w, token, root+"/state/part-0001.bin", false, part)
	require.Equal(t, http.StatusOK, status)
	rc, err := c.Workspace.Download(t.Context(), root+"/state/part-0001.bin")
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(part, got), "the 9 MiB part changed on the way")

	// bundle validate asks with return_export_info; the answer is the same object.
	status, _, body := sendRaw(t, http.MethodGet, w.URL()+PathWorkspaceGetStatus+"?return_export_info=true&path="+
		url.QueryEscape(root+"/state/part-0001.bin"), token, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	var info objectInfo
	require.NoError(t, json.Unmarshal(body, &info))
	assert.Equal(t, objectInfo{ObjectType: ObjectTypeFile, Path: root + "/state/part-0001.bin", ObjectID: info.ObjectID,
		Size: 9 << 20, ModifiedAt: info.ModifiedAt}, info)
}

// TestImportFileLockIsExclusive takes the deploy lock from many clients at once: exactly one gets it.
func TestImportFileLockIsExclusive(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	token := m2mToken(t, w, "external-service")
	x := homeOf(t, w, "external-service")
	require.NoError(t, m2mClient(t, w).Workspace.MkdirsByPath(t.Context(), x+"/state"))

	const clients = 8
	statuses := make([]int, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			statuses[i], errs[i] = importFileStatus(t.Context(), w, token, x+"/state/deploy.lock", false, []byte(fmt.Sprint(i)))
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	assert.Equal(t, map[int]int{http.StatusOK: 1, http.StatusConflict: clients - 1}, count)
}

// TestExportNeverSeesHalfAFile overwrites a file while exporting it: every export is one whole version.
func TestExportNeverSeesHalfAFile(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	c := m2mClient(t, w)
	token := m2mToken(t, w, "external-service")
	x := homeOf(t, w, "external-service")
	const size = 1 << 20
	status, _ := importFile(t, w, token, x+"/data.bin", true, bytes.Repeat([]byte{'a'}, size))
	require.Equal(t, http.StatusOK, status)

	done := make(chan error, 1)
	go func() {
		var errs []error
		for i := range 10 {
			status, err := importFileStatus(t.Context(), w, token, x+"/data.bin", true, bytes.Repeat([]byte{byte('a' + i%2)}, size))
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("overwrite %d: status %d", i, status)
			}
			errs = append(errs, err)
		}
		done <- errors.Join(errs...)
	}()
	for reads := 0; ; reads++ {
		data, err := c.Workspace.ReadFile(t.Context(), x+"/data.bin")
		require.NoError(t, err)
		require.Len(t, data, size)
		assert.Equal(t, bytes.Repeat(data[:1], size), data, "export %d mixes two versions", reads)
		select {
		case err := <-done:
			require.NoError(t, err)
			return
		default:
		}
	}
}

func TestWorkspaceFilesRefusals(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	w, logs := startWorkspace(t, Options{DataDir: filepath.Join(parent, "data")})
	token := m2mToken(t, w, "external-service")
	sqlToken := scopedToken(t, w, "external-service", "sql")
	x := homeOf(t, w, "external-service")
	status, _, _ := sendRaw(t, http.MethodPost, w.URL()+PathWorkspaceMkdirs, token,
		strings.NewReader(`{"path":"/Workspace`+x+`/app"}`))
	require.Equal(t, http.StatusOK, status)
	status, _ = importFile(t, w, token, x+"/app/main.go", false, []byte("package main"))
	require.Equal(t, http.StatusOK, status)

	getStatus := func(p string) string { return w.URL() + PathWorkspaceGetStatus + "?path=" + url.QueryEscape(p) }
	importFileURL := func(rawPath string) string { return w.URL() + PathImportFile + rawPath }
	type refusal struct {
		name, method, target, token, body string
		status                            int
		code                              string
	}
	tests := []refusal{
		{"no token", http.MethodGet, getStatus(x), "", "", http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"import-file without a token", http.MethodPost, importFileURL(x + "/app/a"), "", "x",
			http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"import-file with a token without the workspace scope", http.MethodPost, importFileURL(x + "/app/a"), sqlToken, "x",
			http.StatusForbidden, "PERMISSION_DENIED"},
		{"token without the workspace scope", http.MethodGet, getStatus(x), sqlToken, "",
			http.StatusForbidden, "PERMISSION_DENIED"},
		{"missing object", http.MethodGet, getStatus(x + "/nope"), token, "", http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST"},
		{"below a file", http.MethodGet, getStatus(x + "/app/main.go/x"), token, "",
			http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST"},
		{"missing parent", http.MethodPost, importFileURL(x + "/nope/main.go"), token, "x",
			http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST"},
		{"existing file without overwrite", http.MethodPost, importFileURL(x + "/app/main.go?overwrite=false"), token, "x",
			http.StatusConflict, codeAlreadyExists},
		{"a folder in the way", http.MethodPost, importFileURL(x + "/app?overwrite=true"), token, "x",
			http.StatusConflict, codeAlreadyExists},
		{"a file in the way of mkdirs", http.MethodPost, w.URL() + PathWorkspaceMkdirs, token,
			`{"path":"` + x + `/app/main.go/sub"}`, http.StatusBadRequest, codeAlreadyExists},
		{"non-empty folder without recursive", http.MethodPost, w.URL() + PathWorkspaceDelete, token,
			`{"path":"` + x + `/app"}`, http.StatusBadRequest, codeDirectoryNotEmpty},
		{"the root", http.MethodPost, w.URL() + PathWorkspaceDelete, token, `{"path":"/Workspace","recursive":true}`,
			http.StatusBadRequest, "INVALID_PARAMETER_VALUE"},
		{"a bad overwrite", http.MethodPost, importFileURL(x + "/app/a?overwrite=maybe"), token, "x",
			http.StatusBadRequest, "INVALID_PARAMETER_VALUE"},
		{"a folder exported", http.MethodGet, w.URL() + PathWorkspaceExport + "?path=" + x + "/app", token, "",
			http.StatusBadRequest, "INVALID_PARAMETER_VALUE"},
		{"a notebook format", http.MethodGet, w.URL() + PathWorkspaceExport + "?path=" + x + "/app/main.go&format=DBC", token, "",
			http.StatusBadRequest, "INVALID_PARAMETER_VALUE"},
		{"bad base64", http.MethodPost, w.URL() + PathWorkspaceImport, token, `{"path":"` + x + `/app/b","content":"!!"}`,
			http.StatusBadRequest, "INVALID_PARAMETER_VALUE"},
		{"malformed JSON", http.MethodPost, w.URL() + PathWorkspaceDelete, token, `{"path":`,
			http.StatusBadRequest, "INVALID_PARAMETER_VALUE"},
	}
	// Paths that try to leave the files folder, or that no workspace accepts, are refused before any file call.
	for _, p := range []string{"/Workspace/../../etc/passwd", "/Workspace" + x + "/../../../outside", x[1:] + "/app",
		"", x + "/./app", "/Users//" + x[len("/Users/"):], x + "/", x + "\\..\\..\\outside", x + "/a\x00b", x + "/a\nb",
		x + "/" + uploadPrefix + "y", "/Users/" + strings.Repeat("a", 256)} {
		tests = append(tests,
			refusal{"get-status " + p, http.MethodGet, getStatus(p), token, "", http.StatusBadRequest, "INVALID_PARAMETER_VALUE"},
			refusal{"mkdirs " + p, http.MethodPost, w.URL() + PathWorkspaceMkdirs, token,
				fmt.Sprintf(`{"path":%q}`, p), http.StatusBadRequest, "INVALID_PARAMETER_VALUE"})
	}
	for _, raw := range []string{"/Workspace/../../outside", "/Workspace/%2e%2e/%2E%2E/outside",
		x + "/%2e%2e%2f%2e%2e%2f%2e%2e%2foutside", x + "/..%5c..%5c..%5coutside", x + "/a%00b", x + "//a"} {
		tests = append(tests, refusal{"import-file " + raw, http.MethodPost, importFileURL(raw + "?overwrite=true"), token, "pwned",
			http.StatusBadRequest, "INVALID_PARAMETER_VALUE"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			status, code, data := sendRaw(t, tt.method, tt.target, tt.token, body)
			assert.Equal(t, tt.status, status, string(data))
			assert.Equal(t, tt.code, code, string(data))
		})
	}

	// Nothing was written outside the files folder, and inside it only what the test made.
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "data", entries[0].Name())
	var written []string
	require.NoError(t, filepath.WalkDir(filepath.Join(parent, "data", "files"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			written = append(written, filepath.ToSlash(p[len(parent):]))
		}
		return err
	}))
	assert.Equal(t, []string{"/data/files" + x + "/app/main.go"}, written)
	assert.NotContains(t, logs.String(), token)
	assert.NotContains(t, logs.String(), sqlToken)
}

// TestMaxFileSize: 10 MiB is the limit, through import-file and through the SDK's Upload, and a refused file
// leaves nothing behind, not even a temp file.
func TestMaxFileSize(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	w, _ := startWorkspace(t, Options{DataDir: dataDir})
	c := m2mClient(t, w)
	token := m2mToken(t, w, "external-service")
	x := homeOf(t, w, "external-service")

	status, _ := importFile(t, w, token, x+"/limit.bin", false, make([]byte, MaxFileSize))
	assert.Equal(t, http.StatusOK, status)
	status, code := importFile(t, w, token, x+"/over.bin", false, make([]byte, MaxFileSize+1))
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, codeMaxFileSize, code)
	assertAPIError(t, c.Workspace.Upload(t.Context(), x+"/over.bin", bytes.NewReader(make([]byte, MaxFileSize+1))),
		http.StatusBadRequest, codeMaxFileSize)
	assertAPIError(t, c.Workspace.Import(t.Context(), ws.Import{Path: x + "/over.bin",
		Content: base64.StdEncoding.EncodeToString(make([]byte, MaxFileSize+1))}), http.StatusBadRequest, codeMaxFileSize)

	entries, err := os.ReadDir(filepath.Join(dataDir, "files", filepath.FromSlash(x)))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "limit.bin", entries[0].Name())
}

func TestCopyWorkspaceFolderAndObjectKind(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	c := m2mClient(t, w)
	ctx := t.Context()
	x := homeOf(t, w, "external-service")
	src := "/Workspace" + x + "/.bundle/dev/files"
	require.NoError(t, c.Workspace.MkdirsByPath(ctx, src+"/static/empty"))
	require.NoError(t, c.Workspace.Upload(ctx, src+"/app.yaml", strings.NewReader("command: [app]\n")))
	require.NoError(t, c.Workspace.Upload(ctx, src+"/static/index.html", strings.NewReader("<h1>hi</h1>\n")))

	dest := filepath.Join(t.TempDir(), "deployment")
	require.NoError(t, w.files.copyWorkspaceFolder(x+"/.bundle/dev/files", dest))
	got := map[string]string{}
	require.NoError(t, filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		info, err := d.Info()
		require.NoError(t, err)
		rel, _ := filepath.Rel(dest, p)
		got[filepath.ToSlash(rel)] = info.Mode().String()
		return nil
	}))
	assert.Equal(t, map[string]string{".": "drwxr-xr-x", "app.yaml": "-rw-r--r--", "static": "drwxr-xr-x",
		"static/empty": "drwxr-xr-x", "static/index.html": "-rw-r--r--"}, got)
	html, err := os.ReadFile(filepath.Join(dest, "static", "index.html"))
	require.NoError(t, err)
	assert.Equal(t, "<h1>hi</h1>\n", string(html))

	err = w.files.copyWorkspaceFolder(src+"/missing", filepath.Join(t.TempDir(), "d"))
	assert.ErrorContains(t, err, src+"/missing")
	err = w.files.copyWorkspaceFolder(src+"/app.yaml", filepath.Join(t.TempDir(), "d"))
	assert.ErrorContains(t, err, src+"/app.yaml")
	assert.ErrorContains(t, w.files.copyWorkspaceFolder("/Workspace/../..", t.TempDir()), "invalid workspace path")

	// objectKind answers for one principal: what it may not read is missing, as for the Apps API's deployments.
	owner, _ := w.dir.subject(w.State().ServicePrincipals["external-service"].ClientID)
	dev, _ := w.dir.user("dev@example.com")
	kinds := []struct {
		who        principal
		path, kind string
		wantErr    bool
	}{
		{owner, src, ObjectTypeDirectory, false},
		{owner, x + "/.bundle/dev/files/app.yaml", ObjectTypeFile, false},
		{owner, "/", ObjectTypeDirectory, false},
		{owner, "/Workspace/Shared", ObjectTypeDirectory, false},
		{owner, src + "/missing", "", true},
		{owner, "relative", "", true},
		{owner, "/Users/../etc", "", true},
		{owner, "/Users/dev@example.com", "", true},
		{dev, "/Users/dev@example.com", ObjectTypeDirectory, false},
		{dev, src, "", true},
	}
	for _, k := range kinds {
		kind, err := w.files.objectKind(k.who, k.path)
		assert.Equal(t, k.kind, kind, k.path)
		assert.Equal(t, k.wantErr, err != nil, "%s: %v", k.path, err)
	}
}
