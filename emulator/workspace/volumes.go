package workspace

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/databricks/databricks-sdk-go/service/files"
	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// Paths of the Files API, each followed by an absolute /Volumes/<catalog>/<schema>/<volume>/… path.
const (
	PathFsFiles       = "/api/2.0/fs/files"
	PathFsDirectories = "/api/2.0/fs/directories"
)

// MaxVolumeFileSize is the largest file the Files API takes in one request: 5 GiB, as documented for the Files API
// 2.0. Bodies are streamed to disk, never held in memory.
const MaxVolumeFileSize = 5 << 30

// DefaultVolumeQuota is how many bytes of files each volume may hold on this machine's disk (Options.VolumeQuota).
const DefaultVolumeQuota = 1 << 30

// volumes serves the files of Unity Catalog volumes through the Files API, as the caller: reading takes READ VOLUME
// on the volume, writing WRITE VOLUME (each with USE CATALOG and USE SCHEMA). Each volume is a folder under
// <data dir>/volumes/<catalog>/<schema>/<volume>, opened through an os.Root so that no path leaves it. Uploads are
// streamed to disk, at most maxUploadsPerPrincipal at once per principal, and each volume holds at most its quota.
type volumes struct {
	uc   *unityCatalog
	dir  string   // <data dir>/volumes
	disk *diskUse // bytes per volume, by its full name; uploads in progress per principal
}

// newVolumes makes every volume's folder and copies in the files the model gives it, unless the folder is there
// already (a workspace that lasts keeps what was written to it).
func newVolumes(cfg Config, uc *unityCatalog, dataDir string, quota int64) (*volumes, error) {
	v := &volumes{uc: uc, dir: filepath.Join(dataDir, "volumes"),
		disk: newDiskUse(quota, func(volume string) string { return "volume " + volume },
			"delete files you no longer need there (databricks fs rm dbfs:/Volumes/…)")}
	for _, cat := range cfg.Catalogs {
		for _, s := range cat.Schemas {
			for _, vol := range s.Volumes {
				dest := filepath.Join(v.dir, cat.Name, s.Name, vol.Name)
				if _, err := os.Stat(dest); err == nil {
					continue
				}
				if err := os.MkdirAll(dest, 0o700); err != nil {
					return nil, fmt.Errorf("volume %s.%s.%s: %w", cat.Name, s.Name, vol.Name, err)
				}
				if vol.Files == "" {
					continue
				}
				src, err := fs.Sub(cfg.dataFiles(), path.Clean(vol.Files))
				if err == nil {
					err = os.CopyFS(dest, src)
				}
				if err != nil {
					return nil, fmt.Errorf("volume %s.%s.%s: files %s: %w", cat.Name, s.Name, vol.Name, vol.Files, err)
				}
			}
		}
	}
	return v, nil
}

// routes is the Files API. Every route needs the file.files scope (routes.go).
func (v *volumes) routes(r chi.Router) {
	r.Get(PathFsFiles+"/*", v.in(PrivReadVolume, download))
	r.Head(PathFsFiles+"/*", v.in(PrivReadVolume, download))
	r.With(v.disk.boundUploads).Put(PathFsFiles+"/*", v.in(PrivWriteVolume, v.upload))
	r.Delete(PathFsFiles+"/*", v.in(PrivWriteVolume, v.deleteFile))
	r.Get(PathFsDirectories+"/*", v.in(PrivReadVolume, listDirectory))
	r.Head(PathFsDirectories+"/*", v.in(PrivReadVolume, directoryExists))
	r.Put(PathFsDirectories+"/*", v.in(PrivWriteVolume, createDirectory))
	r.Delete(PathFsDirectories+"/*", v.in(PrivWriteVolume, deleteDirectory))
}

// volumeHandler serves one Files API request on a checked path, inside the volume's folder.
type volumeHandler func(rw http.ResponseWriter, r *http.Request, vp volumePath, root *os.Root)

// in checks the request's path and the caller's privilege on its volume, opens the volume's folder and serves h.
func (v *volumes) in(priv string, h volumeHandler) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		vp, ok := v.parse(rw, r, priv)
		if !ok {
			return
		}
		root, err := os.OpenRoot(filepath.Join(v.dir, vp.volume.catalog, vp.volume.schema, vp.volume.name))
		if err != nil {
			jsonhttp.WriteError(rw, volumeFailure(vp, err))
			return
		}
		defer root.Close()
		h(rw, r, vp, root)
	}
}

// volumePath is a checked /Volumes/<catalog>/<schema>/<volume>[/rel] path.
type volumePath struct {
	asked  string
	volume *securable
	rel    string // inside the volume's folder; "." for the volume itself
}

