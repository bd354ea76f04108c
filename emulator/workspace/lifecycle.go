package workspace

// An app's compute goes through the states the platform reports: STARTING, then ACTIVE, after a create or an apps
// start; STOPPING, then STOPPED, after an apps stop. Each transition takes the workspace's compute delay (2 s by
// default; minutes on the platform), so the SDK's waiters (CreateAndWait, StartAndWait, StopAndWait) and the CLI's
// spinners poll and see them, as against a workspace.

import (
	"net/http"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"
)

// DefaultComputeDelay is how long an app's compute takes to start or stop: long enough that the SDK's waiters,
// which poll at once and then after a second or more, see the transitional state.
const DefaultComputeDelay = 2 * time.Second

// Messages of compute_status, as a workspace words them.
const (
	computeStarting = "App compute is starting."
	computeActive   = "App compute is active."
	computeStopping = "App compute is stopping."
	computeStopped  = "App compute is stopped."
)

// afterComputeDelayLocked runs then in the background once the compute delay has passed (and, in tests, once
// computeHold lets it), unless the workspace closes first. then takes m.mu itself. Callers hold m.mu.
func (m *appManager) afterComputeDelayLocked(then func()) {
	if m.closing {
		return
	}
	m.tasks.Go(func() {
		timer := time.NewTimer(m.computeDelay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-m.ctx.Done():
			return
		}
		if m.computeHold != nil {
			select {
			case <-m.computeHold:
			case <-m.ctx.Done():
				return
			}
		}
		then()
	})
}

// startComputeLocked moves rec's compute to STARTING and, after the compute delay, to ACTIVE; then the app runs
// again what it ran last (relaunchLocked). Callers hold m.mu.
func (m *appManager) startComputeLocked(rec *appRecord) {
	rec.computeState = apps.ComputeStateStarting
	rec.computeGen++
	gen := rec.computeGen
	rec.crash = appCrash{}
	rec.starting = rec.active != nil || rec.runLaunch != nil
	m.afterComputeDelayLocked(func() {
		m.mu.Lock()
		settled := rec.computeGen == gen && !rec.deleted // not stopped or deleted meanwhile
		if settled {
			rec.computeState = apps.ComputeStateActive
			m.relaunchLocked(rec)
		}
		m.mu.Unlock()
		if settled {
			m.stateChanged()
		}
	})
}

// handleStart starts the app's compute and then what it ran last, as the platform does: its active deployment,
// from the deployment's snapshot, or the command `emulator run` gave it. Starting an app that is active or starting
// does nothing.
func (m *appManager) handleStart() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		m.mu.Lock()
		switch rec.computeState {
		case apps.ComputeStateActive, apps.ComputeStateStarting:
		default:
			m.startComputeLocked(rec)
		}
		m.mu.Unlock()
		m.stateChanged()
		m.writeApp(rw, r, rec)
	}
}

// relaunchLocked runs again what the app ran last, if nothing runs it: the command `emulator run` started it with,
// or else its active deployment, from the deployment's snapshot and what was installed for it. Callers hold m.mu.
func (m *appManager) relaunchLocked(rec *appRecord) {
	if m.closing || rec.deleted || rec.instance != nil || (rec.active == nil && rec.runLaunch == nil) {
		rec.starting = false
		return
	}
	rec.generation++
	rec.pending = nil
	rec.starting = true
	gen, name := rec.generation, rec.settings().name
	var d deployment
	if rec.active != nil {
		d = *rec.active
	}
	run := rec.runLaunch
	m.tasks.Go(func() {
		var launch Launch
		var err error
		if run != nil {
			launch = *run
		} else {
			launch, err = m.launchFromSnapshot(name, &d)
		}
		if err == nil {
			_, err = m.startInstance(m.ctx, rec, gen, launch)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if rec.generation != gen {
			return
		}
		rec.starting = false
		if err != nil {
			rec.crash = appCrash{message: "App failed to start; see databricks apps logs " + rec.settings().name,
				detail: failureDetail(err)}
		}
	})
}

// handleStop answers at once with the compute STOPPING, then stops the app's instance (SIGTERM, then SIGKILL after
// the grace period) and reports the compute STOPPED once the instance has exited and the compute delay has passed.
// The proxy answers 502 from the start.
func (m *appManager) handleStop() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		m.mu.Lock()
		switch {
		case m.closing: // Close stops every instance itself
		case rec.computeState == apps.ComputeStateStopped, rec.computeState == apps.ComputeStateStopping:
		default:
			rec.computeState = apps.ComputeStateStopping
			rec.computeGen++
			rec.starting = false
			gen := rec.computeGen
			inst := m.detachLocked(rec)
			stopped := make(chan struct{})
			m.tasks.Go(func() {
				defer close(stopped)
				m.stopInstance(inst)
			})
			m.afterComputeDelayLocked(func() {
				<-stopped // STOPPED once the process is gone, as the platform's container
				m.mu.Lock()
				settled := rec.computeGen == gen
				if settled {
					rec.computeState = apps.ComputeStateStopped
				}
				m.mu.Unlock()
				if settled {
					m.stateChanged()
				}
			})
		}
		m.mu.Unlock()
		m.stateChanged()
		m.writeApp(rw, r, rec)
	}
}

// upState says whether the named app is on its way up (its compute starting, a deployment under way, or what it
// ran last being started again), or stopped. Its proxy answers 503 for the one and advises apps start for the other.
func (m *appManager) upState(name string) (starting, stopped bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.byName[name]
	if !ok {
		return false, false
	}
	starting = rec.starting || rec.pending != nil || rec.computeState == apps.ComputeStateStarting
	stopped = rec.computeState == apps.ComputeStateStopped || rec.computeState == apps.ComputeStateStopping
	return starting, stopped
}
