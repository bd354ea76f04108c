package workspace

// What a deployment installs and builds between copying an app's source and starting it, as the platform's build
// does ("Deploy a Databricks app", docs/platform.md): with a package.json, npm install (pnpm install
// --frozen-lockfile with a pnpm-lock.yaml), then the Python dependencies, then npm run build when package.json has a
// build script; without one, the Python dependencies only. The Python dependencies are requirements.txt, installed
// with pip, or else a pyproject.toml with its uv.lock, installed with uv sync, into a virtualenv of the app's own.
// The app then runs app.yaml's command, or the platform's default: npm run start with a package.json, python <the
// first .py file> without.
//
// Installers run as the app does, in its sandbox (they run the app's own code: setup.py, npm's lifecycle scripts),
// with the user's own pip, npm and uv configuration, so that a local mirror works offline. An install is kept per app
// and reused while its inputs are unchanged (requirements.txt, package.json and its lock file), so a redeploy of
// changed code installs nothing.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"

	"github.com/databricks-sample/go-apps-api/emulator/runner"
)

// installTimeout bounds one installer or build: a registry that never answers must not hold a deployment forever.
const installTimeout = 15 * time.Minute

// completeMarker marks an environment whose install finished, so a later deployment may reuse it.
const completeMarker = ".emulator-complete"

// builder installs and builds what a deployment needs, and knows the sandbox an app and its installers run in
// (isolation.go). It owns the apps' folders under the data folder (their homes and kept installs), the user's
// environment and the Python interpreter, found once. A deployment's fields and an app's log are the apps': it
// reaches them through deploymentRecorder, holding no lock of its own.
type builder struct {
	dataDir     string          // the apps' folders are under it; so is what the sandbox hides
	userEnviron []string        // Options.UserEnv
	hidden      func() []string // the workspace's own files a sandboxed app must not see
	ctx         context.Context // ends when Close starts: an install under way stops
	stderr      *lockedWriter   // the emulator's output (AppStderr), where installers' output goes too
	logger      *slog.Logger
	apps        deploymentRecorder

	pythonOnce sync.Once // the interpreter virtualenvs are made from
	python     string
	pythonErr  error
}

// deploymentRecorder is what a build needs of the apps (appManager): the lock that guards a deployment's fields,
// its status, and the app's log.
type deploymentRecorder interface {
	// withDeployment runs f holding the lock that guards every deployment's fields.
	withDeployment(f func())
	setStatus(d *deployment, state apps.AppDeploymentState, message string)
	appSystemLog(app, msg string)
	appLogSystemWriter(app string) io.Writer
}

// appDir is where the workspace keeps what an app's deployments share: its home, its virtualenvs, its node_modules.
func (b *builder) appDir(app string) string { return filepath.Join(b.dataDir, "apps", app) }

// forget removes an app's home and installs, once the app is deleted.
func (b *builder) forget(app string) { _ = os.RemoveAll(b.appDir(app)) }

// appHome is the app's HOME: its own, across its deployments (npm's and pip's caches live there).
func (b *builder) appHome(app string) string { return filepath.Join(b.appDir(app), "home") }

// install runs the platform's build steps for the deployment's snapshot and records on d what they made (its
// virtualenv). Their output goes to the app's log and, on failure, into the error.
func (b *builder) install(app string, d *deployment) error {
	dir := d.dir
	var venv, nodeKey string
	if exists(filepath.Join(dir, "package.json")) {
		key, err := b.installNodeModules(app, d)
		if err != nil {
			return err
		}
		nodeKey = key
	}
	venv, err := b.installPython(app, d)
	if err != nil {
		return err
	}
	b.apps.withDeployment(func() { d.venv = venv })
	if hasBuildScript(dir) {
		b.apps.setStatus(d, apps.AppDeploymentStateInProgress, "Building the app: npm run build")
		if err := b.runInstaller(app, d, "npm run build", []string{"npm", "run", "build"}); err != nil {
			return err
		}
	}
	b.apps.withDeployment(func() { d.nodeKey = nodeKey })
	return nil
}

