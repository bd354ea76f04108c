package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// App states the Apps API reports in app_status: RUNNING when the app's proxy has an upstream that listens,
// CRASHED when its process exited on its own or its upstream does not listen, DEPLOYING while a first deployment
// starts, UNAVAILABLE when nothing was deployed or the compute is stopped.
const (
	AppStateRunning     = string(apps.ApplicationStateRunning)
	AppStateCrashed     = string(apps.ApplicationStateCrashed)
	AppStateDeploying   = string(apps.ApplicationStateDeploying)
	AppStateUnavailable = string(apps.ApplicationStateUnavailable)
)

// maxAPIBody bounds an Apps or Permissions API request; real ones are a few kilobytes.
const maxAPIBody = 1 << 20

// routes is the Apps API. Anyone whose token holds the apps scope may list and read apps (they learn names and
// URLs, not secrets, env values or the app's output); changing, starting, stopping, deploying or deleting an app,
// and reading its deployments, takes CAN_MANAGE on it.
func (m *appManager) routes(r chi.Router) {
	r.Get(PathApps, m.handleListApps())
	r.Post(PathApps, m.handleCreateApp())
	r.Route(PathApps+"/{name}", func(r chi.Router) {
		r.Get("/", m.handleGetApp())
		r.With(m.requireManage).Patch("/", m.handlePatchApp())
		r.With(m.requireManage).Delete("/", m.handleDeleteApp())
		r.With(m.requireManage).Post("/update", m.handleAsyncUpdate())
		r.With(m.requireManage).Get("/update", m.handleGetUpdate())
		r.With(m.requireManage).Post("/start", m.handleStart())
		r.With(m.requireManage).Post("/stop", m.handleStop())
		r.With(m.requireManage).Post("/deployments", m.handleCreateDeployment())
		// A deployment's env values and the app's output in its status are for the app's managers.
		r.With(m.requireManage).Get("/deployments", m.handleListDeployments())
		r.With(m.requireManage).Get("/deployments/{id}", m.handleGetDeployment())
	})
}

// appFromPath finds the app named in the path, or answers 404 as a workspace does.
func (m *appManager) appFromPath(rw http.ResponseWriter, r *http.Request) (*appRecord, bool) {
	name := chi.URLParam(r, "name")
	m.mu.Lock()
	rec, ok := m.byName[name]
	m.mu.Unlock()
	if !ok {
		jsonhttp.WriteError(rw, appNotFound(name))
	}
	return rec, ok
}

func appNotFound(name string) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
		Message: fmt.Sprintf("App with name %s does not exist or is deleted.", name),
		Fix:     "check the app name: databricks apps list"}
}

// requireManage refuses callers without CAN_MANAGE on the app in the path (after 404 for an unknown app).
func (m *appManager) requireManage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec, ok := m.appFromPath(rw, r)
		if !ok {
			return
		}
		who := authFrom(r.Context()).principal
		if !mayManage(rec.settings(), who) {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
				Message: fmt.Sprintf("%s does not have CAN_MANAGE permission on app %s", who.UserName, rec.settings().name),
				Fix:     "ask a manager of the app for CAN_MANAGE, or act as one"})
			return
		}
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), recordKey{}, rec)))
	})
}

type recordKey struct{}

// recordFrom is the app requireManage checked: handlers act on that record, never on a later lookup by name (the
// app may have been deleted, or deleted and created again by someone else, in between).
func recordFrom(r *http.Request) *appRecord { return r.Context().Value(recordKey{}).(*appRecord) }

// wire is the app as the Apps API reports it to viewer: its managers read the command lines, errors and output in
// its deployments' status, others do not. Whether an upstream the workspace did not start (emulator serve
// --upstream) listens is probed first, without the lock: a dial must never hold up the rest of the workspace.
func (m *appManager) wire(rec *appRecord, viewer principal) apps.App {
	m.mu.Lock()
	var probe string
	if up := rec.proxy.upstreamURL(); up != nil && rec.instance == nil {
		probe = up.Host
	}
	m.mu.Unlock()
	reachable := probe != "" && listening(probe)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.wireLocked(rec, viewer, reachable)
}

