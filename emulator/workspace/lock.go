package workspace

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Lock is an exclusive hold on a file, for as long as this process runs or until Release: what keeps a second
// emulator off a data folder or a state file that another one is using.
type Lock struct{ f *os.File }

// ErrLocked is why LockFile refused: another process holds the lock.
var ErrLocked = errors.New("in use by another emulator")

// LockFile takes the lock file at path, creating it owner-only, and writes this process's id into it. When another
// process holds it, the error (wrapping ErrLocked) names that process.
func LockFile(path string) (*Lock, error) {
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			holder := holderOf(f)
			_ = f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%w: %s", ErrLocked, holder)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The holder removes the file on Release: a lock taken on a file that was removed meanwhile holds nothing.
		held, _ := f.Stat()
		now, err := os.Stat(path)
		if err != nil || !os.SameFile(held, now) {
			_ = f.Close()
			continue
		}
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
		return &Lock{f: f}, nil
	}
	return nil, fmt.Errorf("lock %s: it keeps being replaced", path)
}

// holderOf names the process whose id the lock file holds, with its command line where the system shows it.
func holderOf(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid := strings.TrimSpace(string(buf[:n]))
	if _, err := strconv.Atoi(pid); err != nil {
		return "held by a process that has not written its id yet"
	}
	cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil || len(cmdline) == 0 {
		return "held by process " + pid
	}
	return fmt.Sprintf("held by process %s (%s)", pid, strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " ")))
}

// Release lets the lock go and removes its file. Release on a nil Lock does nothing.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	_ = os.Remove(l.f.Name())
	return l.f.Close()
}
