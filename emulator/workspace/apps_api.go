package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
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

// appRoutes is the Apps API. Anyone whose token holds the apps scope may list and read apps (they learn names and
// URLs, not secrets, env values or the app's output); changing, starting, stopping, deploying or deleting an app,
// and reading its deployments, takes CAN_MANAGE on it.
func (w *Workspace) appRoutes(r chi.Router) {
	r.Get(PathApps, w.handleListApps())
	r.Post(PathApps, w.handleCreateApp())
	r.Route(PathApps+"/{name}", func(r chi.Router) {
		r.Get("/", w.handleGetApp())
		r.With(w.requireManage).Patch("/", w.handlePatchApp())
		r.With(w.requireManage).Delete("/", w.handleDeleteApp())
		r.With(w.requireManage).Post("/update", w.handleAsyncUpdate())
		r.With(w.requireManage).Get("/update", w.handleGetUpdate())
		r.With(w.requireManage).Post("/start", w.handleStart())
		r.With(w.requireManage).Post("/stop", w.handleStop())
		r.With(w.requireManage).Post("/deployments", w.handleCreateDeployment())
		// A deployment's env values and the app's output in its status are for the app's managers.
		r.With(w.requireManage).Get("/deployments", w.handleListDeployments())
		r.With(w.requireManage).Get("/deployments/{id}", w.handleGetDeployment())
	})
}

