package workspace

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// BRIDGE until the files branch lands: the on-disk layout that branch uses.
func (w *Workspace) bridgeLocal(wsPath string) (string, error) {
	p := strings.TrimPrefix(wsPath, "/Workspace")
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") {
		return "", errors.New("bad path")
	}
	return filepath.Join(w.dataDir, "files", filepath.FromSlash(p)), nil
}

func (w *Workspace) objectKind(wsPath string) (string, error) {
	p, err := w.bridgeLocal(wsPath)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		return "DIRECTORY", nil
	}
	return "FILE", nil
}

func (w *Workspace) copyWorkspaceFolder(wsPath, dest string) error {
	src, err := w.bridgeLocal(wsPath)
	if err != nil {
		return err
	}
	return os.CopyFS(dest, os.DirFS(src).(fs.FS))
}