// parse checks the path and that the caller may use the volume with priv: a missing or hidden volume is 404, a
// missing privilege 403.
func (v *volumes) parse(rw http.ResponseWriter, r *http.Request, priv string) (volumePath, bool) {
	asked := "/" + chi.URLParam(r, "*")
	bad := func(why string) (volumePath, bool) {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
			Message: fmt.Sprintf("invalid path %q: %s", asked, why),
			Fix:     "send an absolute volume path, such as /Volumes/<catalog>/<schema>/<volume>/reports/q1.csv"})
		return volumePath{}, false
	}
	if len(asked) > maxPathLength || !utf8.ValidString(asked) {
		return bad("too long, or not UTF-8")
	}
	segs := strings.Split(strings.TrimSuffix(asked, "/"), "/")[1:]
	if len(segs) < 4 || segs[0] != "Volumes" {
		return bad("the emulated Files API serves files of Unity Catalog volumes: /Volumes/<catalog>/<schema>/<volume>/…")
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "\\\x00") || strings.HasPrefix(s, uploadPrefix) ||
			len(s) > maxSegmentLength {
			return bad("empty, . or .. segments and backslashes are not allowed")
		}
	}
	full := segs[1] + "." + segs[2] + "." + segs[3]
	vol := v.uc.lookup(kindVolume, full)
	p := authFrom(r.Context()).principal
	if vol == nil || !v.uc.holdsAny(p, vol) {
		jsonhttp.WriteError(rw, catalogNotFound(kindVolume, full))
		return volumePath{}, false
	}
	if problem := v.uc.accessProblem(p, vol, priv); problem != "" {
		jsonhttp.WriteError(rw, catalogForbidden(problem))
		return volumePath{}, false
	}
	rel := "."
	if len(segs) > 4 {
		rel = path.Join(segs[4:]...)
	}
	return volumePath{asked: asked, volume: vol, rel: rel}, true
}

func volumeNotFound(vp volumePath, what string) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
		Message: fmt.Sprintf("The %s %s does not exist.", what, vp.asked)}
}

func volumeFailure(vp volumePath, err error) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusInternalServerError, Code: jsonhttp.CodeInternal,
		Message: fmt.Sprintf("%s: %v", vp.asked, err)}
}

// download answers GET with the file's bytes and HEAD with its length and time; Range and conditional
// requests work as the Files API documents (http.ServeContent).
func download(rw http.ResponseWriter, r *http.Request, vp volumePath, root *os.Root) {
	f, err := root.Open(vp.rel)
	if err != nil {
		jsonhttp.WriteError(rw, volumeNotFound(vp, "file"))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		jsonhttp.WriteError(rw, volumeNotFound(vp, "file"))
		return
	}
	rw.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(rw, r, "", fi.ModTime(), f)
}

// upload streams the body to a temp file beside the target and renames it into place, creating the parent
// folders as the Files API does. overwrite=false (the default) refuses an existing file with 409.
func (v *volumes) upload(rw http.ResponseWriter, r *http.Request, vp volumePath, root *os.Root) {
	overwrite, err := strconv.ParseBool(cmp.Or(r.URL.Query().Get("overwrite"), "false"))
	if err != nil {
		jsonhttp.WriteError(rw, badParameter("overwrite must be true or false"))
		return
	}
	if vp.rel == "." {
		jsonhttp.WriteError(rw, badParameter("%s is a volume, not a file path", vp.asked))
		return
	}
	if r.ContentLength > MaxVolumeFileSize {
		jsonhttp.WriteError(rw, volumeTooBig())
		return
	}
	parent := path.Dir(vp.rel)
	if err := root.MkdirAll(parent, 0o700); err != nil {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusConflict, Code: codeAlreadyExists,
			Message: fmt.Sprintf("A parent of %s is a file.", vp.asked)})
		return
	}
	if fi, err := root.Lstat(vp.rel); err == nil && (fi.IsDir() || !overwrite) {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusConflict, Code: codeAlreadyExists,
			Message: fmt.Sprintf("%s already exists.", vp.asked), Fix: "send overwrite=true to replace a file"})
		return
	}
	space := vp.volume.fullName()
	v.disk.commitMu.Lock()
	err = v.disk.countLocked(space, root, ".")
	v.disk.commitMu.Unlock()
	if err != nil {
		jsonhttp.WriteError(rw, volumeFailure(vp, err))
		return
	}
	tmp := path.Join(parent, uploadPrefix+rand.Text())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		jsonhttp.WriteError(rw, volumeFailure(vp, err))
		return
	}
	defer root.Remove(tmp)
	w := &quotaWriter{w: f, disk: v.disk, space: space, max: MaxVolumeFileSize}
	_, err = io.Copy(w, r.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		v.disk.release(space, w.size)
		switch {
		case errors.Is(err, errTooBig):
			jsonhttp.WriteError(rw, volumeTooBig())
		case errors.Is(err, errQuota):
			jsonhttp.WriteError(rw, v.disk.exceeded(space))
		default:
			jsonhttp.WriteError(rw, badParameter("reading the file for %s: %v", vp.asked, err))
		}
		return
	}
	// The upload's bytes count already; a file it replaces gives its own back.
	v.disk.commitMu.Lock()
	defer v.disk.commitMu.Unlock()
	var replaced int64
	if fi, err := root.Lstat(vp.rel); err == nil && overwrite && fi.Mode().IsRegular() {
		replaced = fi.Size()
	}
	if overwrite {
		err = root.Rename(tmp, vp.rel)
	} else {
		err = root.Link(tmp, vp.rel)
	}
	if err != nil {
		v.disk.release(space, w.size)
		if errors.Is(err, fs.ErrExist) {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusConflict, Code: codeAlreadyExists,
				Message: fmt.Sprintf("%s already exists.", vp.asked), Fix: "send overwrite=true to replace a file"})
			return
		}
		jsonhttp.WriteError(rw, volumeFailure(vp, err))
		return
	}
	v.disk.release(space, replaced)
	rw.WriteHeader(http.StatusNoContent)
}