// installNodeModules runs npm install (or pnpm's) in the snapshot, or puts back the node_modules of an earlier
// deployment whose package.json and lock file were the same. It returns the install's key.
func (b *builder) installNodeModules(app string, d *deployment) (string, error) {
	dir := d.dir
	installer, name := []string{"npm", "install", "--no-audit", "--no-fund"}, "npm install"
	if exists(filepath.Join(dir, "pnpm-lock.yaml")) {
		installer, name = []string{"pnpm", "install", "--frozen-lockfile"}, "pnpm install --frozen-lockfile"
	}
	if _, err := exec.LookPath(installer[0]); err != nil {
		return "", fmt.Errorf("the app has a package.json, which the platform installs with %s: %s is not on "+
			"the emulator's PATH (install Node.js and npm)", name, installer[0])
	}
	key := inputsKey(dir, installer[0], "package.json", "package-lock.json", "npm-shrinkwrap.json", "pnpm-lock.yaml")
	cache := filepath.Join(b.appDir(app), "node-"+key)
	modules := filepath.Join(dir, "node_modules")
	if exists(filepath.Join(cache, completeMarker)) {
		b.apps.setStatus(d, apps.AppDeploymentStateInProgress, "Installing Node.js dependencies: reusing node_modules "+
			"(package.json and its lock file are unchanged)")
		b.apps.appSystemLog(app, "Reusing node_modules of an earlier deployment: package.json and its lock file are unchanged")
		if err := os.RemoveAll(modules); err != nil {
			return "", err
		}
		if !exists(filepath.Join(cache, "node_modules")) {
			return key, nil // a package.json without dependencies
		}
		return key, linkTree(filepath.Join(cache, "node_modules"), modules)
	}
	b.apps.setStatus(d, apps.AppDeploymentStateInProgress, "Installing Node.js dependencies: "+name)
	if err := b.runInstaller(app, d, name, installer); err != nil {
		return "", err
	}
	// Kept for the next deployment, as hard links: the snapshot's copy and the kept one are one set of files.
	_ = os.RemoveAll(cache)
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return "", err
	}
	if exists(modules) {
		if err := linkTree(modules, filepath.Join(cache, "node_modules")); err != nil {
			return "", fmt.Errorf("keep node_modules for later deployments: %w", err)
		}
	}
	return key, os.WriteFile(filepath.Join(cache, completeMarker), nil, 0o600)
}

// installPython makes the app's virtualenv: with requirements.txt installed by pip, or a pyproject.toml and its
// uv.lock by uv sync, or else empty, so that `python` runs the platform's Python. It returns the virtualenv's folder,
// or "" when the machine has no Python and the app asks for none.
func (b *builder) installPython(app string, d *deployment) (string, error) {
	dir := d.dir
	requirements := exists(filepath.Join(dir, "requirements.txt"))
	uvProject := !requirements && exists(filepath.Join(dir, "pyproject.toml")) && exists(filepath.Join(dir, "uv.lock"))
	python, err := b.interpreter()
	if err != nil {
		if requirements || uvProject {
			return "", fmt.Errorf("the app has Python dependencies, which the platform installs into a virtualenv: %w", err)
		}
		return "", nil // a Node.js or Go app on a machine without Python
	}
	if uvProject {
		if _, err := exec.LookPath("uv"); err != nil {
			return "", errors.New("the app has a pyproject.toml and a uv.lock, which the platform installs with " +
				"uv sync: uv is not on the emulator's PATH (https://docs.astral.sh/uv/)")
		}
	}
	key := inputsKey(dir, python, "requirements.txt", "pyproject.toml", "uv.lock")
	venv := filepath.Join(b.appDir(app), "python-"+key)
	if exists(filepath.Join(venv, completeMarker)) {
		if requirements || uvProject {
			b.apps.setStatus(d, apps.AppDeploymentStateInProgress, "Installing Python dependencies: reusing the "+
				"virtualenv (unchanged requirements)")
			b.apps.appSystemLog(app, "Reusing the virtualenv of an earlier deployment: its requirements are unchanged")
		}
		return venv, nil
	}
	if err := os.RemoveAll(venv); err != nil {
		return "", err
	}
	if err := os.MkdirAll(venv, 0o755); err != nil {
		return "", err
	}
	steps := []installStep{{"python -m venv", []string{python, "-m", "venv", venv}}}
	switch {
	case requirements:
		b.apps.setStatus(d, apps.AppDeploymentStateInProgress, "Installing Python dependencies: pip install -r requirements.txt")
		steps = append(steps, installStep{"pip install -r requirements.txt", []string{filepath.Join(venv, "bin", "python"),
			"-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-r", "requirements.txt"}})
	case uvProject:
		b.apps.setStatus(d, apps.AppDeploymentStateInProgress, "Installing Python dependencies: uv sync")
		steps[0].command = append(steps[0].command, "--without-pip")
		steps = append(steps, installStep{"uv sync", []string{"uv", "sync", "--frozen", "--no-dev", "--python",
			filepath.Join(venv, "bin", "python")}})
	default: // a virtualenv only for `python` itself: quick, and needs no ensurepip
		steps[0].command = append(steps[0].command, "--without-pip")
	}
	b.apps.withDeployment(func() { d.venv = venv }) // the installers' sandbox reveals it
	for _, step := range steps {
		if err := b.runInstaller(app, d, step.name, step.command); err != nil {
			_ = os.RemoveAll(venv)
			if !requirements && !uvProject {
				b.apps.appSystemLog(app, "No virtualenv for `python`: "+err.Error())
				return "", nil
			}
			return "", err
		}
	}
	return venv, os.WriteFile(filepath.Join(venv, completeMarker), nil, 0o600)
}

