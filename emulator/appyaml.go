package main

import (
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// appYAML is the part of an app.yaml the platform acts on when it starts an app.
type appYAML struct {
	Command []string `yaml:"command"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom string `yaml:"valueFrom"`
	} `yaml:"env"`
}

// readAppYAML returns the command, the env (KEY=VALUE) and the directory to run in. A valueFrom naming one of the
// app's app resources yields the name of the app it points at, as on the platform; other resources are not emulated.
func readAppYAML(path string, app workspace.App) (command, env []string, dir string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, "", fmt.Errorf("read app.yaml: %w", err)
	}
	var y appYAML
	if err := yaml.Unmarshal(data, &y); err != nil {
		return nil, nil, "", fmt.Errorf("%s: command must be a list of arguments and env a list of {name, value}: %w", path, err)
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
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, "", err
	}
	return y.Command, env, filepath.Dir(abs), nil
}
