// Package gotool builds this repository's programs for the demo, the benchmark and the tests, which run them as the
// platform would: as separate processes, in an environment of their own.
package gotool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// ModuleRoot is the folder of the go.mod of the module being worked in.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run this from inside the repository (no go.mod found)")
	}
	return filepath.Dir(gomod), nil
}

// Build compiles the module's packages (such as "./app") for this machine into the folder bin, each program under
// the name `make build` gives it (ProgramName). go build relinks a program only when it is out of date, so a bin
// kept between runs (CacheDir) saves seconds each time: linking the emulator, with DuckDB, takes ~6 s of CPU.
func Build(ctx context.Context, bin string, packages ...string) error {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return err
	}
	unlock, err := LockDir(bin)
	if err != nil {
		return err
	}
	defer unlock()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", bin + string(filepath.Separator)}, packages...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(packages, " "), err, out)
	}
	for _, pkg := range packages {
		if built, name := filepath.Base(pkg), ProgramName(pkg); built != name {
			// A link, not a rename: go build finds the program it built still there, up to date, next time.
			_ = os.Remove(filepath.Join(bin, name))
			if err := os.Link(filepath.Join(bin, built), filepath.Join(bin, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// CacheDir is a folder of the user's cache (os.UserCacheDir) for this checkout's programs, kept between runs of
// the demo, the benchmark and the tests so that Build relinks only what changed: see CacheDirIn.
func CacheDir(ctx context.Context) (string, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return CacheDirIn(cache, root)
}

// CacheDirIn is CacheDir for the module at root, in the user cache folder cache: cache/go-apps-api/bin-<a hash of
// root>, owner-only, made if missing.
func CacheDirIn(cache, root string) (string, error) {
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(cache, "go-apps-api", "bin-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return dir, nil
}

// ProgramName is the name of a package's program in bin/: its folder's, but callapp for ./caller, since `caller`
// is a bash builtin that a program of that name on PATH never runs before.
func ProgramName(pkg string) string {
	if name := filepath.Base(pkg); name != "caller" {
		return name
	}
	return "callapp"
}

// CleanEnv is this process's environment without the Databricks settings of whoever runs it, and with HOME set to
// home, so that no profile or token cache of theirs is read or written.
func CleanEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "DATABRICKS_") || name == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home)
}

// LockDir holds an exclusive lock on dir's lock file until unlock is called: a program that builds into a folder
// others build into too (CacheDir: the demo, the benchmark, several test binaries at once) waits for them rather
// than rewrite a program one of them is about to run.
func LockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
