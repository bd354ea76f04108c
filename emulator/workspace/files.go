package workspace

// The workspace files APIs: what `databricks sync`, `databricks bundle deploy` and the SDK's w.Workspace client
// call to put an app's source into the workspace. Objects live on disk under <data dir>/files, one file or folder
// per workspace object, and every file operation goes through an os.Root so that no request path, however
// crafted, reaches outside that folder. Who may read and write where (each principal its own home folder, everyone
// /Shared) is folders.go's.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// Paths of the workspace files APIs.
const (
	PathWorkspaceGetStatus = "/api/2.0/workspace/get-status"
	PathWorkspaceList      = "/api/2.0/workspace/list"
	PathWorkspaceMkdirs    = "/api/2.0/workspace/mkdirs"
	PathWorkspaceDelete    = "/api/2.0/workspace/delete"
	PathWorkspaceImport    = "/api/2.0/workspace/import"
	PathWorkspaceExport    = "/api/2.0/workspace/export"
	PathImportFile         = "/api/2.0/workspace-files/import-file" // followed by the file's absolute path
)

// MaxFileSize is the largest workspace file the emulator accepts: 10 MiB, the per-file limit of a Databricks App's
// source. A bigger file would upload to a real workspace yet fail at deployment, so refusing it at upload tells the
// developer at the earliest moment.
const MaxFileSize = 10 << 20

// Object types of get-status and list.
const (
	ObjectTypeDirectory = "DIRECTORY"
	ObjectTypeFile      = "FILE"
)

// Error codes the files APIs answer with, as a workspace spells them.
const (
	codeAlreadyExists     = "RESOURCE_ALREADY_EXISTS"
	codeDirectoryNotEmpty = "DIRECTORY_NOT_EMPTY"
	codeMaxFileSize       = "MAX_FILE_SIZE_EXCEEDED"
)

// workspaceFiles serves the workspace files APIs. Its state is on disk, under dir; what it counts in memory (the
// bytes of each home folder, the uploads in progress) is the disk's, under the disk's locks (uploads.go).
type workspaceFiles struct {
	dir  string     // <data dir>/files
	who  *directory // the principals whose home folders exist from the start
	disk *diskUse
}

const (
	maxPathLength    = 4096
	maxSegmentLength = 255 // the longest file name most file systems store
	maxJSONBody      = 64 << 10
	maxFormField     = 8 << 10
	// uploadTimeout bounds how long a client may take to send a file, so a stalled upload cannot hold a
	// connection and a temp file forever.
	uploadTimeout = 2 * time.Minute
	// uploadPrefix names the temp files of uploads in progress. Request paths may not use it, and listings hide it.
	uploadPrefix = ".emulator-upload-"
)

func (wf *workspaceFiles) routes(r chi.Router) {
	r.Get(PathWorkspaceGetStatus, wf.handleGetStatus())
	r.Get(PathWorkspaceList, wf.handleList())
	r.Post(PathWorkspaceMkdirs, wf.handleMkdirs())
	r.Post(PathWorkspaceDelete, wf.handleDelete())
	r.With(wf.disk.boundUploads).Post(PathWorkspaceImport, wf.handleImport())
	r.Get(PathWorkspaceExport, wf.handleExport())
	r.With(wf.disk.boundUploads).Post(PathImportFile+"/*", wf.handleImportFile())
}

// objectPath is a validated workspace path: asked is what the client sent, rel is where the object lives inside the
// files folder ("." for the root). /Workspace/Users/x and /Users/x are one object, as on Databricks.
type objectPath struct {
	asked string
	rel   string
}

