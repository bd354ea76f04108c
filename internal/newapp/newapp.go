package main

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"go/format"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// options say what to create and from where.
type options struct {
	name     string // the app's name on the platform and under the emulator
	module   string // the new module's path
	dir      string // where the new module goes
	emulator string // the emulator binary the new Makefile's dev target runs
	sample   string // this sample's root
}

//go:embed template
var templates embed.FS

// create writes the new module into o.dir and builds it; on failure it removes what it wrote.
func create(ctx context.Context, o options, stderr io.Writer) (err error) {
	if err := workspace.CheckAppName(o.name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	if err := module.CheckImportPath(o.module); err != nil {
		return fmt.Errorf("--module: %w", err)
	}
	if err := emptyOrMissing(o.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(o.dir)
		}
	}()

	sampleModule, goMod, err := readGoMod(filepath.Join(o.sample, "go.mod"), o.module)
	if err != nil {
		return err
	}
	if err := copyApp(filepath.Join(o.sample, "app"), o.dir, sampleModule+"/app", o); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.dir, "go.mod"), goMod, 0o644); err != nil {
		return err
	}
	for _, f := range []string{"go.sum", "app.yaml"} {
		if err := copyFile(filepath.Join(o.sample, f), filepath.Join(o.dir, f)); err != nil {
			return err
		}
	}
	if err := writeTemplates(o); err != nil {
		return err
	}
	// tidy keeps only what the app needs of the sample's requirements (no emulator, caller or test tools), from the
	// module cache the sample filled. With -e it carries on past the modules that only the tests of the app's
	// dependencies import, which an offline cache may lack and the app never builds: its output counts only if the
	// build after it fails.
	var tidyOut bytes.Buffer
	tidy := exec.CommandContext(ctx, "go", "mod", "tidy", "-e")
	tidy.Dir, tidy.Stdout, tidy.Stderr = o.dir, &tidyOut, &tidyOut
	tidyErr := tidy.Run()
	build := exec.CommandContext(ctx, "go", "build", "./...")
	build.Dir, build.Stdout, build.Stderr = o.dir, stderr, stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./... in %s: %w (go mod tidy said: %v %s)", o.dir, err, tidyErr, &tidyOut)
	}
	return nil
}

func emptyOrMissing(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("%s is not empty: give a new folder", dir)
	}
	return nil
}

// readGoMod returns the sample's module path, and its go.mod made the new module's: the new path, the same go
// version and requirements (tidied after the copy), no tools.
func readGoMod(path, newModule string) (string, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	f, err := modfile.Parse(path, data, nil)
	if err != nil {
		return "", nil, err
	}
	sampleModule := f.Module.Mod.Path
	if err := f.AddModuleStmt(newModule); err != nil {
		return "", nil, err
	}
	for _, t := range f.Tool {
		if err := f.DropTool(t.Path); err != nil {
			return "", nil, err
		}
	}
	f.Cleanup()
	out, err := f.Format()
	return sampleModule, out, err
}

// defaultName is the line of app/run.go that names the app off the platform.
var defaultName = regexp.MustCompile(`(defaultAppName\s*=\s*)"[^"]*"`)

// copyApp copies the app's folder, its subpackages, tests and embedded files included, importing the new module's
// packages where it imported the sample's, and naming the app.
func copyApp(src, dst, oldImport string, o options) error {
	renamed := false
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(path, ".go"):
			data = bytes.ReplaceAll(data, []byte(`"`+oldImport+`/`), []byte(`"`+o.module+`/`))
			if rel == "run.go" {
				if n := len(defaultName.FindAll(data, -1)); n != 1 {
					return fmt.Errorf("app/run.go: want one defaultAppName to rename, found %d", n)
				}
				data = defaultName.ReplaceAll(data, []byte(`${1}"`+o.name+`"`))
				renamed = true
			}
			if data, err = format.Source(data); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		case rel == "openapi.json":
			data = bytes.Replace(data, []byte(`"title": "Databricks App API (Go sample)"`),
				[]byte(`"title": "`+o.name+`"`), 1)
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err == nil && !renamed {
		err = errors.New("app/run.go not found: is this the sample's checkout?")
	}
	return err
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

// writeTemplates writes the new module's Makefile, bundle, README and .gitignore (template/*.tmpl, named for where
// they go with dots as underscores: dot_gitignore.tmpl is .gitignore).
func writeTemplates(o options) error {
	entries, err := templates.ReadDir("template")
	if err != nil {
		return err
	}
	for _, e := range entries {
		t, err := template.ParseFS(templates, "template/"+e.Name())
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(e.Name(), ".tmpl")
		name = strings.Replace(name, "dot_", ".", 1)
		var b bytes.Buffer
		if err := t.Execute(&b, map[string]string{"Name": o.name, "Module": o.module, "Emulator": o.emulator,
			"Sample": o.sample}); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.dir, name), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}
