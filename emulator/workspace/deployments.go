package workspace

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/google/uuid"
)

// deployment is one deployment of an app: a snapshot of a workspace folder, started with its app.yaml. Its
// fields are guarded by appManager.mu.
type deployment struct {
	id             string
	sourceCodePath string
	mode           apps.AppDeploymentMode
	command        []string // from the request, replacing app.yaml's
	envVars        []apps.EnvVar
	creator        string
	createTime     time.Time
	updateTime     time.Time
	state          apps.AppDeploymentState
	message        string // the status message anyone who may read the app reads
	detail         string // what follows it for the app's managers: the command line, an error, the app's output
	dir            string // the snapshot the instance runs from
	venv           string // the app's virtualenv the deployment installed or reused, if any (build.go)
	nodeKey        string // names the node_modules install the deployment made or reused, if any
}

func newDeploymentID() string { return strings.ReplaceAll(uuid.NewString(), "-", "") }

// wire is the deployment as the Apps API reports it to the app's managers. Callers hold m.mu.
func (d *deployment) wire() *apps.AppDeployment {
	return &apps.AppDeployment{
		DeploymentId:        d.id,
		SourceCodePath:      d.sourceCodePath,
		Mode:                d.mode,
		Command:             d.command,
		EnvVars:             d.envVars,
		Creator:             d.creator,
		CreateTime:          formatTime(d.createTime),
		UpdateTime:          formatTime(d.updateTime),
		Status:              &apps.AppDeploymentStatus{State: d.state, Message: d.message + d.detail},
		DeploymentArtifacts: &apps.AppDeploymentArtifacts{SourceCodePath: d.sourceCodePath},
	}
}