// parseObjectPath refuses, before any file system call, every path that is not a plain absolute workspace path.
func parseObjectPath(p string) (objectPath, *jsonhttp.Error) {
	bad := func(why string) (objectPath, *jsonhttp.Error) {
		return objectPath{}, &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
			Message: fmt.Sprintf("invalid workspace path %q: %s", p, why),
			Fix:     "send an absolute path without . or .. segments, such as /Workspace/Users/<you>/my-app"}
	}
	switch {
	case p == "":
		return objectPath{}, &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
			Message: "path is required", Fix: "send the object's absolute path, such as /Workspace/Users/<you>/my-app"}
	case len(p) > maxPathLength:
		return bad(fmt.Sprintf("longer than %d bytes", maxPathLength))
	case !utf8.ValidString(p):
		return bad("not valid UTF-8")
	case !strings.HasPrefix(p, "/"):
		return bad("not absolute")
	case p == "/":
		return objectPath{asked: p, rel: "."}, nil
	}
	segs := strings.Split(p[1:], "/")
	for _, s := range segs {
		switch {
		case s == "":
			return bad("empty segment")
		case s == "." || s == "..":
			return bad("a . or .. segment")
		case strings.ContainsRune(s, '\\'):
			return bad("a backslash")
		case strings.ContainsFunc(s, unicode.IsControl):
			return bad("a control character")
		case len(s) > maxSegmentLength:
			return bad(fmt.Sprintf("a name longer than %d bytes", maxSegmentLength))
		case strings.HasPrefix(s, uploadPrefix):
			return bad("a name starting with " + uploadPrefix + ", which the emulator keeps for uploads in progress")
		}
	}
	if segs[0] == "Workspace" {
		segs = segs[1:]
	}
	if len(segs) == 0 {
		return objectPath{asked: p, rel: "."}, nil
	}
	return objectPath{asked: p, rel: strings.Join(segs, "/")}, nil
}

// child is the path of an entry of folder p, spelled the way the client spelled p.
func (p objectPath) child(name string) objectPath {
	return objectPath{asked: strings.TrimSuffix(p.asked, "/") + "/" + name, rel: path.Join(p.rel, name)}
}

// openFiles opens the files folder, creating it on first use. Each request opens its own root: an open root is one
// file descriptor, and nothing has to be closed when the workspace stops.
func (wf *workspaceFiles) openFiles() (*os.Root, error) {
	if err := os.MkdirAll(wf.dir, 0o755); err != nil {
		return nil, fmt.Errorf("workspace files folder: %w", err)
	}
	return os.OpenRoot(wf.dir)
}

// objectInfo is the ObjectInfo of the Workspace API.
type objectInfo struct {
	ObjectType string `json:"object_type"`
	Path       string `json:"path"`
	ObjectID   int64  `json:"object_id"`
	Size       int64  `json:"size,omitempty"`
	ModifiedAt int64  `json:"modified_at,omitempty"`
}

func newObjectInfo(p objectPath, fi fs.FileInfo) objectInfo {
	info := objectInfo{ObjectType: ObjectTypeDirectory, Path: p.asked, ObjectID: objectID(p.rel)}
	if !fi.IsDir() {
		info.ObjectType, info.Size, info.ModifiedAt = ObjectTypeFile, fi.Size(), fi.ModTime().UnixMilli()
	}
	return info
}

// objectID derives a stable id from where the object lives, so both spellings of a path share it. It stays below
// 2^53 so JavaScript clients read it exactly.
func objectID(rel string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(rel))
	return int64(h.Sum64()&(1<<53-1)) | 1
}

// statObject returns what is at p, following no symlink: the API never makes one, so anything else is not an object.
func statObject(root *os.Root, p objectPath) (fs.FileInfo, *jsonhttp.Error) {
	fi, err := root.Lstat(p.rel)
	switch {
	// A lookup through a file ("/a/file/b") is ENOTDIR: for the API that path simply does not exist.
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR), err == nil && !fi.IsDir() && !fi.Mode().IsRegular():
		return nil, notFound(p)
	case err != nil:
		return nil, internalError("stat", p, err)
	}
	return fi, nil
}

