//go:build linux

package runner

// The sandbox on Linux. The emulator runs its own executable again as the sandbox's first process (sandboxArg), in new
// user, mount and PID namespaces: as root of that user namespace it may mount in its own mount namespace, which no
// other process sees. It covers each hidden path with an empty tmpfs (a hidden file: its folder, every other entry of
// it bound back), binds back the revealed folders, mounts a /proc of its own PID namespace (the emulator's processes,
// their environments and their root folders are not in it), and starts the app in a further user namespace, where the
// app holds no capability over those mounts: it can neither unmount them nor, the kernel makes sure, bind what they
// cover. The first process stays as PID 1 and waits: when it ends, the kernel kills whatever the app left running, as
// when the platform throws a container away.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// sandboxSpec is what the emulator tells the sandbox's first process, as its second argument.
type sandboxSpec struct {
	Hide   []string `json:"hide"`
	Reveal []string `json:"reveal"`
	Dir    string   `json:"dir"`
	UID    int      `json:"uid"` // the emulator's, which the app runs as
	GID    int      `json:"gid"`
	Probe  bool     `json:"probe,omitempty"` // set up, start nothing but a check of the nested namespace, and exit
}

// sandboxOK, as the first argument, exits at once with 0: what the probe starts in the nested namespace.
const sandboxOK = sandboxArg + "-ok"

func init() {
	if len(os.Args) > 1 && os.Args[1] == sandboxOK {
		os.Exit(0)
	}
	if len(os.Args) > 2 && os.Args[1] == sandboxArg {
		os.Exit(sandboxMain(os.Args[2], os.Args[3:]))
	}
}

func sandboxCommand(argv []string, dir string, env []string, sb *Sandbox) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("sandbox: find the emulator's executable: %w", err)
	}
	spec := sandboxSpec{Hide: sb.Hide, Reveal: append(slices.Clone(sb.Reveal), sb.Home), Dir: dir,
		UID: os.Getuid(), GID: os.Getgid()}
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{sandboxArg, string(data)}, argv...)...)
	cmd.Env = env
	cmd.SysProcAttr = namespaces(spec.UID, spec.GID)
	return cmd, nil
}

// namespaces are the sandbox's: the first process is root of a new user namespace, mapped to the emulator's user.
func namespaces(uid, gid int) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:                    true,
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
		GidMappingsEnableSetgroups: false,
	}
}

var (
	probeOnce    sync.Once
	probeProblem error
)

// SandboxProblem says why deployed apps cannot run isolated on this machine, or returns nil when they can. It tries
// once per process: a sandbox that hides a folder and starts a process in it.
func SandboxProblem() error {
	probeOnce.Do(func() { probeProblem = probe() })
	return probeProblem
}

func probe() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the emulator's executable: %w", err)
	}
	hidden, err := os.MkdirTemp("", "databricks-apps-sandbox-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(hidden)
	data, _ := json.Marshal(sandboxSpec{Hide: []string{hidden}, Dir: "/", UID: os.Getuid(), GID: os.Getgid(), Probe: true})
	cmd := exec.Command(self, sandboxArg, string(data))
	cmd.SysProcAttr = namespaces(os.Getuid(), os.Getgid())
	out, err := cmd.CombinedOutput()
	if err != nil {
		why := strings.TrimSpace(string(out))
		if why == "" {
			why = err.Error()
		}
		return fmt.Errorf("user and mount namespaces are not available to this user (%s)", why)
	}
	return nil
}

// sandboxMain is the sandbox's first process: it isolates, starts the app and returns its exit status.
func sandboxMain(specJSON string, argv []string) int {
	var spec sandboxSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox: bad spec:", err)
		return 125
	}
	if err := isolate(spec); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		return 125
	}
	if spec.Probe {
		self, _ := os.Executable()
		argv = []string{self, sandboxOK}
	}
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "sandbox: no command")
		return 125
	}
	// The app's process group gets the emulator's SIGTERM itself; this process only waits for it, and must not die
	// first (as PID 1, its end kills the namespace). Caught, not ignored: an ignored signal stays ignored in the app.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	cmd := exec.Command(argv[0], argv[1:]...) // found in the app's PATH: this process's environment is the app's
	cmd.Dir = spec.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: spec.UID, HostID: 0, Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: spec.GID, HostID: 0, Size: 1}},
		GidMappingsEnableSetgroups: false,
	}
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, err)
		return 127
	}
}

