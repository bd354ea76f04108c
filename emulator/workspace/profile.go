package workspace

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/databricks-sample/go-apps-api/internal/atomicfile"
)

// Files of a profile directory: the CLI stand-in finds the profile and keeps its token cache next to itself.
const (
	ProfileName     = "emulator"
	ProfileFileName = ".databrickscfg"
	CLIFileName     = "databricks"
	TokenCacheName  = "token-cache.json"
)

// Profile is a .databrickscfg profile for the signed-in user, served by the CLI stand-in.
type Profile struct {
	ConfigFile string // the .databrickscfg file
	Name       string // the profile in it
	CLIPath    string // the databricks CLI stand-in it runs
}

// profileHeader starts every .databrickscfg the emulator writes; it replaces no other.
const profileHeader = "; Written by the Databricks Apps emulator"

// WriteProfile makes dir hold a .databrickscfg with a databricks-cli profile for the signed-in user and, when
// cliSource is set, that executable as databricks, the CLI stand-in: a hard link or a copy, not a symlink, because
// the stand-in finds its profile next to its own resolved path. A missing dir is created owner-only. An existing
// one keeps its mode, must not be writable by others (they could replace the stand-in that SDK programs run), and
// must not hold a .databrickscfg or databricks the emulator did not write: a later call replaces only its own files.
func (w *Workspace) WriteProfile(dir, cliSource string) (Profile, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Profile{}, fmt.Errorf("profile directory: %w", err)
	}
	p := Profile{ConfigFile: filepath.Join(dir, ProfileFileName), Name: ProfileName, CLIPath: filepath.Join(dir, CLIFileName)}
	if err := prepareProfileDir(p); err != nil {
		return Profile{}, err
	}
	if cliSource != "" {
		if err := installCLI(cliSource, p.CLIPath); err != nil {
			return Profile{}, err
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: the signed-in user of the emulated workspace.\n", profileHeader)
	fmt.Fprintf(&b, "; It is valid while that emulator runs. Use it with DATABRICKS_CONFIG_FILE=%s\n", p.ConfigFile)
	fmt.Fprintf(&b, "[%s]\nhost = %s\nauth_type = databricks-cli\ndatabricks_cli_path = %s\n", p.Name, w.url, p.CLIPath)
	if err := atomicfile.WriteFile(p.ConfigFile, []byte(b.String()), 0o600); err != nil {
		return Profile{}, fmt.Errorf("write %s: %w", p.ConfigFile, err)
	}
	w.profileMu.Lock()
	w.prof = &p
	w.profileMu.Unlock()
	return p, nil
}

func (w *Workspace) profile() (Profile, bool) {
	w.profileMu.Lock()
	defer w.profileMu.Unlock()
	if w.prof == nil {
		return Profile{}, false
	}
	return *w.prof, true
}

// prepareProfileDir creates p's directory, or checks that an existing one is safe to use and holds none of the
// user's own files: --profile-dir ~ must not replace a real .databrickscfg, nor --profile-dir ~/bin the real CLI.
func prepareProfileDir(p Profile) error {
	dir := filepath.Dir(p.ConfigFile)
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("profile directory: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("profile directory: %w", err)
	case !info.IsDir():
		return fmt.Errorf("profile directory %s is not a directory", dir)
	case info.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("profile directory %s is writable by other users, who could replace the CLI stand-in "+
			"that SDK programs run: use a directory only you can write to, or a new one", dir)
	}
	ours, err := writtenByEmulator(p.ConfigFile)
	if err != nil || ours {
		return err
	}
	for _, f := range []string{p.ConfigFile, p.CLIPath} {
		if _, err := os.Lstat(f); err == nil {
			return fmt.Errorf("profile directory %s already holds %s, which the emulator did not write: "+
				"use a new or empty directory", dir, filepath.Base(f))
		}
	}
	return nil
}

// writtenByEmulator reports whether the .databrickscfg at path exists and starts with profileHeader.
func writtenByEmulator(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("profile directory: %w", err)
	}
	defer f.Close()
	head := make([]byte, len(profileHeader))
	if _, err := io.ReadFull(f, head); err != nil {
		return false, nil // shorter than the header: not ours
	}
	return string(head) == profileHeader, nil
}

// installCLI makes dst the CLI stand-in, replacing any there at once: a hard link to the executable src where the
// file system allows one, else a copy. The link is instant whatever src's size; the copy of the emulator (over 100
// MB with its SQL engine), flushed to disk, was most of `emulator run`'s start. Either way the stand-in runs as dst
// (os.Executable names the path it was started by), beside its profile.
func installCLI(src, dst string) error {
	if resolved, err := filepath.EvalSymlinks(src); err == nil {
		src = resolved // a link to a symlink would be a symlink, resolved to src's folder when run
	}
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".link-"+rand.Text())
	if err := os.Link(src, tmp); err == nil {
		if err := os.Rename(tmp, dst); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("install the CLI stand-in: %w", err)
		}
		return nil
	}
	// Another file system, or one without links, or a src the user may not link (fs.protected_hardlinks).
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("install the CLI stand-in: %w", err)
	}
	defer in.Close()
	if err := atomicfile.Write(dst, in, 0o700); err != nil {
		return fmt.Errorf("install the CLI stand-in: %w", err)
	}
	return nil
}
