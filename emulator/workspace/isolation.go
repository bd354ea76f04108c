package workspace

import (
	"path/filepath"

	"github.com/databricks-sample/go-apps-api/emulator/runner"
)

// sandbox is the container a deployed app and its installers run in (runner.Sandbox): a home of the app's own,
// and, where the machine allows it, none of the emulator's files in sight but the deployment's snapshot and
// virtualenv. Hidden are the data folder (every app's files and snapshots, the workspace's state and signing keys),
// the state file and the profile folder (service principal secrets, the CLI stand-in's tokens), and the user's own
// Databricks CLI configuration and token cache. `emulator run` starts the developer's own command without one.
func (b *builder) sandbox(app string, d *deployment) *runner.Sandbox {
	hide := append([]string{b.dataDir}, b.hidden()...)
	if home := b.userEnv("HOME"); home != "" {
		hide = append(hide, filepath.Join(home, ".databrickscfg"), filepath.Join(home, ".databricks"))
	}
	if f := b.userEnv("DATABRICKS_CONFIG_FILE"); f != "" {
		hide = append(hide, f)
	}
	reveal := []string{d.dir}
	if d.venv != "" {
		reveal = append(reveal, d.venv)
	}
	return &runner.Sandbox{Home: b.appHome(app), Hide: hide, Reveal: reveal}
}

// reportIsolation says once, at start, when deployed apps cannot be isolated on this machine.
func (b *builder) reportIsolation() {
	if err := runner.SandboxProblem(); err != nil {
		b.logger.Warn("deployed apps run without isolation: they can read what the user running the emulator can, "+
			"its data folder and state file included", "reason", err.Error())
	}
}