// wireLocked is wire once the probe is done. Callers hold m.mu.
func (m *appManager) wireLocked(rec *appRecord, viewer principal, upstreamListens bool) apps.App {
	s := rec.settings()
	manager := mayManage(s, viewer)
	a := apps.App{
		Id:                       rec.id,
		Name:                     s.name,
		Description:              s.description,
		Url:                      rec.proxy.url,
		ServicePrincipalClientId: s.servicePrincipal.ApplicationID,
		ServicePrincipalId:       numericID(s.servicePrincipal.ID),
		ServicePrincipalName:     s.servicePrincipal.Name,
		UserApiScopes:            s.userAPIScopes,
		EffectiveUserApiScopes:   m.settings.effectiveScopes(s),
		Resources:                s.resources,
		DefaultSourceCodePath:    rec.defaultSourceCodePath,
		CreateTime:               formatTime(rec.createTime),
		UpdateTime:               formatTime(rec.updateTime),
		Creator:                  rec.creator,
		Updater:                  rec.updater,
	}
	if rec.active != nil {
		a.ActiveDeployment = rec.active.summary(manager)
	}
	if rec.pending != nil {
		a.PendingDeployment = rec.pending.summary(manager)
	}
	a.ComputeStatus, a.AppStatus = m.statusLocked(rec, upstreamListens, manager)
	return a
}

// statusLocked works out compute_status and app_status, the details of a failure for managers only; the CLI reads
// both without a nil check, so both are always set.
func (m *appManager) statusLocked(rec *appRecord, upstreamListens, manager bool) (*apps.ComputeStatus, *apps.ApplicationStatus) {
	name := rec.settings().name
	compute := &apps.ComputeStatus{State: rec.computeState}
	starting := &apps.ApplicationStatus{State: apps.ApplicationStateDeploying, Message: "App is starting."}
	switch rec.computeState {
	case apps.ComputeStateActive:
		compute.Message, compute.ActiveInstances = computeActive, 1
	case apps.ComputeStateStarting:
		compute.Message = computeStarting
		if rec.starting {
			return compute, starting
		}
		return compute, &apps.ApplicationStatus{State: apps.ApplicationStateUnavailable, Message: computeStarting}
	case apps.ComputeStateStopping:
		compute.Message = computeStopping
		return compute, &apps.ApplicationStatus{State: apps.ApplicationStateUnavailable, Message: "App is stopping."}
	default:
		compute.Message = computeStopped
		return compute, &apps.ApplicationStatus{State: apps.ApplicationStateUnavailable,
			Message: "App is stopped. Start it with: databricks apps start " + name}
	}
	up := rec.proxy.upstreamURL()
	switch {
	case up != nil && rec.instance != nil:
		return compute, &apps.ApplicationStatus{State: apps.ApplicationStateRunning, RunningInstances: 1,
			Message: "App has status: App is running"}
	case up != nil && upstreamListens:
		return compute, &apps.ApplicationStatus{State: apps.ApplicationStateRunning, RunningInstances: 1,
			Message: "App has status: App is running"}
	case up != nil:
		return compute, &apps.ApplicationStatus{State: apps.ApplicationStateCrashed,
			Message: "App has status: nothing listens on " + up.Host}
	case rec.pending != nil:
		return compute, &apps.ApplicationStatus{State: apps.ApplicationStateDeploying, Message: "App is being deployed."}
	case rec.starting:
		return compute, starting
	case rec.crash.message != "":
		msg := rec.crash.message
		if manager {
			msg += rec.crash.detail
		}
		return compute, &apps.ApplicationStatus{State: apps.ApplicationStateCrashed, Message: msg}
	}
	return compute, &apps.ApplicationStatus{State: apps.ApplicationStateUnavailable,
		Message: "App has no running deployment: deploy it with databricks apps deploy " + name +
			" --source-code-path /Workspace/…, or start it with go run ./emulator run --app " + name + " -- <command>"}
}

