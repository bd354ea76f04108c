package workspace

// How uploads reach the disk, within bounds. Every upload, whichever API it comes through (import-file, or import
// with JSON or a multipart form), is streamed into a temp file of the files folder, never held in memory, and then
// committed: renamed into place. Each principal has at most maxUploadsPerPrincipal uploads in progress (more get
// 429, which the SDK retries), and each home folder, and /Shared, hold at most the workspace's disk quota of files
// (more get the workspace's QUOTA_EXCEEDED). The bytes of an upload in progress count in full against the folder it
// goes to, or its uploader's home while that is not known yet (the SDK's import sends the content before the path),
// until it is committed; then against the folder it went to, less any file it replaced.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// DefaultDiskQuota is how many bytes of workspace files each home folder, and /Shared, may hold: far more than an
// app's source (each file of it at most MaxFileSize), far less than a disk.
const DefaultDiskQuota = 256 << 20

// maxUploadsPerPrincipal bounds one principal's uploads in progress: the Databricks CLI's sync sends at most 20 at
// once (MaxRequestsInFlight in its libs/sync), so the CLI never meets the bound.
const maxUploadsPerPrincipal = 20

// codeQuotaExceeded is the error code a workspace answers a quota with.
const codeQuotaExceeded = "QUOTA_EXCEEDED"

// diskUse counts what uploads hold: uploads in progress per principal, and bytes per space (for workspace files a
// home folder, "Users/<name>", or "Shared"; for volumes a volume).
type diskUse struct {
	quota int64
	where func(space string) string // the space as its users name it, in the quota's error
	fix   string                    // how to make room, in the quota's error

	// commitMu makes commits and deletes one at a time, so the size of a file they replace or remove is counted
	// once; a space's first count happens under it too. It is taken before mu.
	commitMu sync.Mutex
	mu       sync.Mutex
	inFlight map[string]int   // uploads in progress, per principal
	used     map[string]int64 // bytes per space, once counted since start
}

func newDiskUse(quota int64, where func(space string) string, fix string) *diskUse {
	return &diskUse{quota: quota, where: where, fix: fix, inFlight: map[string]int{}, used: map[string]int64{}}
}

// spaceOf is the space whose quota an object counts against: its owner's home or /Shared; "" for what no
// principal may write (the root, /Users).
func spaceOf(p objectPath) string {
	top, below, _ := strings.Cut(p.rel, "/")
	switch {
	case top == folderShared:
		return folderShared
	case top == folderUsers && below != "":
		owner, _, _ := strings.Cut(below, "/")
		return folderUsers + "/" + owner
	}
	return ""
}

func homeSpace(who principal) string { return folderUsers + "/" + who.UserName }

// boundUploads counts the upload it guards among its principal's uploads in progress while it runs, or refuses it
// with 429 and Retry-After when the principal has maxUploadsPerPrincipal already. It runs after requireToken.
func (d *diskUse) boundUploads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		done, jerr := d.startUpload(authFrom(r.Context()).principal)
		if jerr != nil {
			rw.Header().Set("Retry-After", "1")
			jsonhttp.WriteError(rw, jerr)
			return
		}
		defer done()
		next.ServeHTTP(rw, r)
	})
}

// startUpload counts an upload of who in progress, or refuses it with 429 when who has maxUploadsPerPrincipal.
// The caller calls done once the upload has ended.
func (d *diskUse) startUpload(who principal) (done func(), jerr *jsonhttp.Error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inFlight[who.UserName] >= maxUploadsPerPrincipal {
		return nil, &jsonhttp.Error{Status: http.StatusTooManyRequests, Code: errorCodes[http.StatusTooManyRequests],
			Message: fmt.Sprintf("%s has %d uploads in progress already", who.UserName, maxUploadsPerPrincipal),
			Fix:     "send fewer files at once; the Databricks CLI and SDK wait and retry"}
	}
	d.inFlight[who.UserName]++
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.inFlight[who.UserName]--; d.inFlight[who.UserName] <= 0 {
			delete(d.inFlight, who.UserName)
		}
	}, nil
}

// countLocked makes sure space's bytes are counted, walking its folder, rel in root, the first time. Callers hold
// commitMu.
func (d *diskUse) countLocked(space string, root *os.Root, rel string) error {
	d.mu.Lock()
	_, counted := d.used[space]
	d.mu.Unlock()
	if counted || space == "" {
		return nil
	}
	size, err := treeSize(root, rel)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.used[space] = size
	d.mu.Unlock()
	return nil
}

