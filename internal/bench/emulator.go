package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// startEmulator runs the emulator as a developer does (emulator serve, its log going to a file), forwarding api-app
// to upstream, and returns it once its state file is written, with that state: URLs and credentials. It is a process
// of its own so that its CPU time is its own.
func startEmulator(ctx context.Context, dir, bin, upstream string) (*process, workspace.State, error) {
	stateFile := filepath.Join(dir, "emulator-state.json")
	var state workspace.State
	p, err := startProcess(ctx, dir, "emulator", []string{bin, "serve", "--fresh", "--state", stateFile,
		"--profile-dir", filepath.Join(dir, "emulator-profile"), "--upstream", "api-app=" + upstream}, nil,
		readyWhen(func(*process) bool {
			data, err := os.ReadFile(stateFile)
			return err == nil && json.Unmarshal(data, &state) == nil
		}))
	return p, state, err
}