func listening(hostport string) bool {
	conn, err := net.DialTimeout("tcp", hostport, 300*time.Millisecond)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

func (m *appManager) writeApp(rw http.ResponseWriter, r *http.Request, rec *appRecord) {
	jsonhttp.Write(rw, http.StatusOK, m.wire(rec, authFrom(r.Context()).principal))
}

func (m *appManager) handleGetApp() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if rec, ok := m.appFromPath(rw, r); ok {
			m.writeApp(rw, r, rec)
		}
	}
}

// handleListApps pages through the apps in name order; the page token is the last name of the previous page, so
// apps created or deleted between pages neither repeat nor vanish.
func (m *appManager) handleListApps() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		size, after, jerr := pageParams(r)
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		m.mu.Lock()
		names := slices.Sorted(func(yield func(string) bool) {
			for name := range m.byName {
				if name > after && !yield(name) {
					return
				}
			}
		})
		resp := apps.ListAppsResponse{Apps: []apps.App{}}
		var page []*appRecord
		for i, name := range names {
			if i == size {
				resp.NextPageToken = names[i-1]
				break
			}
			page = append(page, m.byName[name])
		}
		m.mu.Unlock()
		for _, rec := range page {
			resp.Apps = append(resp.Apps, m.wire(rec, authFrom(r.Context()).principal))
		}
		jsonhttp.Write(rw, http.StatusOK, resp)
	}
}

// pageParams reads page_size (1–100, default 50) and page_token.
func pageParams(r *http.Request) (size int, token string, err *jsonhttp.Error) {
	size = 50
	if v := r.URL.Query().Get("page_size"); v != "" {
		n, convErr := strconv.Atoi(v)
		if convErr != nil || n < 0 || n > 1000 {
			return 0, "", &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
				Message: "page_size must be a number from 1 to 1000"}
		}
		if n > 0 {
			size = n
		}
	}
	return size, r.URL.Query().Get("page_token"), nil
}

// creatorName is how the Apps API names who did something: a user's userName, a service principal's client id.
func creatorName(p principal) string { return p.UserName }

func (m *appManager) handleCreateApp() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		var req apps.App
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxAPIBody, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		a, jerr := m.createApp(authFrom(r.Context()).principal, req, apps.ComputeStateStopped,
			r.URL.Query().Get("no_compute") != "true") // bundles create apps without starting them
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		jsonhttp.Write(rw, http.StatusOK, a)
	}
}

// createApp is the Apps API's create, for who asks: the app's settings checked, its service principal made, its
// proxy listening, who asked its manager. Its compute starts in the state compute, and with startCompute goes
// through STARTING to ACTIVE as the platform's does.
func (m *appManager) createApp(who principal, req apps.App, compute apps.ComputeState, startCompute bool) (apps.App, *jsonhttp.Error) {
	if jerr := checkAppName(req.Name); jerr != nil {
		return apps.App{}, jerr
	}
	if jerr := m.checkAppFields(who, req.UserApiScopes, req.Resources); jerr != nil {
		return apps.App{}, jerr
	}
	m.mu.Lock()
	if _, taken := m.byName[req.Name]; taken {
		m.mu.Unlock()
		return apps.App{}, &jsonhttp.Error{Status: http.StatusConflict, Code: CodeAlreadyExists,
			Message: fmt.Sprintf("An app with name %s already exists. Choose another name.", req.Name),
			Fix:     "pick another name, or update the existing app: databricks apps update " + req.Name}
	}
	sp := m.dir.newAppServicePrincipal(req.Name)
	s := &appSettings{name: req.Name, description: req.Description, servicePrincipal: sp,
		userAPIScopes: req.UserApiScopes, resources: req.Resources,
		acl: []aclEntry{{level: PermissionCanManage}}}
	if who.Kind == identity.KindUser {
		s.acl[0].userName = who.UserName
	} else {
		s.acl[0].servicePrincipalName = who.UserName
	}
	rec, err := m.addAppLocked(s, 0, creatorName(who), compute)
	if err != nil {
		m.mu.Unlock()
		m.dir.removeServicePrincipal(sp.ApplicationID)
		m.logger.Error("create app", "app", req.Name, "err", err)
		return apps.App{}, &jsonhttp.Error{Status: http.StatusInternalServerError, Code: jsonhttp.CodeInternal,
			Message: "could not start the app's proxy"}
	}
	m.grantResourcesLocked(s)
	if startCompute {
		m.startComputeLocked(rec)
	}
	a := m.wireLocked(rec, who, false) // a new app has no upstream
	m.mu.Unlock()
	m.logger.Info("app created", "app", req.Name, "service_principal", sp.Name, "creator", who.UserName)
	m.changed("principals")
	m.stateChanged()
	return a, nil
}

