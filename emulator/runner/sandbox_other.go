//go:build !linux

package runner

import (
	"errors"
	"os/exec"
)

// SandboxProblem says why deployed apps cannot run isolated on this machine: the namespaces it needs are Linux's.
func SandboxProblem() error {
	return errors.New("isolating apps needs Linux's user and mount namespaces")
}

func sandboxCommand([]string, string, []string, *Sandbox) (*exec.Cmd, error) {
	return nil, SandboxProblem()
}
