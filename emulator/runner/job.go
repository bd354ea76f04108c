package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Job is a command the platform runs to completion for an app before starting it: an installer (npm install, pip
// install) or its build (npm run build).
type Job struct {
	Name    string   // for messages: "npm install"
	Command []string // argv, run as it is
	Dir     string
	// Env is the job's whole environment: unlike an app's, nothing of this process's is added to it.
	Env            []string
	Stdout, Stderr io.Writer
	// Sandbox, when set, runs the job as the platform's container would the app (see Sandbox).
	Sandbox *Sandbox
}

// RunJob runs j until it exits, or until ctx ends: then its process group gets SIGTERM and, StopGrace later,
// SIGKILL. It returns an error when j did not exit with status 0.
func RunJob(ctx context.Context, j Job) error {
	if len(j.Command) == 0 {
		return fmt.Errorf("%s: no command to run", j.Name)
	}
	env := j.Env
	if j.Sandbox != nil {
		var tmpDir string
		var err error
		if env, tmpDir, err = sandboxEnv(j.Sandbox, j.Env); err != nil {
			return fmt.Errorf("%s: TMPDIR: %w", j.Name, err)
		}
		defer os.RemoveAll(tmpDir)
	}
	cmd, err := command(j.Command, j.Dir, env, j.Sandbox)
	if err != nil {
		return fmt.Errorf("%s: %w", j.Name, err)
	}
	cmd.Stdout, cmd.Stderr = j.Stdout, j.Stderr
	cmd.WaitDelay = pipeDelay
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", j.Name, err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(StopGrace):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
		case <-done:
		}
	}()
	err = cmd.Wait()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever it left behind in its group goes with it
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s: stopped: %w", j.Name, context.Cause(ctx))
	case errors.As(err, &exit):
		return fmt.Errorf("%s exited with status %d", j.Name, exit.ExitCode())
	default:
		return fmt.Errorf("%s: %w", j.Name, err)
	}
}