// CodeAlreadyExists is the error code for a name that is taken.
const CodeAlreadyExists = "RESOURCE_ALREADY_EXISTS"

// unavailable answers a request the workspace cannot serve any more: it is shutting down, or the app was deleted.
func unavailable(err error) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusServiceUnavailable, Code: jsonhttp.CodeUnavailable, Message: err.Error()}
}

func badParameter(format string, args ...any) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
		Message: fmt.Sprintf(format, args...)}
}

// CheckAppName applies the platform's naming rule to a new app's name, as the Apps API does.
func CheckAppName(name string) error {
	if jerr := checkAppName(name); jerr != nil {
		return errors.New(jerr.Message)
	}
	return nil
}

// checkAppName applies the platform's naming rule to a new app.
func checkAppName(name string) *jsonhttp.Error {
	if !appName.MatchString(name) || strings.HasSuffix(name, "-") || len(name) < 2 {
		return badParameter("App name %q is invalid: use 2 to 30 lower case letters, digits and dashes, "+
			"starting with a letter or digit and not ending with a dash.", name)
	}
	return nil
}

// checkAppFields validates the scopes and resources a create or an update sets, for who asks. user_api_scopes name
// scopes the workspace allows apps to ask for (settings.go), never all-apis or offline_access: the proxy would
// forward every caller's whole token to the app. An app resource grants the app's service principal CAN_USE on its target, so who sets one must
// manage the target, or anyone could give themselves (through an app of theirs) access to any app.
func (m *appManager) checkAppFields(who principal, scopes []string, resources []apps.AppResource) *jsonhttp.Error {
	bad := badParameter
	if jerr := m.settings.checkUserAPIScopes(scopes); jerr != nil {
		return jerr
	}
	keys := map[string]bool{}
	for _, res := range resources {
		if res.Name == "" || keys[res.Name] {
			return bad("resources: every resource needs a unique name, got %q", res.Name)
		}
		keys[res.Name] = true
		if jerr := m.checkResource(who, res); jerr != nil {
			return jerr
		}
	}
	return nil
}

// handlePatchApp changes the fields the body names (apps update --json sends only those it changes).
func (m *appManager) handlePatchApp() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		var raw map[string]json.RawMessage
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxAPIBody, &raw); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		var fields []string
		for k := range raw {
			fields = append(fields, k)
		}
		body, _ := json.Marshal(raw)
		var req apps.App
		if err := json.Unmarshal(body, &req); err != nil {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
				Message: "malformed app: " + err.Error()})
			return
		}
		if req.Name != "" && req.Name != rec.settings().name {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
				Message: "an app cannot be renamed: the name in the body must match the path"})
			return
		}
		if jerr := m.applyUpdate(r, rec, req, fields); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		m.writeApp(rw, r, rec)
	}
}

