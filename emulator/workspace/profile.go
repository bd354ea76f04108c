package workspace

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
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

// WriteProfile makes dir (owner-only) hold a .databrickscfg with a databricks-cli profile for the signed-in user
// and, when cliSource is set, a copy of that executable named databricks: the CLI stand-in. The copy is not a
// symlink because the stand-in finds its profile next to its own resolved path. A later call replaces the files.
func (w *Workspace) WriteProfile(dir, cliSource string) (Profile, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Profile{}, fmt.Errorf("profile directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Profile{}, fmt.Errorf("profile directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return Profile{}, fmt.Errorf("profile directory: %w", err)
	}
	p := Profile{ConfigFile: filepath.Join(dir, ProfileFileName), Name: ProfileName, CLIPath: filepath.Join(dir, CLIFileName)}
	if cliSource != "" {
		if err := copyExecutable(cliSource, p.CLIPath); err != nil {
			return Profile{}, err
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "; Written by the Databricks Apps emulator: the signed-in user of the emulated workspace.\n")
	fmt.Fprintf(&b, "; It is valid while that emulator runs. Use it with DATABRICKS_CONFIG_FILE=%s\n", p.ConfigFile)
	fmt.Fprintf(&b, "[%s]\nhost = %s\nauth_type = databricks-cli\ndatabricks_cli_path = %s\n", p.Name, w.url, p.CLIPath)
	if err := writeFileAtomic(p.ConfigFile, []byte(b.String()), 0o600); err != nil {
		return Profile{}, err
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

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("install the CLI stand-in: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return fmt.Errorf("install the CLI stand-in: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("install the CLI stand-in: %w", err)
	}
	if err := tmp.Chmod(0o700); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("install the CLI stand-in: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("install the CLI stand-in: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("install the CLI stand-in: %w", err)
	}
	return nil
}
