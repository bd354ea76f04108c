package runner

import (
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// AppYAML is the part of an app.yaml the platform acts on when it starts an app.
type AppYAML struct {
	Command []string `yaml:"command"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom string `yaml:"valueFrom"` // an app resource's key
	} `yaml:"env"`
	// Dir is the folder holding the file: the platform runs the command there.
	Dir string `yaml:"-"`
}

// ReadAppYAML reads an app.yaml. It does not resolve valueFrom: that needs the app's resources.
func ReadAppYAML(path string) (AppYAML, error) {
	var y AppYAML
	data, err := os.ReadFile(path)
	if err != nil {
		return y, fmt.Errorf("read app.yaml: %w", err)
	}
	if err := yaml.Unmarshal(data, &y); err != nil {
		return y, fmt.Errorf("%s: command must be a list of arguments and env a list of {name, value}: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return y, err
	}
	y.Dir = filepath.Dir(abs)
	return y, nil
}