// treeSize adds up the regular files at and under rel; nothing there is 0.
func treeSize(root *os.Root, rel string) (int64, error) {
	var size int64
	err := fs.WalkDir(root.FS(), rel, func(_ string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			size += info.Size()
		}
		return nil
	})
	return size, err
}

// reserve adds n bytes to space if they fit its quota.
func (d *diskUse) reserve(space string, n int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.used[space]+n > d.quota {
		return false
	}
	d.used[space] += n
	return true
}

func (d *diskUse) release(space string, n int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.used[space] -= n
}

func (d *diskUse) exceeded(space string) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusBadRequest, Code: codeQuotaExceeded,
		Message: fmt.Sprintf("Quota exceeded: %s may hold %d bytes of files, and this one would not fit",
			d.where(space), d.quota),
		Fix: d.fix}
}

// fileUpload is a file being received: streamed into a temp file at the top of the files folder, its bytes counted
// against a space as they arrive, until commit moves it into place or abort drops it.
type fileUpload struct {
	quotaWriter // into f; its space is where the bytes count meanwhile: where it goes, or its uploader's home
	files       *workspaceFiles
	root        *os.Root
	f           *os.File
	name        string // the temp file, in the files folder
	done        bool
}

// errQuota and errTooBig end an upload that would pass the quota or MaxFileSize.
var (
	errQuota  = errors.New("quota exceeded")
	errTooBig = errors.New("file too big")
)

// newUpload opens the temp file of an upload whose bytes count against space meanwhile.
func (wf *workspaceFiles) newUpload(root *os.Root, space string) (*fileUpload, *jsonhttp.Error) {
	u := &fileUpload{quotaWriter: quotaWriter{disk: wf.disk, space: space, max: MaxFileSize}, files: wf, root: root,
		name: uploadPrefix + rand.Text()}
	wf.disk.commitMu.Lock()
	err := wf.disk.countLocked(u.space, root, u.space)
	wf.disk.commitMu.Unlock()
	if err != nil {
		return nil, internalError("count the files of", objectPath{asked: "/Workspace/" + u.space}, err)
	}
	if u.f, err = root.OpenFile(u.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
		return nil, internalError("import", objectPath{asked: "a temp file"}, err)
	}
	u.w = u.f
	return u, nil
}

// quotaWriter writes to w what fits both max and the quota of its space, counting it there as it goes: an upload
// of workspace files (fileUpload) or of a volume's file.
type quotaWriter struct {
	w     io.Writer
	disk  *diskUse
	space string
	max   int64
	size  int64 // written and counted
}

func (q *quotaWriter) Write(p []byte) (int, error) {
	if q.size+int64(len(p)) > q.max {
		return 0, errTooBig
	}
	if !q.disk.reserve(q.space, int64(len(p))) {
		return 0, errQuota
	}
	n, err := q.w.Write(p)
	q.size += int64(n)
	if n < len(p) {
		q.disk.release(q.space, int64(len(p)-n))
	}
	return n, err
}

// abort drops the upload and gives its bytes back; it does nothing once the upload has ended.
func (u *fileUpload) abort() {
	if u.done {
		return
	}
	u.done = true
	_ = u.f.Close()
	_ = u.root.Remove(u.name)
	u.files.disk.release(u.space, u.size)
}

// fail aborts the upload and says why reading it failed.
func (u *fileUpload) fail(err error) *jsonhttp.Error {
	u.abort()
	var maxErr *http.MaxBytesError
	var jerr *jsonhttp.Error
	switch {
	case errors.Is(err, errQuota):
		return u.files.disk.exceeded(u.space)
	case errors.Is(err, errTooBig), errors.As(err, &maxErr):
		return tooBig()
	case errors.As(err, &jerr):
		return jerr
	}
	return &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
		Message: fmt.Sprintf("reading the file: %v", err)}
}