// applyUpdate sets the named fields of req on the app and publishes the new settings.
func (m *appManager) applyUpdate(r *http.Request, rec *appRecord, req apps.App, fields []string) *jsonhttp.Error {
	set := func(f string) bool { return slices.Contains(fields, f) }
	who := authFrom(r.Context()).principal
	var scopes []string
	var resources []apps.AppResource
	if set("user_api_scopes") {
		scopes = req.UserApiScopes
	}
	if set("resources") {
		resources = req.Resources
	}
	if jerr := m.checkAppFields(who, scopes, resources); jerr != nil {
		return jerr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := rec.settings().with(func(s *appSettings) {
		if set("description") {
			s.description = req.Description
		}
		if set("user_api_scopes") {
			s.userAPIScopes = req.UserApiScopes
		}
		if set("resources") {
			s.resources = req.Resources
		}
	})
	rec.proxy.settings.Store(s)
	m.grantResourcesLocked(s)
	rec.updateTime, rec.updater = time.Now().UTC(), creatorName(who)
	m.logger.Info("app updated", "app", s.name, "fields", strings.Join(fields, ","), "user_api_scopes",
		strings.Join(s.userAPIScopes, " "))
	m.changed("apps")
	return nil
}

// handleAsyncUpdate is POST …/update, which bundles use: the update_mask names the fields to take from app. The
// emulator applies it at once, so the first poll of GET …/update already reads SUCCEEDED.
func (m *appManager) handleAsyncUpdate() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		var req struct {
			App        *apps.App `json:"app"`
			UpdateMask string    `json:"update_mask"`
		}
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxAPIBody, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		if req.App == nil || strings.TrimSpace(req.UpdateMask) == "" {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
				Message: "send the app and an update_mask naming the fields to change"})
			return
		}
		var fields []string
		for _, f := range strings.Split(req.UpdateMask, ",") {
			if f = strings.TrimSpace(f); f != "" {
				fields = append(fields, f)
			}
		}
		if jerr := m.applyUpdate(r, rec, *req.App, fields); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		m.mu.Lock()
		s := rec.settings()
		rec.lastUpdate = &apps.AppUpdate{Description: s.description, UserApiScopes: s.userAPIScopes, Resources: s.resources,
			Status: &apps.AppUpdateUpdateStatus{State: apps.AppUpdateUpdateStatusUpdateStateSucceeded,
				Message: "App updated successfully."}}
		update := *rec.lastUpdate
		m.mu.Unlock()
		m.changed("apps")
		jsonhttp.Write(rw, http.StatusOK, update)
	}
}

func (m *appManager) handleGetUpdate() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		m.mu.Lock()
		update := apps.AppUpdate{Status: &apps.AppUpdateUpdateStatus{State: apps.AppUpdateUpdateStatusUpdateStateNotUpdated,
			Message: "The app has not been updated."}}
		if rec.lastUpdate != nil {
			update = *rec.lastUpdate
		}
		m.mu.Unlock()
		jsonhttp.Write(rw, http.StatusOK, update)
	}
}

func (m *appManager) handleDeleteApp() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		name := rec.settings().name
		m.mu.Lock()
		rec.deleted = true // no deployment or start may begin for it from here on
		m.mu.Unlock()
		m.stopApp(rec)
		a := m.wire(rec, authFrom(r.Context()).principal)
		m.mu.Lock()
		if m.byName[name] == rec {
			delete(m.byName, name)
			m.order = slices.DeleteFunc(m.order, func(n string) bool { return n == name })
		}
		server := rec.proxy.server
		var dirs []string
		for _, d := range rec.deployments {
			dirs = append(dirs, d.dir)
		}
		m.mu.Unlock()
		rec.proxy.logs.close()
		_ = server.Close()
		m.sessions.endOrigin(rec.proxy.url) // a new app on the same port must not inherit its browsers
		m.dir.removeServicePrincipal(rec.settings().servicePrincipal.ApplicationID)
		for _, dir := range dirs {
			removeDeploymentDir(dir)
		}
		m.build.forget(name) // its home and installs
		m.logger.Info("app deleted", "app", name)
		m.changed("principals")
		m.stateChanged()
		a.ComputeStatus = &apps.ComputeStatus{State: apps.ComputeStateDeleting, Message: "App is being deleted."}
		jsonhttp.Write(rw, http.StatusOK, a)
	}
}