// summary is the deployment as an App embeds it (active_deployment, pending_deployment). The app's managers read
// all of it; anyone else who may read the app reads no env values, no command line and none of the app's output or
// errors, which only the deployment endpoints (CAN_MANAGE) and the app's log give.
func (d *deployment) summary(manager bool) *apps.AppDeployment {
	a := d.wire()
	if !manager {
		a.EnvVars, a.Command = nil, nil
		a.Status.Message = d.message
	}
	return a
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// withDeployment runs f holding m.mu, which guards the deployments' fields: for the builder (build.go).
func (m *appManager) withDeployment(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f()
}

// setStatus records a deployment's progress, as the CLI prints each message while it polls; anyone who may read the
// app reads it.
func (m *appManager) setStatus(d *deployment, state apps.AppDeploymentState, message string) {
	m.setStatusDetail(d, state, message, "")
}

// setStatusDetail is setStatus with a detail after the message, for the app's managers only.
func (m *appManager) setStatusDetail(d *deployment, state apps.AppDeploymentState, message, detail string) {
	m.mu.Lock()
	d.state, d.message, d.detail, d.updateTime = state, message, detail, time.Now()
	m.mu.Unlock()
}

// failureDetail is what the app's managers read after a public "failed" message: the error, which may quote the
// command line, app.yaml or the app's output.
func failureDetail(err error) string { return ": " + err.Error() }

// deploy starts a deployment of rec from its source code path and returns at once; the deployment goes on in the
// background, as on the platform, and reports SUCCEEDED once the new instance listens (the previous one is then
// stopped) or FAILED with the app's last output.
func (m *appManager) deployLocked(rec *appRecord, req apps.AppDeployment, creator string) (*deployment, error) {
	if m.closing || rec.deleted {
		return nil, errClosing
	}
	now := time.Now()
	mode := req.Mode
	if mode == "" {
		mode = apps.AppDeploymentModeSnapshot
	}
	d := &deployment{id: newDeploymentID(), sourceCodePath: req.SourceCodePath, mode: mode, command: req.Command,
		envVars: req.EnvVars, creator: creator, createTime: now, updateTime: now,
		state: apps.AppDeploymentStateInProgress, message: "Preparing source code for new app deployment."}
	rec.deployments = append(rec.deployments, d)
	rec.pending = d
	rec.generation++
	gen := rec.generation
	name := rec.settings().name
	m.tasks.Go(func() { m.runDeployment(rec, d, gen, name) })
	return d, nil
}

func (m *appManager) runDeployment(rec *appRecord, d *deployment, gen uint64, name string) {
	m.appSystemLog(name, "Deploying "+d.sourceCodePath+" (deployment "+d.id+")")
	launch, err := m.prepareDeployment(name, d)
	if err == nil {
		m.setStatusDetail(d, apps.AppDeploymentStateInProgress, "Starting app", " with command: "+strings.Join(launch.Command, " "))
		_, err = m.startInstance(m.ctx, rec, gen, launch)
	}
	m.mu.Lock()
	if rec.pending == d {
		rec.pending = nil
	}
	d.updateTime = time.Now()
	var obsolete string
	if err != nil {
		d.state, d.message, d.detail = apps.AppDeploymentStateFailed, "Deployment failed", failureDetail(err)
		if rec.instance == nil && rec.generation == gen {
			rec.crash = appCrash{message: d.message + "; see databricks apps logs " + name, detail: d.detail}
		}
		obsolete = d.dir
	} else {
		d.state, d.message, d.detail = apps.AppDeploymentStateSucceeded, "App started successfully", ""
		if rec.active != nil && rec.active.dir != d.dir {
			obsolete = rec.active.dir
		}
		rec.active = d
		rec.runLaunch = nil // a start runs this deployment again, not what `emulator run` ran before it
		rec.defaultSourceCodePath = d.sourceCodePath
	}
	message := d.message + d.detail
	succeeded := *d
	m.mu.Unlock()
	removeDeploymentDir(obsolete)
	if err == nil {
		m.build.removeOtherInstalls(name, &succeeded)
	}
	m.changed("apps")
	m.appSystemLog(name, message)
	if err != nil {
		m.logger.Warn("deployment failed", "app", name, "deployment_id", d.id, "err", err)
	} else {
		m.logger.Info("deployment succeeded", "app", name, "deployment_id", d.id)
	}
}

// prepareDeployment copies the source folder out of the workspace files into the deployment's snapshot and reads
// how to start it.
func (m *appManager) prepareDeployment(app string, d *deployment) (Launch, error) {
	dir := m.deploymentDir(app, d.id)
	m.mu.Lock()
	d.dir = dir
	m.mu.Unlock()
	if err := m.files.copyWorkspaceFolder(d.sourceCodePath, dir); err != nil {
		return Launch{}, fmt.Errorf("copy the source code: %w", err)
	}
	if err := m.build.install(app, d); err != nil {
		return Launch{}, err
	}
	m.setStatus(d, apps.AppDeploymentStateInProgress, "Reading app.yaml")
	m.mu.Lock()
	snapshot := *d
	m.mu.Unlock()
	return m.launchFromSnapshot(app, &snapshot)
}

// launchFromSnapshot is how to start a deployment: its app.yaml's command, or the deployment's own (bundles send the
// app's config), or else the platform's default command; in the snapshot, with the platform's environment, app.yaml's
// env and the deployment's env_vars (which win), in the app's sandbox.
func (m *appManager) launchFromSnapshot(app string, d *deployment) (Launch, error) {
	var launch Launch
	for _, name := range []string{"app.yaml", "app.yml"} {
		yamlPath := filepath.Join(d.dir, name)
		if !exists(yamlPath) {
			continue
		}
		l, err := m.readAppYAML(app, yamlPath)
		if err != nil {
			return Launch{}, errors.New(strings.ReplaceAll(err.Error(), d.dir, d.sourceCodePath))
		}
		launch = l
		break
	}
	if len(d.command) > 0 {
		launch.Command = d.command
	}
	if len(launch.Command) == 0 {
		command, err := defaultCommand(d.dir)
		if err != nil {
			return Launch{}, fmt.Errorf("%s: %w", d.sourceCodePath, err)
		}
		launch.Command = command
		m.appSystemLog(app, "app.yaml names no command: running the platform's default, "+strings.Join(command, " "))
	}
	launch.Dir = d.dir
	s := m.settingsOf(app)
	if s == nil {
		return Launch{}, fmt.Errorf("app %s was deleted", app)
	}
	launch.Env = append(m.build.platformEnv(d), launch.Env...)
	for _, e := range d.envVars {
		value := e.Value
		if e.ValueFrom != "" {
			v, err := m.resourceValue(s, e.ValueFrom)
			if err != nil {
				return Launch{}, fmt.Errorf("%s: env %s: valueFrom %q: %w", d.sourceCodePath, e.Name, e.ValueFrom, err)
			}
			value = v
		}
		launch.Env = append(launch.Env, e.Name+"="+value)
	}
	launch.sandbox = m.build.sandbox(app, d)
	return launch, nil
}
