package runner

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Sandbox is the emulator's stand-in for the container the platform runs a deployed app in. The process gets only
// the environment it is given (nothing of the emulator's), a home of its own (HOME, with its TMPDIR inside), and,
// where the machine allows it (Linux with user namespaces), its own user, mount and PID namespaces: the paths in Hide
// are empty folders to it, but for those in Reveal, and it sees no other process, the emulator's included. Without
// namespaces it still gets its own environment, home and TMPDIR; [SandboxProblem] says why isolation is missing.
type Sandbox struct {
	Home string // the app's own home folder: HOME, and its TMPDIR is made inside it
	// Hide are what the process must not read: the emulator's data folder, its state file, its profile folder. A
	// file is hidden with every other entry of its folder kept (a file replaced by rename would show through a
	// mount on the file itself).
	Hide []string
	// Reveal are folders under Hide the process keeps, as they are: the app's snapshot and virtualenv. Home is
	// always revealed.
	Reveal []string
}

// sandboxArg, as the first argument of this executable, makes it the sandbox's first process (see
// sandbox_linux.go) rather than the program it was built as.
const sandboxArg = "databricks-apps-emulator-sandbox"

// command builds the command that runs argv in dir with env: in sb when sb is set (and the machine allows it), in
// its own process group either way.
func command(argv []string, dir string, env []string, sb *Sandbox) (cmd *exec.Cmd, err error) {
	if sb != nil && SandboxProblem() == nil {
		return sandboxCommand(argv, dir, env, sb)
	}
	name := argv[0]
	if sb != nil { // the app's PATH finds its command (its virtualenv's bin first), not the emulator's
		if name, err = lookPath(argv[0], env); err != nil {
			return nil, err
		}
	}
	cmd = exec.Command(name, argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// lookPath finds name in the PATH of env, as a shell in that environment would.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &exec.Error{Name: name, Err: errors.New("executable file not found in the app's PATH")}
}