func notFound(p objectPath) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
		Message: fmt.Sprintf("Path (%s) doesn't exist.", p.asked)}
}

func internalError(op string, p objectPath, err error) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusInternalServerError, Code: jsonhttp.CodeInternal,
		Message: fmt.Sprintf("%s %s: %v", op, p.asked, err)}
}

func tooBig() *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusBadRequest, Code: codeMaxFileSize,
		Message: fmt.Sprintf("the file is larger than %d bytes, the per-file limit of a Databricks App", MaxFileSize),
		Fix:     "keep large data out of the app's source: put it in a volume or a table"}
}

// lookup opens the files folder and stats the object at p, whoever asks. The caller closes the root.
func (wf *workspaceFiles) lookup(p objectPath) (*os.Root, fs.FileInfo, *jsonhttp.Error) {
	root, err := wf.openFiles()
	if err != nil {
		return nil, nil, internalError("open", p, err)
	}
	fi, serr := statObject(root, p)
	if serr != nil {
		_ = root.Close()
		return nil, nil, serr
	}
	return root, fi, nil
}

// lookupFor parses the path a client sent and looks it up for who: what who may not read is missing for them. The
// caller closes the root.
func (wf *workspaceFiles) lookupFor(who principal, asked string) (*os.Root, objectPath, fs.FileInfo, *jsonhttp.Error) {
	p, jerr := parseObjectPath(asked)
	if jerr == nil {
		jerr = mayRead(who, p)
	}
	if jerr != nil {
		return nil, p, nil, jerr
	}
	root, fi, jerr := wf.lookup(p)
	return root, p, fi, jerr
}

func (wf *workspaceFiles) handleGetStatus() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		// return_export_info only adds fields the emulator does not model; the answer is the same without it.
		root, p, fi, jerr := wf.lookupFor(authFrom(r.Context()).principal, r.URL.Query().Get("path"))
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		defer root.Close()
		jsonhttp.Write(rw, http.StatusOK, newObjectInfo(p, fi))
	}
}

func (wf *workspaceFiles) handleList() http.HandlerFunc {
	type response struct {
		Objects []objectInfo `json:"objects"`
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		who := authFrom(r.Context()).principal
		root, p, fi, jerr := wf.lookupFor(who, r.URL.Query().Get("path"))
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		defer root.Close()
		if !fi.IsDir() {
			// As on Databricks: listing a file lists the file itself.
			jsonhttp.Write(rw, http.StatusOK, response{Objects: []objectInfo{newObjectInfo(p, fi)}})
			return
		}
		entries, err := fs.ReadDir(root.FS(), p.rel)
		if err != nil {
			jsonhttp.WriteError(rw, internalError("list", p, err))
			return
		}
		resp := response{Objects: []objectInfo{}}
		for _, e := range entries {
			info, err := e.Info()
			child := p.child(e.Name())
			if err != nil || !listable(e.Name(), info) || accessTo(who, child) == accessNone {
				continue // removed meanwhile, an upload in progress, nothing the API made, or another's home
			}
			resp.Objects = append(resp.Objects, newObjectInfo(child, info))
		}
		jsonhttp.Write(rw, http.StatusOK, resp)
	}
}

// listable says whether a folder entry is an object of the API: a folder or a regular file with a valid name.
func listable(name string, fi fs.FileInfo) bool {
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		return false
	}
	_, perr := parseObjectPath("/" + name)
	return perr == nil
}