// commit moves the upload to p, replacing a file there if overwrite, and counts its bytes against p's space,
// less those of the file it replaced; the upload ends either way. existsStatus is the status for "p exists".
func (u *fileUpload) commit(p objectPath, overwrite bool, existsStatus int) *jsonhttp.Error {
	if u.done {
		return internalError("import", p, errors.New("the upload has ended"))
	}
	u.done = true
	defer u.root.Remove(u.name) // after a rename there is nothing left to remove; after a link, the extra name
	if err := u.f.Close(); err != nil {
		u.files.disk.release(u.space, u.size)
		return internalError("import", p, err)
	}
	d := u.files.disk
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	dest := spaceOf(p)
	if err := d.countLocked(dest, u.root, dest); err != nil {
		d.release(u.space, u.size)
		return internalError("count the files of", p, err)
	}
	var replaced int64
	if fi, err := u.root.Lstat(p.rel); err == nil && overwrite && fi.Mode().IsRegular() {
		replaced = fi.Size()
	}
	// The bytes move to dest, less those of the file they replace, if they fit.
	d.mu.Lock()
	d.used[u.space] -= u.size
	fits := d.used[dest]-replaced+u.size <= d.quota
	if fits {
		d.used[dest] += u.size - replaced
	}
	d.mu.Unlock()
	if !fits {
		return d.exceeded(dest)
	}
	var err error
	if overwrite {
		err = u.root.Rename(u.name, p.rel)
	} else {
		err = u.root.Link(u.name, p.rel)
	}
	if err != nil {
		d.release(dest, u.size-replaced)
		return commitError(u.root, p, existsStatus, err)
	}
	return nil
}

// commitError says why a rename or link into p failed: something is there, the folder is gone, or the disk failed.
func commitError(root *os.Root, p objectPath, existsStatus int, err error) *jsonhttp.Error {
	if fi, serr := root.Lstat(p.rel); serr == nil {
		what := "A file"
		if fi.IsDir() {
			what = "A folder"
		}
		return objectExists(p, what, existsStatus)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return notFound(p.parent())
	}
	return internalError("import", p, err)
}

func objectExists(p objectPath, what string, status int) *jsonhttp.Error {
	return &jsonhttp.Error{Status: status, Code: codeAlreadyExists,
		Message: fmt.Sprintf("%s already exists at %s.", what, p.asked), Fix: "send overwrite=true to replace a file"}
}

// remove deletes p (everything under it, with recursive) and gives its bytes back to its space.
func (wf *workspaceFiles) remove(root *os.Root, p objectPath, recursive bool) error {
	d := wf.disk
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	space := spaceOf(p)
	if err := d.countLocked(space, root, space); err != nil {
		return err
	}
	size, err := treeSize(root, p.rel)
	if err != nil {
		return err
	}
	removeFn := root.Remove
	if recursive {
		removeFn = root.RemoveAll
	}
	if err := removeFn(p.rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Part of a tree may be gone: count the space again from the disk next time.
		d.mu.Lock()
		delete(d.used, space)
		d.mu.Unlock()
		return err
	}
	d.release(space, size)
	return nil
}

// contentDiverter streams the JSON body of a Workspace API import: it passes the body through to a json.Decoder,
// except for the string value of the object's top-level "content" member (the file, in base64), whose characters it
// writes to content instead; the decoder reads "" there. So a 10 MiB file is never held as a 14 MiB string. It
// follows strings, escapes and nesting, nothing more: the decoder checks the rest of the JSON.
type contentDiverter struct {
	r       *bufio.Reader
	content io.Writer

	depth    int  // objects and arrays open, outside strings
	inString bool // in a string: key or value, at any depth
	escape   bool // after a backslash in a string
	unicode  []byte
	wantKey  bool   // at depth 1, the next string is a member's name
	key      []byte // the name of the current top-level member, as far as it matters
	keyOver  bool   // the name was longer than any this looks for
	divert   bool   // in the content string: its characters go to content
	diverted bool   // a content string was seen: a second is refused
}

func newContentDiverter(body io.Reader, content io.Writer) *contentDiverter {
	return &contentDiverter{r: bufio.NewReaderSize(body, 32<<10), content: content}
}

// errContentEscape refuses a content string with an escape that base64 never needs.
var errContentEscape = errors.New(`content must be base64: its string may escape only "/" (\/), line breaks and ASCII (\u00XX)`)

func (c *contentDiverter) Read(p []byte) (int, error) {
	out := p[:0]
	for len(out) < len(p) {
		b, err := c.r.ReadByte()
		if err != nil {
			if len(out) > 0 {
				return len(out), nil
			}
			return 0, err
		}
		keep, err := c.step(b)
		if err != nil {
			return len(out), err
		}
		if keep {
			out = append(out, b)
		}
		if c.divert && c.r.Buffered() > 0 { // copy the run of plain base64 characters in one go
			if err := c.divertRun(); err != nil {
				return len(out), err
			}
		}
	}
	return len(out), nil
}

