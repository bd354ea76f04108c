package workspace

// The workspace setting that bounds what apps may ask of their users: allowedAppsUserApiScopes, the user
// authorization scopes an app's user_api_scopes may name. Admins read and change it with the settings API that
// databricks-sdk-go calls st.WorkspaceSettingsV2 (GET and PATCH /api/2.1/settings/{name}); the model sets its value at
// start (workspace.allowed_apps_user_api_scopes). The Apps API refuses other scopes when an app is created or
// updated, and the proxy forwards only the allowed ones of an app that asked before the admin narrowed the list.

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/databricks/databricks-sdk-go/service/settingsv2"
	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// PathSettings is the workspace settings API; a setting's name follows it. The names are camelCase, as the
// platform's: the snake_case field names of the SDK's Setting are not setting names.
const PathSettings = "/api/2.1/settings"

// SettingAllowedAppsUserAPIScopes names the setting of the scopes apps may ask for.
const SettingAllowedAppsUserAPIScopes = "allowedAppsUserApiScopes"

// allScopes in the allowed list allows every scope the platform offers apps (AppUserScopes).
const allScopes = "*"

// workspaceSettings serves the settings API and holds the setting's value, which the Apps API, the proxies and the
// sign-in read without a lock.
type workspaceSettings struct {
	offered []string                      // the scopes the model allowed, which an admin may allow again
	allowed atomic.Pointer[allowedScopes] // the value now
	logger  *slog.Logger
}

func newWorkspaceSettings(cfg Config, logger *slog.Logger) *workspaceSettings {
	st := &workspaceSettings{offered: cfg.Workspace.AllowedAppsUserAPIScopes, logger: logger}
	st.allowed.Store(&allowedScopes{list: cfg.Workspace.allowedAppsUserAPIScopes()})
	return st
}

// allowedScopes is one value of the setting. A value is never changed once published: a change publishes a new one,
// so the proxy reads a consistent list without a lock, and its pointer versions the forwarded tokens it caches.
type allowedScopes struct{ list []string }

// allows reports whether an app may ask for scope.
func (a *allowedScopes) allows(scope string) bool {
	return slices.Contains(a.list, scope) || (slices.Contains(a.list, allScopes) && slices.Contains(AppUserScopes, scope))
}

// effective are those of an app's user_api_scopes this value allows. It returns scopes itself when all are allowed,
// as they are unless an admin narrowed the list after the app asked.
func (a *allowedScopes) effective(scopes []string) []string {
	refused := func(sc string) bool { return !a.allows(sc) }
	if !slices.ContainsFunc(scopes, refused) {
		return scopes
	}
	return slices.DeleteFunc(slices.Clone(scopes), refused)
}

// effectiveScopes are the app's user_api_scopes the workspace allows now: what the proxy asks of a user's token and
// forwards to the app (effective_user_api_scopes).
func (st *workspaceSettings) effectiveScopes(s *appSettings) []string {
	return st.allowed.Load().effective(s.userAPIScopes)
}

// checkUserAPIScopes refuses the first scope an app may not ask for, as the platform does: "The specified scope X is
// not a valid scope".
func (st *workspaceSettings) checkUserAPIScopes(scopes []string) *jsonhttp.Error {
	allowed := st.allowed.Load()
	for _, sc := range scopes {
		if allowed.allows(sc) {
			continue
		}
		e := badParameter("The specified scope %s is not a valid scope", truncate(sc, 100))
		switch {
		case sc == ScopeAllAPIs || sc == ScopeOfflineAccess:
			e.Fix = sc + " cannot be an app's scope: the app would receive its callers' whole tokens"
		default:
			e.Fix = "this workspace allows apps the user authorization scopes " + strings.Join(allowed.list, ", ") +
				"; an admin changes the list: PATCH " + PathSettings + "/" + SettingAllowedAppsUserAPIScopes
		}
		return e
	}
	return nil
}

// offeredScope reports whether an admin may allow scope: one the platform offers apps, or one the model allowed.
func (st *workspaceSettings) offeredScope(scope string) bool {
	return scope == allScopes || slices.Contains(AppUserScopes, scope) ||
		slices.Contains(st.offered, scope)
}

func (st *workspaceSettings) routes(r chi.Router) {
	r.Get(PathSettings+"/{name}", st.handleGetSetting())
	r.Patch(PathSettings+"/{name}", st.handlePatchSetting())
}

// settingFromPath checks the setting named in the path: the emulator has one.
func settingFromPath(rw http.ResponseWriter, r *http.Request) bool {
	if name := chi.URLParam(r, "name"); name != SettingAllowedAppsUserAPIScopes {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
			Message: fmt.Sprintf("Setting %s does not exist", truncate(name, 100)),
			Fix:     "the emulator has the setting " + SettingAllowedAppsUserAPIScopes})
		return false
	}
	return true
}

// writeSetting answers the setting as the SDK's settingsv2.Setting reads it.
func (st *workspaceSettings) writeSetting(rw http.ResponseWriter) {
	value := &settingsv2.AllowedAppsUserApiScopesMessage{AllowedScopes: slices.Clone(st.allowed.Load().list)}
	jsonhttp.Write(rw, http.StatusOK, settingsv2.Setting{Name: SettingAllowedAppsUserAPIScopes,
		AllowedAppsUserApiScopes: value, EffectiveAllowedAppsUserApiScopes: value})
}

func (st *workspaceSettings) handleGetSetting() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if settingFromPath(rw, r) {
			st.writeSetting(rw)
		}
	}
}

func (st *workspaceSettings) handlePatchSetting() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if !settingFromPath(rw, r) {
			return
		}
		who := authFrom(r.Context()).principal
		if !who.isAdmin() { // workspace settings are the admins' (admins.go)
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
				Message: fmt.Sprintf("%s is not a workspace admin: only admins change workspace settings", who.UserName)})
			return
		}
		var req struct {
			Value *struct {
				AllowedScopes []string `json:"allowed_scopes"`
			} `json:"allowed_apps_user_api_scopes"`
		}
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxAPIBody, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		if req.Value == nil {
			jsonhttp.WriteError(rw, badParameter("send the setting's value: {\"allowed_apps_user_api_scopes\":{\"allowed_scopes\":[…]}}"))
			return
		}
		list := []string{}
		for _, sc := range req.Value.AllowedScopes {
			if !st.offeredScope(sc) {
				jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter,
					Message: fmt.Sprintf("The specified scope %s is not a valid scope", truncate(sc, 100)),
					Fix:     "the platform offers apps the user authorization scopes " + strings.Join(AppUserScopes, ", ")})
				return
			}
			if !slices.Contains(list, sc) {
				list = append(list, sc)
			}
		}
		st.allowed.Store(&allowedScopes{list: list})
		st.logger.Info("workspace setting changed", "setting", SettingAllowedAppsUserAPIScopes, "by", who.UserName,
			"allowed_scopes", strings.Join(list, " "))
		st.writeSetting(rw)
	}
}