func (wf *workspaceFiles) handleMkdirs() http.HandlerFunc {
	type request struct {
		Path string `json:"path"`
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		var req request
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxJSONBody, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		p, jerr := parseObjectPath(req.Path)
		if jerr == nil {
			jerr = mayWrite(authFrom(r.Context()).principal, p)
		}
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		root, err := wf.openFiles()
		if err != nil {
			jsonhttp.WriteError(rw, internalError("mkdirs", p, err))
			return
		}
		defer root.Close()
		// Find a file in the way first: MkdirAll's error for it does not say which part of the path it is.
		for prefix := p; prefix.rel != "."; prefix = prefix.parent() {
			if fi, err := root.Lstat(prefix.rel); err == nil && !fi.IsDir() {
				jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusBadRequest, Code: codeAlreadyExists,
					Message: fmt.Sprintf("Cannot create the folder %s: %s is a file.", p.asked, prefix.asked),
					Fix:     "delete the file first, or choose another folder"})
				return
			}
		}
		if err := root.MkdirAll(p.rel, 0o755); err != nil {
			jsonhttp.WriteError(rw, internalError("mkdirs", p, err))
			return
		}
		jsonhttp.Write(rw, http.StatusOK, struct{}{})
	}
}

// parent is the folder that holds p; the root is its own parent.
func (p objectPath) parent() objectPath {
	if p.rel == "." {
		return p
	}
	return objectPath{asked: path.Dir(p.asked), rel: path.Dir(p.rel)}
}

func (wf *workspaceFiles) handleDelete() http.HandlerFunc {
	type request struct {
		Path      string `json:"path"`
		Recursive bool   `json:"recursive"`
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		var req request
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxJSONBody, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		p, jerr := parseObjectPath(req.Path)
		switch {
		case jerr != nil:
		case specialFolder(p):
			jerr = &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
				Message: fmt.Sprintf("%s is a folder the workspace keeps: it cannot be deleted", p.asked),
				Fix:     "delete the objects inside it instead"}
		default:
			jerr = mayWrite(authFrom(r.Context()).principal, p)
		}
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		root, fi, jerr := wf.lookup(p)
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		defer root.Close()
		if fi.IsDir() && !req.Recursive {
			if empty, err := emptyFolder(root, p.rel); err != nil {
				jsonhttp.WriteError(rw, internalError("delete", p, err))
				return
			} else if !empty {
				jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusBadRequest, Code: codeDirectoryNotEmpty,
					Message: fmt.Sprintf("Folder (%s) is not empty.", p.asked),
					Fix:     `send "recursive": true to delete the folder and everything in it`})
				return
			}
		}
		if err := wf.remove(root, p, fi.IsDir() && req.Recursive); err != nil {
			jsonhttp.WriteError(rw, internalError("delete", p, err))
			return
		}
		jsonhttp.Write(rw, http.StatusOK, struct{}{})
	}
}

func emptyFolder(root *os.Root, rel string) (bool, error) {
	f, err := root.Open(rel)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return len(names) == 0, err
}

// handleImportFile is the files API the CLI uses for sync and bundles: the raw file is the body. It answers 404
// when the parent folder is missing, which the CLI answers with mkdirs and a retry.
func (wf *workspaceFiles) handleImportFile() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		overwrite, err := parseBool(r.URL.Query().Get("overwrite"))
		if err != nil {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
				Message: "overwrite must be true or false"})
			return
		}
		// The path comes decoded, so %2e%2e is seen as the .. it stands for.
		p, jerr := parseObjectPath(strings.TrimPrefix(r.URL.Path, PathImportFile))
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		_ = http.NewResponseController(rw).SetReadDeadline(time.Now().Add(uploadTimeout))
		// Conflict is the files API's answer to an existing file: bundles rely on it for their deploy lock.
		if jerr := wf.writeFile(authFrom(r.Context()).principal, p, r.Body, overwrite, http.StatusConflict); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		jsonhttp.Write(rw, http.StatusOK, struct{}{})
	}
}

func parseBool(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	return strconv.ParseBool(s)
}