// appFromPath finds the app named in the path, or answers 404 as a workspace does.
func (w *Workspace) appFromPath(rw http.ResponseWriter, r *http.Request) (*appRecord, bool) {
	name := chi.URLParam(r, "name")
	w.mu.Lock()
	rec, ok := w.apps[name]
	w.mu.Unlock()
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
func (w *Workspace) requireManage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec, ok := w.appFromPath(rw, r)
		if !ok {
			return
		}
		who := authFrom(r.Context()).principal
		if !w.mayManage(rec.settings(), who) {
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
func (w *Workspace) wire(rec *appRecord, viewer principal) apps.App {
	w.mu.Lock()
	var probe string
	if up := rec.proxy.upstreamURL(); up != nil && rec.instance == nil {
		probe = up.Host
	}
	w.mu.Unlock()
	reachable := probe != "" && listening(probe)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wireLocked(rec, viewer, reachable)
}

// wireLocked is wire once the probe is done. Callers hold w.mu.
func (w *Workspace) wireLocked(rec *appRecord, viewer principal, upstreamListens bool) apps.App {
	s := rec.settings()
	manager := w.mayManage(s, viewer)
	a := apps.App{
		Id:                       rec.id,
		Name:                     s.name,
		Description:              s.description,
		Url:                      rec.proxy.url,
		ServicePrincipalClientId: s.servicePrincipal.ApplicationID,
		ServicePrincipalId:       numericID(s.servicePrincipal.ID),
		ServicePrincipalName:     s.servicePrincipal.Name,
		UserApiScopes:            s.userAPIScopes,
		EffectiveUserApiScopes:   w.settings.effectiveScopes(s),
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
	a.ComputeStatus, a.AppStatus = w.statusLocked(rec, upstreamListens, manager)
	return a
}

// statusLocked works out compute_status and app_status, the details of a failure for managers only; the CLI reads
// both without a nil check, so both are always set.
func (w *Workspace) statusLocked(rec *appRecord, upstreamListens, manager bool) (*apps.ComputeStatus, *apps.ApplicationStatus) {
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

func (w *Workspace) writeApp(rw http.ResponseWriter, r *http.Request, rec *appRecord) {
	jsonhttp.Write(rw, http.StatusOK, w.wire(rec, authFrom(r.Context()).principal))
}

func (w *Workspace) handleGetApp() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if rec, ok := w.appFromPath(rw, r); ok {
			w.writeApp(rw, r, rec)
		}
	}
}

// handleListApps pages through the apps in name order; the page token is the last name of the previous page, so
// apps created or deleted between pages neither repeat nor vanish.
func (w *Workspace) handleListApps() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		size, after, jerr := pageParams(r)
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		w.mu.Lock()
		names := slices.Sorted(func(yield func(string) bool) {
			for name := range w.apps {
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
			page = append(page, w.apps[name])
		}
		w.mu.Unlock()
		for _, rec := range page {
			resp.Apps = append(resp.Apps, w.wire(rec, authFrom(r.Context()).principal))
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

func (w *Workspace) handleCreateApp() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		var req apps.App
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxAPIBody, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		a, jerr := w.createApp(authFrom(r.Context()).principal, req, apps.ComputeStateStopped,
			r.URL.Query().Get("no_compute") != "true") // bundles create apps without starting them
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		jsonhttp.Write(rw, http.StatusOK, a)
	}
}

// CreateApp creates an app the model does not have, as the signed-in user creating it through the Apps API would:
// with a service principal of its own, the signed-in user as its manager (which includes CAN USE), no user
// authorization scopes and no resources. `emulator run --app NAME` uses it, so a new app runs under its own name
// with no model written by hand; its compute is active at once, as the model's apps' are, since run starts it.
func (w *Workspace) CreateApp(name string) error {
	if _, jerr := w.createApp(w.dir.signedIn, apps.App{Name: name}, apps.ComputeStateActive, false); jerr != nil {
		return errors.New(jerr.Message)
	}
	return nil
}

// createApp is the Apps API's create, for who asks: the app's settings checked, its service principal made, its
// proxy listening, who asked its manager. Its compute starts in the state compute, and with startCompute goes
// through STARTING to ACTIVE as the platform's does.
func (w *Workspace) createApp(who principal, req apps.App, compute apps.ComputeState, startCompute bool) (apps.App, *jsonhttp.Error) {
	if jerr := checkAppName(req.Name); jerr != nil {
		return apps.App{}, jerr
	}
	if jerr := w.checkAppFields(who, req.UserApiScopes, req.Resources); jerr != nil {
		return apps.App{}, jerr
	}
	w.mu.Lock()
	if _, taken := w.apps[req.Name]; taken {
		w.mu.Unlock()
		return apps.App{}, &jsonhttp.Error{Status: http.StatusConflict, Code: CodeAlreadyExists,
			Message: fmt.Sprintf("An app with name %s already exists. Choose another name.", req.Name),
			Fix:     "pick another name, or update the existing app: databricks apps update " + req.Name}
	}
	sp := w.dir.newAppServicePrincipal(req.Name)
	s := &appSettings{name: req.Name, description: req.Description, servicePrincipal: sp,
		userAPIScopes: req.UserApiScopes, resources: req.Resources,
		acl: []aclEntry{{level: PermissionCanManage}}}
	if who.Kind == identity.KindUser {
		s.acl[0].userName = who.UserName
	} else {
		s.acl[0].servicePrincipalName = who.UserName
	}
	rec, err := w.addAppLocked(s, 0, creatorName(who), compute)
	if err != nil {
		w.mu.Unlock()
		w.dir.removeServicePrincipal(sp.ApplicationID)
		w.logger.Error("create app", "app", req.Name, "err", err)
		return apps.App{}, &jsonhttp.Error{Status: http.StatusInternalServerError, Code: jsonhttp.CodeInternal,
			Message: "could not start the app's proxy"}
	}
	w.grantResourcesLocked(s)
	if startCompute {
		w.startComputeLocked(rec)
	}
	a := w.wireLocked(rec, who, false) // a new app has no upstream
	w.mu.Unlock()
	w.logger.Info("app created", "app", req.Name, "service_principal", sp.Name, "creator", who.UserName)
	w.changed("principals")
	w.stateChanged()
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
func (w *Workspace) checkAppFields(who principal, scopes []string, resources []apps.AppResource) *jsonhttp.Error {
	bad := badParameter
	if jerr := w.settings.checkUserAPIScopes(scopes); jerr != nil {
		return jerr
	}
	keys := map[string]bool{}
	for _, res := range resources {
		if res.Name == "" || keys[res.Name] {
			return bad("resources: every resource needs a unique name, got %q", res.Name)
		}
		keys[res.Name] = true
		if jerr := w.checkResource(who, res); jerr != nil {
			return jerr
		}
	}
	return nil
}

// handlePatchApp changes the fields the body names (apps update --json sends only those it changes).
func (w *Workspace) handlePatchApp() http.HandlerFunc {
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
		if jerr := w.applyUpdate(r, rec, req, fields); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		w.writeApp(rw, r, rec)
	}
}

// applyUpdate sets the named fields of req on the app and publishes the new settings.
func (w *Workspace) applyUpdate(r *http.Request, rec *appRecord, req apps.App, fields []string) *jsonhttp.Error {
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
	if jerr := w.checkAppFields(who, scopes, resources); jerr != nil {
		return jerr
	}
	w.mu.Lock()
	defer w.mu.Unlock()
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
	w.grantResourcesLocked(s)
	rec.updateTime, rec.updater = time.Now().UTC(), creatorName(who)
	w.logger.Info("app updated", "app", s.name, "fields", strings.Join(fields, ","), "user_api_scopes",
		strings.Join(s.userAPIScopes, " "))
	w.changed("apps")
	return nil
}

// handleAsyncUpdate is POST …/update, which bundles use: the update_mask names the fields to take from app. The
// emulator applies it at once, so the first poll of GET …/update already reads SUCCEEDED.
func (w *Workspace) handleAsyncUpdate() http.HandlerFunc {
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
		if jerr := w.applyUpdate(r, rec, *req.App, fields); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		w.mu.Lock()
		s := rec.settings()
		rec.lastUpdate = &apps.AppUpdate{Description: s.description, UserApiScopes: s.userAPIScopes, Resources: s.resources,
			Status: &apps.AppUpdateUpdateStatus{State: apps.AppUpdateUpdateStatusUpdateStateSucceeded,
				Message: "App updated successfully."}}
		update := *rec.lastUpdate
		w.mu.Unlock()
		w.changed("apps")
		jsonhttp.Write(rw, http.StatusOK, update)
	}
}

func (w *Workspace) handleGetUpdate() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		w.mu.Lock()
		update := apps.AppUpdate{Status: &apps.AppUpdateUpdateStatus{State: apps.AppUpdateUpdateStatusUpdateStateNotUpdated,
			Message: "The app has not been updated."}}
		if rec.lastUpdate != nil {
			update = *rec.lastUpdate
		}
		w.mu.Unlock()
		jsonhttp.Write(rw, http.StatusOK, update)
	}
}