// divertRun sends the buffered characters of the content string up to its next quote or backslash to content.
func (c *contentDiverter) divertRun() error {
	if c.escape || c.unicode != nil {
		return nil
	}
	buf, _ := c.r.Peek(c.r.Buffered())
	n := bytes.IndexAny(buf, `"\`)
	if n < 0 {
		n = len(buf)
	}
	if n == 0 {
		return nil
	}
	if _, err := c.content.Write(buf[:n]); err != nil {
		return err
	}
	_, _ = c.r.Discard(n)
	return nil
}

// step moves the state past b and says whether b goes on to the decoder.
func (c *contentDiverter) step(b byte) (keep bool, err error) {
	if c.inString {
		return c.stringByte(b)
	}
	switch b {
	case '"':
		c.inString = true
		if c.depth == 1 && c.wantKey {
			c.key, c.keyOver = c.key[:0], false
		} else if c.depth == 1 && !c.keyOver && string(c.key) == "content" {
			if c.diverted {
				return false, errors.New("content is given twice")
			}
			c.divert, c.diverted = true, true
		}
	case '{', '[':
		c.depth++
		if c.depth == 1 {
			c.wantKey = b == '{'
		}
	case '}', ']':
		c.depth--
	case ':':
		if c.depth == 1 {
			c.wantKey = false
		}
	case ',':
		if c.depth == 1 {
			c.wantKey = true
		}
	}
	return true, nil
}

// stringByte handles a byte inside a string: a member's name is remembered, the content string diverted.
func (c *contentDiverter) stringByte(b byte) (keep bool, err error) {
	if c.unicode != nil {
		c.unicode = append(c.unicode, b)
		if len(c.unicode) < 4 {
			return !c.divert, nil
		}
		var r [2]byte
		if _, err := fmt.Sscanf(string(c.unicode), "%2x%2x", &r[0], &r[1]); err != nil || r[0] != 0 || r[1] >= 0x80 {
			return false, errContentEscape
		}
		c.unicode = nil
		_, err := c.content.Write(r[1:])
		return false, err
	}
	if c.escape {
		c.escape = false
		if !c.divert {
			c.keyByte('\\', b)
			return true, nil
		}
		switch b {
		case '/':
			_, err := c.content.Write([]byte{'/'})
			return false, err
		case 'n', 'r':
			return false, nil // base64 may be broken into lines
		case 'u':
			c.unicode = []byte{}
			return false, nil
		}
		return false, errContentEscape
	}
	switch b {
	case '\\':
		c.escape = true
		return !c.divert, nil
	case '"':
		c.inString = false
		if c.depth == 1 && c.wantKey {
			c.wantKey = false // until the colon
		}
		c.divert = false
		return true, nil
	}
	if c.divert {
		_, err := c.content.Write([]byte{b})
		return false, err
	}
	c.keyByte(b)
	return true, nil
}

// keyByte adds to the name of the current top-level member, while one is being read.
func (c *contentDiverter) keyByte(b ...byte) {
	if c.depth == 1 && c.wantKey && !c.keyOver {
		c.key = append(c.key, b...)
		c.keyOver = len(c.key) > len("content")
	}
}

// base64Writer decodes the base64 text written to it and writes the bytes to out; Close decodes the rest.
type base64Writer struct {
	out     io.Writer
	pending []byte
	ended   bool // padding was seen: nothing may follow
	decoded []byte
}

func (b *base64Writer) Write(p []byte) (int, error) {
	b.pending = append(b.pending, p...)
	if len(b.pending) >= 4<<10 {
		n := len(b.pending) / 4 * 4
		if err := b.decode(b.pending[:n]); err != nil {
			return 0, err
		}
		b.pending = append(b.pending[:0], b.pending[n:]...)
	}
	return len(p), nil
}

func (b *base64Writer) decode(text []byte) error {
	if len(text) == 0 {
		return nil
	}
	if b.ended {
		return errNotBase64
	}
	b.ended = text[len(text)-1] == '='
	need := base64.StdEncoding.DecodedLen(len(text))
	if cap(b.decoded) < need {
		b.decoded = make([]byte, need)
	}
	n, err := base64.StdEncoding.Decode(b.decoded[:need], text)
	if err != nil {
		return errNotBase64
	}
	_, err = b.out.Write(b.decoded[:n])
	return err
}

// Close decodes what is left.
func (b *base64Writer) Close() error {
	err := b.decode(b.pending)
	b.pending = nil
	return err
}

var errNotBase64 = &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
	Message: "content is not valid base64"}