// writeFile stores body at p for who without ever showing a half-written file: it streams body into a temp file
// (uploads.go), then renames it over p (overwrite) or hard-links it to p, which fails if p exists, so that of two
// clients taking a deploy lock at once exactly one wins. existsStatus is the status for "p exists": the files API
// says 409, the Workspace API 400.
func (wf *workspaceFiles) writeFile(who principal, p objectPath, body io.Reader, overwrite bool, existsStatus int) *jsonhttp.Error {
	root, err := wf.openFiles()
	if err != nil {
		return internalError("import", p, err)
	}
	defer root.Close()
	if jerr := checkWrite(root, who, p, overwrite, existsStatus); jerr != nil {
		return jerr // before reading a byte of the body
	}
	u, jerr := wf.newUpload(root, spaceOf(p))
	if jerr != nil {
		return jerr
	}
	if _, err := io.Copy(u, body); err != nil {
		return u.fail(err)
	}
	return u.commit(p, overwrite, existsStatus)
}

// checkWrite refuses a write to p that would fail anyway, before its content is read or committed: who may not
// write there, the parent folder is missing or a file, or something is at p that may not be replaced.
func checkWrite(root *os.Root, who principal, p objectPath, overwrite bool, existsStatus int) *jsonhttp.Error {
	if jerr := mayWrite(who, p); jerr != nil {
		return jerr
	}
	if specialFolder(p) { // a home folder not made yet is still no place for a file
		return objectExists(p, "A folder the workspace keeps", existsStatus)
	}
	parent := p.parent()
	if fi, jerr := statObject(root, parent); jerr != nil {
		if jerr.Status == http.StatusNotFound {
			return &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
				Message: fmt.Sprintf("The parent folder (%s) does not exist.", parent.asked),
				Fix:     "create it with POST " + PathWorkspaceMkdirs + ", then send the file again"}
		}
		return jerr
	} else if !fi.IsDir() {
		return &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
			Message: fmt.Sprintf("The parent %s is a file, not a folder.", parent.asked)}
	}
	if fi, err := root.Lstat(p.rel); err == nil && (fi.IsDir() || !overwrite) {
		if fi.IsDir() {
			return objectExists(p, "A folder", existsStatus)
		}
		return objectExists(p, "A file", existsStatus)
	}
	return nil
}

// fileFormat accepts the import and export formats that mean "the bytes as they are" for a workspace file.
// The emulator has no notebooks: SOURCE with a language, which would make a notebook on Databricks, stores a file.
func fileFormat(format string) *jsonhttp.Error {
	switch format {
	case "", "SOURCE", "AUTO", "RAW":
		return nil
	}
	return &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
		Message: fmt.Sprintf("format %q is not supported: the emulator stores workspace files only", format),
		Fix:     "use format SOURCE, AUTO or RAW"}
}

// importRequest is an import as the handlers see it, whichever encoding the client sent; its content has gone to
// an upload.
type importRequest struct {
	path, format string
	overwrite    bool
}

// handleImport is the Workspace API's import, as the SDK sends it: JSON with base64 content (w.Workspace.Import),
// or multipart/form-data with the raw file (w.Workspace.Upload). Either way the file is streamed to disk as it
// arrives, before the path it is for is known (the SDK sends the content first), and committed once it is.
// Language is accepted and ignored: no notebooks here.
func (wf *workspaceFiles) handleImport() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		who := authFrom(r.Context()).principal
		_ = http.NewResponseController(rw).SetReadDeadline(time.Now().Add(uploadTimeout))
		root, err := wf.openFiles()
		if err != nil {
			jsonhttp.WriteError(rw, internalError("import", objectPath{asked: "a file"}, err))
			return
		}
		defer root.Close()
		u, jerr := wf.newUpload(root, homeSpace(who)) // the path comes after the content
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		defer u.abort() // nothing, once committed
		read := readImportJSON
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
			read = readImportForm
		}
		req, jerr := read(rw, r, u)
		var p objectPath
		if jerr == nil {
			p, jerr = parseObjectPath(req.path)
		}
		if jerr == nil {
			jerr = fileFormat(req.format)
		}
		if jerr == nil {
			jerr = checkWrite(root, who, p, req.overwrite, http.StatusBadRequest)
		}
		if jerr == nil {
			jerr = u.commit(p, req.overwrite, http.StatusBadRequest)
		}
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		jsonhttp.Write(rw, http.StatusOK, struct{}{})
	}
}