// installStep is one command of an install.
type installStep struct {
	name    string
	command []string
}

// interpreter finds the Python that virtualenvs are made from, once: python3 on the emulator's PATH, resolved to
// the interpreter itself (a pyenv shim needs the user's HOME, which an app does not have).
func (b *builder) interpreter() (string, error) {
	b.pythonOnce.Do(func() {
		path, err := exec.LookPath("python3")
		if err != nil {
			b.pythonErr = errors.New("python3 is not on the emulator's PATH (install Python 3 and its venv module)")
			return
		}
		out, err := exec.Command(path, "-c", "import sys; print(sys.executable)").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			b.pythonErr = fmt.Errorf("%s does not run: %v", path, err)
			return
		}
		b.python = strings.TrimSpace(string(out))
	})
	return b.python, b.pythonErr
}

// runInstaller runs one installer or build step in the deployment's snapshot, in the app's sandbox, with the user's
// installer configuration. Its output is the app's log (SYSTEM) and the emulator's; a failure quotes its last lines.
func (b *builder) runInstaller(app string, d *deployment, name string, command []string) error {
	b.apps.appSystemLog(app, "Running "+name)
	tail := &tailBuffer{max: 20}
	log := b.apps.appLogSystemWriter(app)
	prefix := []byte("[" + app + "] ")
	out := io.MultiWriter(log, &prefixWriter{out: b.stderr, prefix: prefix}, tail)
	ctx, cancel := context.WithTimeout(b.ctx, installTimeout)
	defer cancel()
	var snapshot deployment
	b.apps.withDeployment(func() { snapshot = *d })
	env := append(b.platformEnv(&snapshot), b.installerEnv()...)
	err := runner.RunJob(ctx, runner.Job{Name: name, Command: command, Dir: d.dir, Env: env, Stdout: out, Stderr: out,
		Sandbox: b.sandbox(app, &snapshot)})
	if err != nil {
		return fmt.Errorf("%w%s", err, tail.lastLines())
	}
	return nil
}

// platformEnv is the environment the platform gives a deployed app and its installers, before its own variables
// (DATABRICKS_*) and app.yaml's: its virtualenv and node_modules/.bin first on PATH, then the runtimes of the
// emulator's PATH. Nothing else of the emulator's environment reaches the app.
func (b *builder) platformEnv(d *deployment) []string {
	var path []string
	if d.venv != "" {
		path = append(path, filepath.Join(d.venv, "bin"))
	}
	path = append(path, filepath.Join(d.dir, "node_modules", ".bin"))
	if p := b.userEnv("PATH"); p != "" {
		path = append(path, p)
	}
	env := []string{"PATH=" + strings.Join(path, string(os.PathListSeparator)), "LANG=C.UTF-8",
		// Python writes its output as it goes, so `databricks apps logs` shows a print at once, not at exit.
		"PYTHONUNBUFFERED=1"}
	if d.venv != "" {
		env = append(env, "VIRTUAL_ENV="+d.venv)
	}
	return env
}