func (w *Workspace) handleDeleteApp() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		name := rec.settings().name
		w.mu.Lock()
		rec.deleted = true // no deployment or start may begin for it from here on
		w.mu.Unlock()
		w.stopApp(rec)
		a := w.wire(rec, authFrom(r.Context()).principal)
		w.mu.Lock()
		if w.apps[name] == rec {
			delete(w.apps, name)
			w.appOrder = slices.DeleteFunc(w.appOrder, func(n string) bool { return n == name })
		}
		server := rec.proxy.server
		var dirs []string
		for _, d := range rec.deployments {
			dirs = append(dirs, d.dir)
		}
		w.mu.Unlock()
		rec.proxy.logs.close()
		_ = server.Close()
		w.sessions.endOrigin(rec.proxy.url) // a new app on the same port must not inherit its browsers
		w.dir.removeServicePrincipal(rec.settings().servicePrincipal.ApplicationID)
		for _, dir := range dirs {
			removeDeploymentDir(dir)
		}
		_ = os.RemoveAll(w.appDir(name)) // its home and installs
		w.logger.Info("app deleted", "app", name)
		w.changed("principals")
		w.stateChanged()
		a.ComputeStatus = &apps.ComputeStatus{State: apps.ComputeStateDeleting, Message: "App is being deleted."}
		jsonhttp.Write(rw, http.StatusOK, a)
	}
}

func (w *Workspace) handleCreateDeployment() http.HandlerFunc {
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
		if kind, err := w.files.objectKind(who, req.SourceCodePath); err != nil || kind != ObjectTypeDirectory {
			bad(http.StatusBadRequest, jsonhttp.CodeInvalidParameter, "source_code_path %s is not a folder of the "+
				"workspace that you can read: upload it first (databricks sync), to your home folder or to /Workspace/Shared",
				req.SourceCodePath)
			return
		}
		w.mu.Lock()
		switch {
		case rec.computeState == apps.ComputeStateStarting:
			w.mu.Unlock()
			bad(http.StatusBadRequest, "INVALID_STATE", "App %s compute is %s: wait until it is ACTIVE "+
				"(databricks apps get %s), then deploy", rec.settings().name, rec.computeState, rec.settings().name)
			return
		case rec.computeState != apps.ComputeStateActive:
			w.mu.Unlock()
			bad(http.StatusBadRequest, "INVALID_STATE", "App %s compute is %s: start it first with databricks apps start %s",
				rec.settings().name, rec.computeState, rec.settings().name)
			return
		case rec.pending != nil:
			w.mu.Unlock()
			bad(http.StatusConflict, "RESOURCE_CONFLICT", "App %s already has a deployment in progress (%s): wait for it",
				rec.settings().name, rec.pending.id)
			return
		}
		d, err := w.deployLocked(rec, req, creatorName(who))
		var answer *apps.AppDeployment
		if err == nil {
			answer = d.wire() // under the lock: the deployment is already under way
		}
		w.mu.Unlock()
		if err != nil {
			jsonhttp.WriteError(rw, unavailable(err))
			return
		}
		jsonhttp.Write(rw, http.StatusOK, answer)
	}
}

func (w *Workspace) handleListDeployments() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		size, after, jerr := pageParams(r)
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		w.mu.Lock()
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
		w.mu.Unlock()
		jsonhttp.Write(rw, http.StatusOK, resp)
	}
}

func (w *Workspace) handleGetDeployment() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		id := chi.URLParam(r, "id")
		w.mu.Lock()
		i := slices.IndexFunc(rec.deployments, func(d *deployment) bool { return d.id == id })
		var d *apps.AppDeployment
		if i >= 0 {
			d = rec.deployments[i].wire()
		}
		w.mu.Unlock()
		if d == nil {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
				Message: fmt.Sprintf("Deployment %s of app %s does not exist.", id, rec.settings().name)})
			return
		}
		jsonhttp.Write(rw, http.StatusOK, d)
	}
}