// readImportJSON reads the JSON of w.Workspace.Import, whatever its Content-Type, as the platform does. The body
// holds the file in base64, so its limit is that of the file's base64 plus room for the other fields; the file
// itself goes to u as it arrives (contentDiverter).
func readImportJSON(rw http.ResponseWriter, r *http.Request, u *fileUpload) (importRequest, *jsonhttp.Error) {
	limit := int64(base64.StdEncoding.EncodedLen(MaxFileSize)) + maxJSONBody
	if r.ContentLength > limit {
		return importRequest{}, tooBig()
	}
	content := &base64Writer{out: u}
	dec := json.NewDecoder(newContentDiverter(http.MaxBytesReader(rw, r.Body, limit), content))
	var body struct {
		Path      string `json:"path"`
		Content   string `json:"content"` // "" unless its member's name was escaped, which the diverter does not see
		Format    string `json:"format"`
		Language  string `json:"language"`
		Overwrite bool   `json:"overwrite"`
	}
	malformed := func(err error) *jsonhttp.Error {
		return &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
			Message: "malformed JSON body: " + err.Error()}
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	err := dec.Decode(&body)
	if err == nil {
		switch _, terr := dec.Token(); {
		case errors.Is(terr, io.EOF):
		case terr == nil, errors.As(terr, &syntaxErr):
			return importRequest{}, malformed(errors.New("more than one JSON value"))
		default:
			err = terr
		}
	}
	switch {
	case errors.As(err, &syntaxErr), errors.As(err, &typeErr):
		return importRequest{}, malformed(err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return importRequest{}, malformed(errors.New("the body ends early"))
	case err != nil:
		return importRequest{}, u.fail(err)
	}
	if body.Content != "" {
		if _, err := content.Write([]byte(body.Content)); err != nil {
			return importRequest{}, u.fail(err)
		}
	}
	if err := content.Close(); err != nil {
		return importRequest{}, u.fail(err)
	}
	return importRequest{path: body.Path, format: body.Format, overwrite: body.Overwrite}, nil
}

// readImportForm reads the multipart form of w.Workspace.Upload, streaming its content part to u.
func readImportForm(rw http.ResponseWriter, r *http.Request, u *fileUpload) (importRequest, *jsonhttp.Error) {
	invalid := func(msg string) *jsonhttp.Error {
		return &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter, Message: msg}
	}
	r.Body = http.MaxBytesReader(rw, r.Body, MaxFileSize+maxJSONBody)
	mr, err := r.MultipartReader()
	if err != nil {
		return importRequest{}, invalid("malformed multipart body: " + err.Error())
	}
	var req importRequest
	for parts := 0; ; parts++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return req, nil
		}
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return importRequest{}, tooBig()
		}
		if err != nil || parts == 16 {
			return importRequest{}, invalid("malformed multipart body: want the fields path, content, format, language and overwrite")
		}
		if part.FormName() == "content" {
			if _, err := io.Copy(u, part); err != nil {
				return importRequest{}, u.fail(err)
			}
			continue
		}
		value, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
		switch {
		case errors.As(err, &maxErr):
			return importRequest{}, tooBig()
		case err != nil:
			return importRequest{}, invalid("malformed multipart body: " + err.Error())
		case len(value) > maxFormField:
			return importRequest{}, invalid(fmt.Sprintf("the form field %s is longer than %d bytes", part.FormName(), maxFormField))
		}
		switch part.FormName() {
		case "path":
			req.path = string(value)
		case "format":
			req.format = string(value)
		case "overwrite":
			if req.overwrite, err = parseBool(string(value)); err != nil {
				return importRequest{}, invalid("overwrite must be true or false")
			}
		}
	}
}

