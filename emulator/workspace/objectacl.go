package workspace

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// objectACL is the Permissions API's access control list of a warehouse or a Genie space: each principal's one
// level, a higher level including the lower ones. Workspace admins hold the highest level on every object.
type objectACL struct {
	objectType string   // in the Permissions API's path: warehouses, genie
	levels     []string // weakest first
	changed    func()   // the list changed: the workspace keeps it (persist.go)

	mu      sync.RWMutex
	entries []aclEntry
}

// The levels of the objects the emulator's Permissions API serves besides apps.
var (
	warehouseLevels = []string{"CAN_VIEW", "CAN_MONITOR", PermissionCanUse, PermissionCanManage, "IS_OWNER"}
	genieLevels     = []string{"CAN_VIEW", "CAN_RUN", "CAN_EDIT", PermissionCanManage}
)

func newObjectACL(objectType string, levels []string, cfg Config, signedIn string, lists map[string]CanUse,
	changed func()) *objectACL {
	a := &objectACL{objectType: objectType, levels: levels, changed: changed}
	for _, level := range slices.Backward(levels) { // the highest level a principal is listed at wins
		list, ok := lists[level]
		if !ok {
			continue
		}
		if level == PermissionCanManage && len(list.Users)+len(list.ServicePrincipals)+len(list.Groups) == 0 {
			list = CanUse{Users: []string{signedIn}}
		}
		for _, e := range aclFromLists(list, cfg, level) {
			if !slices.ContainsFunc(a.entries, e.samePrincipal) {
				a.entries = append(a.entries, e)
			}
		}
	}
	return a
}

// aclFromLists turns a model list into entries at one level; service principals are named by application id.
func aclFromLists(list CanUse, cfg Config, level string) []aclEntry {
	var out []aclEntry
	for _, u := range list.Users {
		out = append(out, aclEntry{userName: u, level: level})
	}
	for _, name := range list.ServicePrincipals {
		sp, _ := cfg.ServicePrincipal(name) // Validate guarantees it exists
		out = append(out, aclEntry{servicePrincipalName: sp.ApplicationID, level: level})
	}
	for _, g := range list.Groups {
		out = append(out, aclEntry{groupName: g, level: level})
	}
	return out
}

func (a *objectACL) rank(level string) int { return slices.Index(a.levels, level) }

// has reports whether p holds at least level.
func (a *objectACL) has(p principal, level string) bool {
	if p.isAdmin() {
		return true
	}
	want := a.rank(level)
	a.mu.RLock()
	defer a.mu.RUnlock()
	return slices.ContainsFunc(a.entries, func(e aclEntry) bool {
		return a.rank(e.level) >= want && e.matches(p)
	})
}

// grant gives a principal a level, unless it already holds as much.
func (a *objectACL) grant(e aclEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, old := range a.entries {
		if old.samePrincipal(e) {
			if a.rank(old.level) < a.rank(e.level) {
				a.entries[i].level = e.level
				a.changed()
			}
			return
		}
	}
	a.entries = append(a.entries, e)
	a.changed()
}

// objectPermissionRoutes serves the Permissions API for one kind of object under
// /api/2.0/permissions/<objectType>/{id}: reading and changing an object's list takes CAN_MANAGE on it. acls finds
// an object's list, or nil when the id names none.
func objectPermissionRoutes(r chi.Router, objectType string, acls func(id string) *objectACL) {
	manage := PermissionCanManage
	find := func(rw http.ResponseWriter, r *http.Request) (*objectACL, string, bool) {
		id := chi.URLParam(r, "id")
		acl := acls(id)
		if acl == nil {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
				Message: fmt.Sprintf("%s %s does not exist.", objectType, id)})
			return nil, "", false
		}
		if p := authFrom(r.Context()).principal; !acl.has(p, manage) {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
				Message: fmt.Sprintf("%s does not have %s permission on %s %s", p.UserName, manage, objectType, id)})
			return nil, "", false
		}
		return acl, id, true
	}
	base := "/api/2.0/permissions/" + objectType + "/{id}"
	r.Get(base, func(rw http.ResponseWriter, r *http.Request) {
		if acl, id, ok := find(rw, r); ok {
			jsonhttp.Write(rw, http.StatusOK, acl.wire(id))
		}
	})
	r.Get(base+"/permissionLevels", func(rw http.ResponseWriter, r *http.Request) {
		if acl, _, ok := find(rw, r); ok {
			resp := iam.GetPermissionLevelsResponse{}
			for _, l := range acl.levels {
				resp.PermissionLevels = append(resp.PermissionLevels, iam.PermissionsDescription{PermissionLevel: iam.PermissionLevel(l)})
			}
			jsonhttp.Write(rw, http.StatusOK, resp)
		}
	})
	set := func(replace bool) http.HandlerFunc {
		return func(rw http.ResponseWriter, r *http.Request) {
			acl, id, ok := find(rw, r)
			if !ok {
				return
			}
			var req struct {
				AccessControlList []iam.AccessControlRequest `json:"access_control_list"`
			}
			if jerr := jsonhttp.DecodeAnyType(rw, r, maxAPIBody, &req); jerr != nil {
				jsonhttp.WriteError(rw, jerr)
				return
			}
			var entries []aclEntry
			for _, e := range req.AccessControlList {
				entry := aclEntry{userName: e.UserName, groupName: e.GroupName, servicePrincipalName: e.ServicePrincipalName,
					level: string(e.PermissionLevel)}
				if n := len(slices.DeleteFunc([]string{e.UserName, e.GroupName, e.ServicePrincipalName},
					func(s string) bool { return s == "" })); n != 1 {
					jsonhttp.WriteError(rw, badParameter("each access control entry names exactly one of user_name, group_name and service_principal_name"))
					return
				}
				if acl.rank(entry.level) < 0 {
					jsonhttp.WriteError(rw, badParameter("Permission level %q is not valid for %s: use one of %s",
						entry.level, acl.objectType, strings.Join(acl.levels, ", ")))
					return
				}
				entries = append(entries, entry)
			}
			acl.mu.Lock()
			if replace {
				acl.entries = nil
			}
			for _, e := range entries {
				acl.entries = slices.DeleteFunc(acl.entries, e.samePrincipal)
				acl.entries = append(acl.entries, e)
			}
			acl.mu.Unlock()
			acl.changed()
			jsonhttp.Write(rw, http.StatusOK, acl.wire(id))
		}
	}
	r.Patch(base, set(false))
	r.Put(base, set(true))
}

// wire is the list as the Permissions API reports it.
func (a *objectACL) wire(id string) iam.ObjectPermissions {
	a.mu.RLock()
	defer a.mu.RUnlock()
	objectID := "/" + a.objectType + "/" + id
	if a.objectType == "warehouses" {
		objectID = "/sql/warehouses/" + id
	}
	out := iam.ObjectPermissions{ObjectId: objectID, ObjectType: strings.TrimSuffix(a.objectType, "s")}
	for _, e := range a.entries {
		out.AccessControlList = append(out.AccessControlList, iam.AccessControlResponse{UserName: e.userName,
			GroupName: e.groupName, ServicePrincipalName: e.servicePrincipalName,
			AllPermissions: []iam.Permission{{PermissionLevel: iam.PermissionLevel(e.level)}}})
	}
	return out
}