// installerEnv is the part of the user's environment that configures installers: pip's, npm's and uv's settings
// (an index or registry mirror, for an offline machine), the proxy and the certificates. pip.conf and .npmrc in
// the user's home are named explicitly, since an installer's HOME is the app's.
func (b *builder) installerEnv() []string {
	var env []string
	has := map[string]bool{}
	for _, kv := range b.userEnviron {
		name, _, _ := strings.Cut(kv, "=")
		upper := strings.ToUpper(name)
		switch {
		case strings.HasPrefix(upper, "PIP_"), strings.HasPrefix(upper, "NPM_CONFIG_"), strings.HasPrefix(upper, "UV_"),
			slices.Contains([]string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE",
				"SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"}, upper):
			env = append(env, kv)
			has[upper] = true
		}
	}
	home := b.userEnv("HOME")
	if !has["PIP_CONFIG_FILE"] && home != "" {
		configHome := b.userEnv("XDG_CONFIG_HOME")
		if configHome == "" {
			configHome = filepath.Join(home, ".config")
		}
		for _, f := range []string{filepath.Join(configHome, "pip", "pip.conf"), filepath.Join(home, ".pip", "pip.conf")} {
			if exists(f) {
				env = append(env, "PIP_CONFIG_FILE="+f)
				break
			}
		}
	}
	if !has["NPM_CONFIG_USERCONFIG"] && home != "" && exists(filepath.Join(home, ".npmrc")) {
		env = append(env, "NPM_CONFIG_USERCONFIG="+filepath.Join(home, ".npmrc"))
	}
	return append(env, "NPM_CONFIG_UPDATE_NOTIFIER=false", "PIP_PROGRESS_BAR=off")
}

// userEnv is a variable of the environment of the user who started the emulator.
func (b *builder) userEnv(name string) string {
	for i := len(b.userEnviron) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(b.userEnviron[i], name+"="); ok {
			return v
		}
	}
	return ""
}

// defaultCommand is what the platform runs when app.yaml names no command: npm run start for an app with a
// package.json, else python and "the first .py file in your app's file structure" (docs). Which file is first is
// not said: the emulator takes the root folder's first in name order, or else the first found walking its folders
// in name order.
func defaultCommand(dir string) ([]string, error) {
	if exists(filepath.Join(dir, "package.json")) {
		return []string{"npm", "run", "start"}, nil
	}
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries { // sorted by name
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".py") {
				return []string{"python", e.Name()}, nil
			}
		}
	}
	var first string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && d.Name() == "node_modules":
			return fs.SkipDir
		case !d.IsDir() && strings.HasSuffix(d.Name(), ".py"):
			first, _ = filepath.Rel(dir, p)
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if first == "" {
		return nil, errors.New("it has no app.yaml command, no package.json and no .py file: nothing the platform " +
			"would run (add an app.yaml with a command)")
	}
	return []string{"python", first}, nil
}

// hasBuildScript reports whether package.json defines scripts.build.
func hasBuildScript(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return false
	}
	var pkg struct {
		Scripts map[string]any `json:"scripts"`
	}
	return json.Unmarshal(data, &pkg) == nil && pkg.Scripts["build"] != nil
}

// inputsKey names an install by what decides it: the tool, and the named files of dir (absent ones count as empty).
func inputsKey(dir, tool string, files ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", tool)
	for _, f := range files {
		data, _ := os.ReadFile(filepath.Join(dir, f))
		fmt.Fprintf(h, "%s %d\n", f, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// removeOtherInstalls forgets the app's installs that the deployment d does not use, once d runs.
func (b *builder) removeOtherInstalls(app string, d *deployment) {
	entries, err := os.ReadDir(b.appDir(app))
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(b.appDir(app), e.Name())
		used := p == d.venv || e.Name() == "node-"+d.nodeKey
		if !used && (strings.HasPrefix(e.Name(), "python-") || strings.HasPrefix(e.Name(), "node-")) {
			_ = os.RemoveAll(p)
		}
	}
}

// linkTree copies the tree src to dst (which must not exist) as hard links, or as copies where links cannot be
// made; symlinks stay symlinks.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case !d.Type().IsRegular():
			return nil
		}
		if err := os.Link(p, target); err == nil {
			return nil
		}
		return copyRegular(p, target, info.Mode().Perm())
	})
}

func copyRegular(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