// handleExport answers the raw bytes with direct_download=true (w.Workspace.Download), else the Workspace API's
// JSON with base64 content (w.Workspace.Export).
func (wf *workspaceFiles) handleExport() http.HandlerFunc {
	type response struct {
		Content  string `json:"content"`
		FileType string `json:"file_type,omitempty"`
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		direct, err := parseBool(q.Get("direct_download"))
		if err != nil {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
				Message: "direct_download must be true or false"})
			return
		}
		if jerr := fileFormat(q.Get("format")); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		root, p, fi, jerr := wf.lookupFor(authFrom(r.Context()).principal, q.Get("path"))
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		defer root.Close()
		if fi.IsDir() {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
				Message: fmt.Sprintf("%s is a folder: the emulator exports files only", p.asked),
				Fix:     "list the folder and export its files one by one"})
			return
		}
		// The open file is the version that was complete when it was opened: writers replace it by rename.
		f, err := root.Open(p.rel)
		if err != nil {
			jsonhttp.WriteError(rw, internalError("export", p, err))
			return
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
		switch {
		case err != nil:
			jsonhttp.WriteError(rw, internalError("export", p, err))
			return
		case len(data) > MaxFileSize:
			jsonhttp.WriteError(rw, tooBig())
			return
		}
		if !direct {
			jsonhttp.Write(rw, http.StatusOK, response{Content: base64.StdEncoding.EncodeToString(data),
				FileType: strings.TrimPrefix(path.Ext(p.rel), ".")})
			return
		}
		rw.Header().Set("Content-Type", "application/octet-stream")
		rw.Header().Set("Content-Length", strconv.Itoa(len(data)))
		rw.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = rw.Write(data)
	}
}

// objectKind says what who sees at a workspace path: ObjectTypeDirectory or ObjectTypeFile. Its errors are
// *jsonhttp.Error values, ready to send; a path who may not read is missing.
func (wf *workspaceFiles) objectKind(who principal, wsPath string) (string, error) {
	root, _, fi, jerr := wf.lookupFor(who, wsPath)
	if jerr != nil {
		return "", jerr
	}
	defer root.Close()
	if fi.IsDir() {
		return ObjectTypeDirectory, nil
	}
	return ObjectTypeFile, nil
}

// copyWorkspaceFolder copies the workspace folder wsPath and everything in it to the local folder dest, which it
// creates: what a deployment does with an app's source, as the platform, once the Apps API has checked that the
// deployer may read it. Folders get mode 0755, files 0644, whatever the umask.
func (wf *workspaceFiles) copyWorkspaceFolder(wsPath, dest string) error {
	p, jerr := parseObjectPath(wsPath)
	var root *os.Root
	var fi fs.FileInfo
	if jerr == nil {
		root, fi, jerr = wf.lookup(p)
	}
	if jerr != nil {
		return fmt.Errorf("copy workspace folder %s: %w", wsPath, jerr)
	}
	defer root.Close()
	if !fi.IsDir() {
		return fmt.Errorf("copy workspace folder %s: it is a file, not a folder", wsPath)
	}
	fsys := root.FS()
	err := fs.WalkDir(fsys, p.rel, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if name != p.rel && !listable(d.Name(), info) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(filepath.FromSlash(p.rel), filepath.FromSlash(name))
		if err != nil {
			return err
		}
		target := filepath.Join(dest, rel)
		if d.IsDir() {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			return os.Chmod(target, 0o755)
		}
		return copyFile(fsys, name, target)
	})
	if err != nil {
		return fmt.Errorf("copy workspace folder %s to %s: %w", wsPath, dest, err)
	}
	return nil
}

func copyFile(fsys fs.FS, name, target string) error {
	src, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		return err
	}
	if err := dst.Chmod(0o644); err != nil {
		_ = dst.Close()
		return err
	}
	return dst.Close()
}
