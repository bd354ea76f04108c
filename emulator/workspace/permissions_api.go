package workspace

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// PathAppPermissions is the Permissions API for apps; its object id is /apps/<name>.
const PathAppPermissions = "/api/2.0/permissions/apps"

// appPermissions is the Permissions API for apps. Reading or changing an app's permissions takes CAN_MANAGE on
// it, or a workspace admin; a change applies at the app's proxy from the next request on. It keeps no state: the
// permissions are the apps' settings, which appManager keeps, finds for it and publishes under its lock.
type appPermissions struct {
	dir    *directory
	logger *slog.Logger
	// requireManage is the apps' (apps_api.go): 404 for an unknown app, 403 without CAN_MANAGE, else the app's
	// record in the request (recordFrom).
	requireManage func(http.Handler) http.Handler
	// publish changes an app's settings under the apps' lock and returns what it published.
	publish      func(rec *appRecord, change func(*appSettings)) *appSettings
	stateChanged func() // rewrites the state file; called holding no lock
}

func (p *appPermissions) routes(r chi.Router) {
	r.Route(PathAppPermissions+"/{name}", func(r chi.Router) {
		r.Use(p.requireManage)
		r.Get("/", p.handleGetPermissions())
		r.Patch("/", p.handleSetPermissions(false))
		r.Put("/", p.handleSetPermissions(true))
		r.Get("/permissionLevels", p.handlePermissionLevels())
	})
}

func (p *appPermissions) handleGetPermissions() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		jsonhttp.Write(rw, http.StatusOK, p.permissionsWire(rec.settings()))
	}
}

func (p *appPermissions) handlePermissionLevels() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		jsonhttp.Write(rw, http.StatusOK, apps.GetAppPermissionLevelsResponse{PermissionLevels: []apps.AppPermissionsDescription{
			{PermissionLevel: apps.AppPermissionLevelCanManage, Description: "Can edit, deploy, start, stop and delete the app, read its logs and change its permissions"},
			{PermissionLevel: apps.AppPermissionLevelCanUse, Description: "Can call the app"},
		}})
	}
}

// handleSetPermissions is PATCH (replace each named principal's permission, keep the others: apps
// update-permissions) and PUT (replace the whole list: bundles).
func (p *appPermissions) handleSetPermissions(replace bool) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := recordFrom(r)
		var req apps.AppPermissionsRequest
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxAPIBody, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		entries := make([]aclEntry, 0, len(req.AccessControlList))
		for _, e := range req.AccessControlList {
			entry, jerr := p.checkACLEntry(e)
			if jerr != nil {
				jsonhttp.WriteError(rw, jerr)
				return
			}
			entries = append(entries, entry)
		}
		s := p.publish(rec, func(s *appSettings) {
			if replace {
				s.acl = nil
			}
			for _, e := range entries {
				s.acl = slices.DeleteFunc(s.acl, func(old aclEntry) bool { return old.samePrincipal(e) })
				s.acl = append(s.acl, e)
			}
		})
		who := authFrom(r.Context()).principal
		p.logger.Info("app permissions changed", "app", s.name, "by", who.UserName, "replace", replace, "entries", len(entries))
		p.stateChanged()
		jsonhttp.Write(rw, http.StatusOK, p.permissionsWire(s))
	}
}

func (e aclEntry) samePrincipal(o aclEntry) bool {
	return e.userName == o.userName && e.groupName == o.groupName && e.servicePrincipalName == o.servicePrincipalName
}

// checkACLEntry validates one requested entry: one principal that exists, and a level apps have.
func (p *appPermissions) checkACLEntry(e apps.AppAccessControlRequest) (aclEntry, *jsonhttp.Error) {
	named := 0
	for _, n := range []string{e.UserName, e.GroupName, e.ServicePrincipalName} {
		if n != "" {
			named++
		}
	}
	if named != 1 {
		return aclEntry{}, badParameter("each access control entry names exactly one of user_name, group_name and service_principal_name")
	}
	level := string(e.PermissionLevel)
	if level != PermissionCanUse && level != PermissionCanManage {
		return aclEntry{}, badParameter("Permission level %q is not valid for apps: use CAN_USE or CAN_MANAGE", level)
	}
	switch {
	case e.UserName != "":
		if _, ok := p.dir.user(e.UserName); !ok {
			return aclEntry{}, principalNotFound(fmt.Sprintf("User %s does not exist in this workspace", e.UserName))
		}
	case e.ServicePrincipalName != "":
		if _, ok := p.dir.servicePrincipal(e.ServicePrincipalName); !ok {
			return aclEntry{}, principalNotFound(fmt.Sprintf("Service principal %s does not exist in this workspace "+
				"(service_principal_name is the application id)", e.ServicePrincipalName))
		}
	case !p.dir.groupExists(e.GroupName):
		return aclEntry{}, principalNotFound(fmt.Sprintf("Group %s does not exist in this workspace", e.GroupName))
	}
	return aclEntry{userName: e.UserName, groupName: e.GroupName, servicePrincipalName: e.ServicePrincipalName, level: level}, nil
}

func principalNotFound(msg string) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter, Message: msg}
}

// permissionsWire is an app's permissions as the Permissions API reports them.
func (p *appPermissions) permissionsWire(s *appSettings) apps.AppPermissions {
	out := apps.AppPermissions{ObjectId: "/apps/" + s.name, ObjectType: "apps", AccessControlList: []apps.AppAccessControlResponse{}}
	for _, e := range s.acl {
		entry := apps.AppAccessControlResponse{UserName: e.userName, GroupName: e.groupName,
			ServicePrincipalName: e.servicePrincipalName,
			AllPermissions:       []apps.AppPermission{{PermissionLevel: apps.AppPermissionLevel(e.level)}}}
		switch {
		case e.userName != "":
			if u, ok := p.dir.user(e.userName); ok {
				entry.DisplayName = u.DisplayName
			}
		case e.servicePrincipalName != "":
			if sp, ok := p.dir.subject(e.servicePrincipalName); ok {
				entry.DisplayName = sp.DisplayName
			}
		}
		out.AccessControlList = append(out.AccessControlList, entry)
	}
	// Workspace admins manage every app, as Databricks lists it: inherited from the apps root.
	out.AccessControlList = append(out.AccessControlList, apps.AppAccessControlResponse{GroupName: GroupAdmins,
		AllPermissions: []apps.AppPermission{{PermissionLevel: apps.AppPermissionLevelCanManage, Inherited: true,
			InheritedFromObject: []string{"/apps/"}}}})
	return out
}