// isolate sets up the mount namespace: hidden paths covered, revealed folders bound back, a /proc of its own.
func isolate(spec sandboxSpec) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the mounts private: %w", err)
	}
	// The revealed folders are opened before anything is covered, and bound back from these descriptors last.
	var reveals []*os.File
	for _, p := range spec.Reveal {
		f, err := os.OpenFile(p, unix.O_PATH|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("reveal %s: %w", p, err)
		}
		defer f.Close()
		reveals = append(reveals, f)
	}
	for _, h := range hideOrder(spec.Hide) {
		if err := h.apply(); err != nil {
			return err
		}
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount a /proc of its own: %w", err)
	}
	for i, f := range reveals {
		if err := bindFrom(f, spec.Reveal[i], true); err != nil {
			return fmt.Errorf("reveal %s: %w", spec.Reveal[i], err)
		}
	}
	return nil
}

// hidden is one step of hiding: a folder covered whole, or the files named in a folder, covered with the rest of it
// bound back.
type hidden struct {
	dir   string
	files []string // when set, only these entries of dir are hidden
}

// hideOrder groups the paths into steps, shallowest first, so that a deeper step covers what a shallower one bound
// back (a data folder next to a hidden state file).
func hideOrder(paths []string) []hidden {
	var steps []hidden
	files := map[string][]string{}
	for _, p := range paths {
		p = filepath.Clean(p)
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			continue // nothing to hide
		case fi.IsDir():
			steps = append(steps, hidden{dir: p})
		default:
			files[filepath.Dir(p)] = append(files[filepath.Dir(p)], filepath.Base(p))
		}
	}
	for dir, names := range files {
		steps = append(steps, hidden{dir: dir, files: names})
	}
	slices.SortFunc(steps, func(a, b hidden) int {
		return strings.Count(a.dir, string(filepath.Separator)) - strings.Count(b.dir, string(filepath.Separator))
	})
	return steps
}

func (h hidden) apply() error {
	if fi, err := os.Stat(h.dir); err != nil || !fi.IsDir() {
		return nil // already covered by a shallower step
	}
	if h.files == nil {
		return coverWithTmpfs(h.dir)
	}
	if h.dir == "/" { // the root cannot be covered: each file on its own (best effort: a rename shows through)
		for _, name := range h.files {
			if err := syscall.Mount("/dev/null", filepath.Join(h.dir, name), "", syscall.MS_BIND, ""); err != nil {
				return fmt.Errorf("hide %s: %w", filepath.Join(h.dir, name), err)
			}
		}
		return nil
	}
	entries, err := os.ReadDir(h.dir)
	if err != nil {
		return fmt.Errorf("hide in %s: %w", h.dir, err)
	}
	type kept struct {
		name string
		mode os.FileMode
		file *os.File // nil for a symlink
		link string
	}
	var keep []kept
	for _, e := range entries {
		if slices.Contains(h.files, e.Name()) {
			continue
		}
		p := filepath.Join(h.dir, e.Name())
		if e.Type()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err == nil {
				keep = append(keep, kept{name: e.Name(), mode: os.ModeSymlink, link: target})
			}
			continue
		}
		f, err := os.OpenFile(p, unix.O_PATH|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
		if err != nil {
			continue // gone meanwhile
		}
		defer f.Close()
		keep = append(keep, kept{name: e.Name(), mode: e.Type(), file: f})
	}
	if err := coverWithTmpfs(h.dir); err != nil {
		return err
	}
	for _, k := range keep {
		p := filepath.Join(h.dir, k.name)
		if k.file == nil {
			_ = os.Symlink(k.link, p)
			continue
		}
		if err := bindFrom(k.file, p, k.mode.IsDir()); err != nil {
			return fmt.Errorf("keep %s: %w", p, err)
		}
	}
	return nil
}

func coverWithTmpfs(dir string) error {
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755,size=16m"); err != nil {
		return fmt.Errorf("hide %s: %w", dir, err)
	}
	return nil
}

// bindFrom binds what f is open on at target, making target first (a folder, or an empty file) if it is missing.
func bindFrom(f *os.File, target string, dir bool) error {
	if dir {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
	} else if _, err := os.Lstat(target); err != nil {
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		mp, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		_ = mp.Close()
	}
	return syscall.Mount("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), target, "", syscall.MS_BIND|syscall.MS_REC, "")
}