func (m *appManager) handleCreateDeployment() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		var req apps.AppDeployment
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxAPIBody, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		bad := func(status int, code, format string, args ...any) {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)})
		}
		if req.SourceCodePath == "" {
			bad(http.StatusBadRequest, jsonhttp.CodeInvalidParameter, "source_code_path is required")
			return
		}
		if req.Mode != "" && req.Mode != apps.AppDeploymentModeSnapshot && req.Mode != apps.AppDeploymentModeAutoSync {
			bad(http.StatusBadRequest, jsonhttp.CodeInvalidParameter, "mode must be SNAPSHOT or AUTO_SYNC")
			return
		}
		// The deployer must be able to read the folder: CAN MANAGE on the app does not open another's home.
		who := authFrom(r.Context()).principal
		if kind, err := m.files.objectKind(who, req.SourceCodePath); err != nil || kind != ObjectTypeDirectory {
			bad(http.StatusBadRequest, jsonhttp.CodeInvalidParameter, "source_code_path %s is not a folder of the "+
				"workspace that you can read: upload it first (databricks sync), to your home folder or to /Workspace/Shared",
				req.SourceCodePath)
			return
		}
		m.mu.Lock()
		switch {
		case rec.computeState == apps.ComputeStateStarting:
			m.mu.Unlock()
			bad(http.StatusBadRequest, "INVALID_STATE", "App %s compute is %s: wait until it is ACTIVE "+
				"(databricks apps get %s), then deploy", rec.settings().name, rec.computeState, rec.settings().name)
			return
		case rec.computeState != apps.ComputeStateActive:
			m.mu.Unlock()
			bad(http.StatusBadRequest, "INVALID_STATE", "App %s compute is %s: start it first with databricks apps start %s",
				rec.settings().name, rec.computeState, rec.settings().name)
			return
		case rec.pending != nil:
			m.mu.Unlock()
			bad(http.StatusConflict, "RESOURCE_CONFLICT", "App %s already has a deployment in progress (%s): wait for it",
				rec.settings().name, rec.pending.id)
			return
		}
		d, err := m.deployLocked(rec, req, creatorName(who))
		var answer *apps.AppDeployment
		if err == nil {
			answer = d.wire() // under the lock: the deployment is already under way
		}
		m.mu.Unlock()
		if err != nil {
			jsonhttp.WriteError(rw, unavailable(err))
			return
		}
		jsonhttp.Write(rw, http.StatusOK, answer)
	}
}

func (m *appManager) handleListDeployments() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		size, after, jerr := pageParams(r)
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		m.mu.Lock()
		resp := apps.ListAppDeploymentsResponse{AppDeployments: []apps.AppDeployment{}}
		started := after == ""
		for i := len(rec.deployments) - 1; i >= 0; i-- { // newest first
			d := rec.deployments[i]
			if !started {
				started = d.id == after
				continue
			}
			if len(resp.AppDeployments) == size {
				resp.NextPageToken = resp.AppDeployments[size-1].DeploymentId
				break
			}
			resp.AppDeployments = append(resp.AppDeployments, *d.wire())
		}
		m.mu.Unlock()
		jsonhttp.Write(rw, http.StatusOK, resp)
	}
}

func (m *appManager) handleGetDeployment() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		id := chi.URLParam(r, "id")
		m.mu.Lock()
		i := slices.IndexFunc(rec.deployments, func(d *deployment) bool { return d.id == id })
		var d *apps.AppDeployment
		if i >= 0 {
			d = rec.deployments[i].wire()
		}
		m.mu.Unlock()
		if d == nil {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
				Message: fmt.Sprintf("Deployment %s of app %s does not exist.", id, rec.settings().name)})
			return
		}
		jsonhttp.Write(rw, http.StatusOK, d)
	}
}
