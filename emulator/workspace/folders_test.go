package workspace

import (
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/databricks/databricks-sdk-go"
	ws "github.com/databricks/databricks-sdk-go/service/workspace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// devHome is the signed-in user's home folder, which the tests below try to reach as another principal.
const devHome = "/Users/dev@example.com"

// withDevApp starts a workspace in which dev@example.com keeps an app folder in its home, and returns dev's SDK
// client, external-service's (another principal, a service principal with a token for every API) and the data folder.
func withDevApp(t *testing.T) (*Workspace, *databricks.WorkspaceClient, *databricks.WorkspaceClient, string) {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	w, _ := startWorkspace(t, Options{DataDir: dataDir})
	dev := sdkClient(t, w, managerToken(t, w))
	require.NoError(t, dev.Workspace.MkdirsByPath(t.Context(), devHome+"/app"))
	require.NoError(t, dev.Workspace.Upload(t.Context(), devHome+"/app/main.go", strings.NewReader("package main\n")))
	return w, dev, m2mClient(t, w), dataDir
}

// assertDevAppUntouched checks that dev's app folder holds what withDevApp put there and nothing else, and that no
// file exists anywhere in the workspace but dev's main.go.
func assertDevAppUntouched(t *testing.T, dev *databricks.WorkspaceClient, dataDir string) {
	t.Helper()
	main, err := dev.Workspace.ReadFile(t.Context(), devHome+"/app/main.go")
	require.NoError(t, err)
	assert.Equal(t, "package main\n", string(main))
	var files []string
	require.NoError(t, filepath.WalkDir(filepath.Join(dataDir, "files"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(filepath.Join(dataDir, "files"), p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	}))
	assert.Equal(t, []string{"Users/dev@example.com/app/main.go"}, files)
}

// TestHomeFoldersArePrivate: another principal's home folder, through the SDK's own Workspace client and the CLI's
// import-file. Every read answers 404 exactly as for a path that does not exist, every write 403, whether the object
// is there or not, under /Users and under /Workspace/Users alike.
func TestHomeFoldersArePrivate(t *testing.T) {
	t.Parallel()
	w, dev, other, dataDir := withDevApp(t)
	ctx := t.Context()
	otherToken := m2mToken(t, w, "external-service")
	for _, prefix := range []string{"", "/Workspace"} {
		for _, target := range []string{devHome, devHome + "/app", devHome + "/app/main.go", devHome + "/missing"} {
			p := prefix + target
			t.Run(p, func(t *testing.T) {
				missing := func(err error) {
					t.Helper()
					assertAPIError(t, err, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
					assert.Equal(t, fmt.Sprintf("Path (%s) doesn't exist.", p), apiError(t, err).Message,
						"the answer for what exists is the answer for what does not")
				}
				_, err := other.Workspace.GetStatusByPath(ctx, p)
				missing(err)
				_, err = other.Workspace.ListAll(ctx, ws.ListWorkspaceRequest{Path: p})
				missing(err)
				_, err = other.Workspace.Download(ctx, p)
				missing(err)
				_, err = other.Workspace.Export(ctx, ws.ExportRequest{Path: p, Format: ws.ExportFormatSource})
				missing(err)

				denied := func(err error) {
					t.Helper()
					assertAPIError(t, err, http.StatusForbidden, "PERMISSION_DENIED")
				}
				denied(other.Workspace.Upload(ctx, p+"/x.go", strings.NewReader("evil"), ws.UploadOverwrite()))
				denied(other.Workspace.Upload(ctx, p, strings.NewReader("evil"), ws.UploadOverwrite()))
				denied(other.Workspace.Import(ctx, ws.Import{Path: p + "/x.go", Overwrite: true,
					Content: base64.StdEncoding.EncodeToString([]byte("evil"))}))
				denied(other.Workspace.MkdirsByPath(ctx, p+"/evil"))
				denied(other.Workspace.Delete(ctx, ws.Delete{Path: p + "/x", Recursive: true}))
				if target != devHome {
					denied(other.Workspace.Delete(ctx, ws.Delete{Path: p, Recursive: true}))
				}
				status, code := importFile(t, w, otherToken, p, true, []byte("evil"))
				assert.Equal(t, http.StatusForbidden, status)
				assert.Equal(t, "PERMISSION_DENIED", code)
			})
		}
	}

	// A home folder is the workspace's: not even its owner deletes it.
	assertAPIError(t, other.Workspace.Delete(ctx, ws.Delete{Path: devHome, Recursive: true}),
		http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	assertAPIError(t, dev.Workspace.Delete(ctx, ws.Delete{Path: "/Workspace" + devHome, Recursive: true}),
		http.StatusBadRequest, "INVALID_PARAMETER_VALUE")

	// Listings show each principal its own home only, and the root its two folders.
	paths := func(c *databricks.WorkspaceClient, folder string) []string {
		t.Helper()
		objects, err := c.Workspace.ListAll(ctx, ws.ListWorkspaceRequest{Path: folder})
		require.NoError(t, err)
		var out []string
		for _, o := range objects {
			out = append(out, o.Path)
		}
		return out
	}
	assert.Equal(t, []string{homeOf(t, w, "external-service")}, paths(other, "/Users"))
	assert.Equal(t, []string{devHome}, paths(dev, "/Users"))
	assert.ElementsMatch(t, []string{"/Workspace/Shared", "/Workspace/Users"}, paths(other, "/Workspace"))
	assertDevAppUntouched(t, dev, dataDir)
}

// TestOwnHomeAndSharedAreWritable: a principal manages its own home, under either spelling, and everyone manages what
// is in /Shared, which is how two principals share files. /Shared itself and /Users are the workspace's.
func TestOwnHomeAndSharedAreWritable(t *testing.T) {
	t.Parallel()
	w, dev, other, dataDir := withDevApp(t)
	ctx := t.Context()

	home := homeOf(t, w, "external-service")
	info, err := other.Workspace.GetStatusByPath(ctx, "/Workspace"+home)
	require.NoError(t, err, "a workspace gives every principal its home folder from the start")
	assert.Equal(t, ws.ObjectTypeDirectory, info.ObjectType)
	require.NoError(t, other.Workspace.MkdirsByPath(ctx, "/Workspace"+home+"/app"))
	require.NoError(t, other.Workspace.Upload(ctx, home+"/app/app.yaml", strings.NewReader("command: [x]\n")))
	rc, err := other.Workspace.Download(ctx, "/Workspace"+home+"/app/app.yaml")
	require.NoError(t, err)
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	assert.Equal(t, "command: [x]\n", string(data))
	require.NoError(t, other.Workspace.Delete(ctx, ws.Delete{Path: "/Workspace" + home + "/app", Recursive: true}))
	// A home folder is a folder, even before it exists (an app's service principal, made later, has none yet).
	require.NoError(t, os.Remove(filepath.Join(dataDir, "files", filepath.FromSlash(home))))
	assertAPIError(t, other.Workspace.Upload(ctx, home, strings.NewReader("x"), ws.UploadOverwrite()),
		http.StatusBadRequest, codeAlreadyExists)
	require.NoError(t, other.Workspace.MkdirsByPath(ctx, home))

	const team = "/Workspace/Shared/team"
	require.NoError(t, other.Workspace.MkdirsByPath(ctx, team))
	require.NoError(t, other.Workspace.Upload(ctx, team+"/app.yaml", strings.NewReader("v1")))
	got, err := dev.Workspace.ReadFile(ctx, "/Shared/team/app.yaml")
	require.NoError(t, err, "what one principal puts in /Shared, another reads")
	assert.Equal(t, "v1", string(got))
	require.NoError(t, dev.Workspace.Upload(ctx, "/Shared/team/app.yaml", strings.NewReader("v2"), ws.UploadOverwrite()))
	objects, err := other.Workspace.ListAll(ctx, ws.ListWorkspaceRequest{Path: team})
	require.NoError(t, err)
	require.Len(t, objects, 1)
	assert.Equal(t, int64(2), objects[0].Size)
	require.NoError(t, other.Workspace.Delete(ctx, ws.Delete{Path: team, Recursive: true}))

	assertAPIError(t, dev.Workspace.Delete(ctx, ws.Delete{Path: "/Shared", Recursive: true}),
		http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	assertAPIError(t, dev.Workspace.Delete(ctx, ws.Delete{Path: "/Workspace/Users", Recursive: true}),
		http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	// Only workspace admins add to the root or to /Users, and the emulator has none.
	assertAPIError(t, dev.Workspace.MkdirsByPath(ctx, "/Workspace/team"), http.StatusForbidden, "PERMISSION_DENIED")
	assertAPIError(t, dev.Workspace.Upload(ctx, "/Users/notes.txt", strings.NewReader("x")),
		http.StatusForbidden, "PERMISSION_DENIED")
}

// TestPathTricksCannotReachAnotherHome: dot segments, doubled slashes, encoded separators, another letter case, a
// second /Workspace and a name that merely starts with one's own never reach dev's home: each is refused before the
// file system is asked, and no file appears anywhere.
func TestPathTricksCannotReachAnotherHome(t *testing.T) {
	t.Parallel()
	w, dev, _, dataDir := withDevApp(t)
	token := m2mToken(t, w, "external-service")
	mine := homeOf(t, w, "external-service")
	getStatus := func(p string) string { return w.URL() + PathWorkspaceGetStatus + "?path=" + url.QueryEscape(p) }
	export := func(p string) string {
		return w.URL() + PathWorkspaceExport + "?direct_download=true&path=" + url.QueryEscape(p)
	}
	importFileURL := func(rawPath string) string { return w.URL() + PathImportFile + rawPath + "?overwrite=true" }
	tests := []struct {
		name, method, target, body string
		status                     int
		code                       string
	}{
		{"up from my home", http.MethodGet, getStatus(mine + "/../dev@example.com/app/main.go"), "", 400, "INVALID_PARAMETER_VALUE"},
		{"up from /Shared", http.MethodGet, getStatus("/Shared/../Users/dev@example.com/app"), "", 400, "INVALID_PARAMETER_VALUE"},
		{"a doubled slash", http.MethodGet, getStatus("/Users//dev@example.com/app"), "", 400, "INVALID_PARAMETER_VALUE"},
		{"a trailing slash", http.MethodGet, getStatus(devHome + "/"), "", 400, "INVALID_PARAMETER_VALUE"},
		{"lower-case users", http.MethodGet, getStatus("/users/dev@example.com/app/main.go"), "", 404, "RESOURCE_DOES_NOT_EXIST"},
		{"an upper-case user name", http.MethodGet, getStatus("/Users/DEV@example.com/app/main.go"), "", 404, "RESOURCE_DOES_NOT_EXIST"},
		{"an upper-case user name, exported", http.MethodGet, export("/Workspace/Users/Dev@Example.com/app/main.go"), "", 404, "RESOURCE_DOES_NOT_EXIST"},
		{"/Workspace twice", http.MethodGet, getStatus("/Workspace/Workspace/Users/dev@example.com/app"), "", 404, "RESOURCE_DOES_NOT_EXIST"},
		{"encoded dot segments", http.MethodPost, importFileURL(mine + "/%2e%2e/dev@example.com/app/main.go"), "evil", 400, "INVALID_PARAMETER_VALUE"},
		{"encoded slashes", http.MethodPost, importFileURL(mine + "%2F..%2Fdev@example.com%2Fapp%2Fmain.go"), "evil", 400, "INVALID_PARAMETER_VALUE"},
		{"a doubled slash, uploaded", http.MethodPost, importFileURL("/Users//dev@example.com/app/main.go"), "evil", 400, "INVALID_PARAMETER_VALUE"},
		{"lower-case users, uploaded", http.MethodPost, importFileURL("/users/dev@example.com/app/main.go"), "evil", 403, "PERMISSION_DENIED"},
		{"an upper-case user name, uploaded", http.MethodPost, importFileURL("/Workspace/Users/DEV@EXAMPLE.COM/app/main.go"), "evil", 403, "PERMISSION_DENIED"},
		{"a name that starts with mine", http.MethodPost, importFileURL(mine + "-evil/x"), "evil", 403, "PERMISSION_DENIED"},
		{"a name that starts with dev's", http.MethodPost, importFileURL(devHome + ".evil/x"), "evil", 403, "PERMISSION_DENIED"},
		{"/Workspace twice, uploaded", http.MethodPost, importFileURL("/Workspace/Workspace/Users/dev@example.com/app/main.go"), "evil", 403, "PERMISSION_DENIED"},
		{"an upper-case user name, mkdirs", http.MethodPost, w.URL() + PathWorkspaceMkdirs, `{"path":"/Users/Dev@example.com/evil"}`, 403, "PERMISSION_DENIED"},
		{"lower-case users, deleted", http.MethodPost, w.URL() + PathWorkspaceDelete, `{"path":"/users/dev@example.com/app","recursive":true}`, 403, "PERMISSION_DENIED"},
		{"up from my home, deleted", http.MethodPost, w.URL() + PathWorkspaceDelete, `{"path":"` + mine + `/../dev@example.com/app","recursive":true}`, 400, "INVALID_PARAMETER_VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			status, code, data := sendRaw(t, tt.method, tt.target, token, body)
			assert.Equal(t, tt.status, status, string(data))
			assert.Equal(t, tt.code, code, string(data))
		})
	}
	assertDevAppUntouched(t, dev, dataDir)
}