func volumeTooBig() *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusRequestEntityTooLarge, Code: codeMaxFileSize,
		Message: fmt.Sprintf("The file is larger than %d bytes (5 GiB), the most the Files API takes in one request.",
			int64(MaxVolumeFileSize))}
}

func (v *volumes) deleteFile(rw http.ResponseWriter, r *http.Request, vp volumePath, root *os.Root) {
	space := vp.volume.fullName()
	v.disk.commitMu.Lock()
	defer v.disk.commitMu.Unlock()
	if err := v.disk.countLocked(space, root, "."); err != nil {
		jsonhttp.WriteError(rw, volumeFailure(vp, err))
		return
	}
	fi, err := root.Lstat(vp.rel)
	if err != nil || fi.IsDir() {
		jsonhttp.WriteError(rw, volumeNotFound(vp, "file"))
		return
	}
	if err := root.Remove(vp.rel); err != nil {
		jsonhttp.WriteError(rw, volumeFailure(vp, err))
		return
	}
	if fi.Mode().IsRegular() {
		v.disk.release(space, fi.Size())
	}
	rw.WriteHeader(http.StatusNoContent)
}

// listDirectory lists a folder's entries by name, a page at a time (page_size, default and most 1000); the
// page token is the last name of the previous page.
func listDirectory(rw http.ResponseWriter, r *http.Request, vp volumePath, root *os.Root) {
	size := 1000
	if s := r.URL.Query().Get("page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			jsonhttp.WriteError(rw, badParameter("page_size must be a positive number"))
			return
		}
		if n > 0 && n < size {
			size = n
		}
	}
	after := r.URL.Query().Get("page_token")
	entries, err := fs.ReadDir(root.FS(), vp.rel)
	if err != nil {
		jsonhttp.WriteError(rw, volumeNotFound(vp, "directory"))
		return
	}
	resp := files.ListDirectoryResponse{Contents: []files.DirectoryEntry{}}
	for _, e := range entries { // sorted by name
		if strings.HasPrefix(e.Name(), uploadPrefix) || e.Name() <= after {
			continue
		}
		if len(resp.Contents) == size {
			resp.NextPageToken = resp.Contents[size-1].Name
			break
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		entry := files.DirectoryEntry{Name: e.Name(), Path: strings.TrimSuffix(vp.asked, "/") + "/" + e.Name(),
			IsDirectory: e.IsDir(), LastModified: fi.ModTime().UnixMilli(), ForceSendFields: []string{"IsDirectory"}}
		if !e.IsDir() {
			entry.FileSize = fi.Size()
			entry.ForceSendFields = append(entry.ForceSendFields, "FileSize")
		}
		resp.Contents = append(resp.Contents, entry)
	}
	jsonhttp.Write(rw, http.StatusOK, resp)
}

func directoryExists(rw http.ResponseWriter, r *http.Request, vp volumePath, root *os.Root) {
	if fi, err := root.Stat(vp.rel); err != nil || !fi.IsDir() {
		jsonhttp.WriteError(rw, volumeNotFound(vp, "directory"))
		return
	}
	rw.WriteHeader(http.StatusOK)
}

func createDirectory(rw http.ResponseWriter, r *http.Request, vp volumePath, root *os.Root) {
	if err := root.MkdirAll(vp.rel, 0o700); err != nil {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusConflict, Code: codeAlreadyExists,
			Message: fmt.Sprintf("%s, or a parent of it, is a file.", vp.asked)})
		return
	}
	rw.WriteHeader(http.StatusNoContent)
}

// deleteDirectory deletes an empty folder, as the Files API does; the volume itself cannot be deleted here.
func deleteDirectory(rw http.ResponseWriter, r *http.Request, vp volumePath, root *os.Root) {
	if vp.rel == "." {
		jsonhttp.WriteError(rw, badParameter("%s is the volume itself: drop volumes through Unity Catalog", vp.asked))
		return
	}
	entries, err := fs.ReadDir(root.FS(), vp.rel)
	switch {
	case err != nil:
		jsonhttp.WriteError(rw, volumeNotFound(vp, "directory"))
	case slices.ContainsFunc(entries, func(e fs.DirEntry) bool { return !strings.HasPrefix(e.Name(), uploadPrefix) }):
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusConflict, Code: codeDirectoryNotEmpty,
			Message: fmt.Sprintf("The directory %s is not empty.", vp.asked), Fix: "delete its files first"})
	default:
		if err := root.Remove(vp.rel); err != nil {
			jsonhttp.WriteError(rw, volumeFailure(vp, err))
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	}
}
