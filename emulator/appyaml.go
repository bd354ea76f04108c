package main

import (
	"fmt"

	"github.com/databricks-sample/go-apps-api/emulator/runner"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// readAppYAML returns the command, the env (KEY=VALUE) and the directory to run in. A valueFrom naming one of the
// app's app resources yields the name of the app it points at, as on the platform; other resources are not emulated.
func readAppYAML(path string, app workspace.App) (command, env []string, dir string, err error) {
	y, err := runner.ReadAppYAML(path)
	if err != nil {
		return nil, nil, "", err
	}
	for _, e := range y.Env {
		value := e.Value
		if e.ValueFrom != "" {
			target, ok := app.Resource(e.ValueFrom)
			if !ok {
				return nil, nil, "", fmt.Errorf("%s: env %s: valueFrom %q: app %s has no app resource with that name "+
					"(add it under the app's resources: in the emulator config; only app resources are emulated)",
					path, e.Name, e.ValueFrom, app.Name)
			}
			value = target
		}
		if e.Name == "" {
			return nil, nil, "", fmt.Errorf("%s: an env item has no name", path)
		}
		env = append(env, e.Name+"="+value)
	}
	return y.Command, env, y.Dir, nil
}
