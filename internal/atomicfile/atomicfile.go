// Package atomicfile writes a file so that a reader, or a crash, finds the old file or the new one, never half of
// one: into a temporary file beside it, flushed to disk, then renamed over it (as Tailscale's atomicfile does). The
// state file, the profile, the CLI stand-in and both token caches are written through it.
package atomicfile

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile writes data to path with mode perm, replacing any file there at once.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, bytes.NewReader(data), perm)
}

// Write is WriteFile with the contents read from r (a whole executable, say).
func Write(path string, r io.Reader, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // nothing left behind on failure; no-op after the rename
	err = tmp.Chmod(perm)       // exactly perm, whatever the umask
	if err == nil {
		_, err = io.Copy(tmp, r)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
