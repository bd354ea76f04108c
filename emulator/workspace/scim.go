package workspace

// The workspace's SCIM directory, read-only: Users, ServicePrincipals and Groups, listed with a filter and in pages
// and read one by one, as `databricks users|service-principals|groups list|get` and the SDK's w.Users,
// w.ServicePrincipals and w.Groups call them. A workshop leader reads a service principal's application id here
// rather than in the state file. Nothing here ever holds a secret.

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// Paths of the SCIM directory.
const (
	PathSCIMUsers             = "/api/2.0/preview/scim/v2/Users"
	PathSCIMServicePrincipals = "/api/2.0/preview/scim/v2/ServicePrincipals"
	PathSCIMGroups            = "/api/2.0/preview/scim/v2/Groups"
)

// ScopeAccessManagement is the API scope of the users, service principals and groups APIs (Databricks' "API
// scopes" reference names it access-management); all-apis covers it.
const ScopeAccessManagement = "access-management"

// maxSCIMPage bounds a page; the SDK asks for 10,000 at a time.
const maxSCIMPage = 10_000

const (
	scimListSchema = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	scimUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	scimUserExt    = "urn:ietf:params:scim:schemas:extension:workspace:2.0:User"
	scimSP         = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"
	scimGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
)

// scim serves the directory over SCIM, read-only, and SCIM Me (api.go).
type scim struct {
	dir    *directory
	groups []Group // the model's, in its order
}

func (sc *scim) routes(r chi.Router) {
	r.Get(PathSCIMMe, sc.handleSCIMMe())
	r.Group(func(r chi.Router) {
		r.Use(requireScope(ScopeAccessManagement)) // or all-apis
		r.Get(PathSCIMUsers, sc.handleSCIMList(sc.scimUsers))
		r.Get(PathSCIMUsers+"/{id}", sc.handleSCIMGet(sc.scimUsers, "User"))
		r.Get(PathSCIMServicePrincipals, sc.handleSCIMList(sc.scimServicePrincipals))
		r.Get(PathSCIMServicePrincipals+"/{id}", sc.handleSCIMGet(sc.scimServicePrincipals, "Service principal"))
		r.Get(PathSCIMGroups, sc.handleSCIMList(sc.scimGroups))
		r.Get(PathSCIMGroups+"/{id}", sc.handleSCIMGet(sc.scimGroups, "Group"))
	})
}

// scimResource is one resource as SCIM sends it, with the attributes a filter compares (lower-cased names).
type scimResource struct {
	doc   map[string]any
	attrs map[string][]string
}

// workspaceGroup is a group of the directory and its members.
type workspaceGroup struct {
	name    string
	members []principal
}

// directoryGroups lists the workspace's groups: users, which holds every user and service principal, as in
// Databricks, and the model's groups (admins among them).
func (sc *scim) directoryGroups() []workspaceGroup {
	everyone := sc.dir.everyone()
	groups := []workspaceGroup{{name: GroupUsers, members: everyone}}
	for _, g := range sc.groups {
		members := []principal{}
		for _, p := range everyone {
			if slices.Contains(p.Groups, g.Name) {
				members = append(members, p)
			}
		}
		groups = append(groups, workspaceGroup{name: g.Name, members: members})
	}
	return groups
}

// groupID is a group's numeric id: a hash of its name, sixteen digits as Databricks' ids are, so it stays the same
// across restarts and never meets a principal's (the model's are short).
func groupID(name string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte("group:" + name))
	return strconv.FormatUint(1_000_000_000_000_000+h.Sum64()%9_000_000_000_000_000, 10)
}

// groupsOf is the groups p belongs to, as a user or service principal lists them.
func groupsOf(p principal, groups []workspaceGroup) []map[string]any {
	out := []map[string]any{}
	for _, g := range groups {
		if slices.ContainsFunc(g.members, func(m principal) bool { return m.UserName == p.UserName }) {
			id := groupID(g.name)
			out = append(out, map[string]any{"value": id, "display": g.name, "type": "direct", "$ref": "Groups/" + id})
		}
	}
	return out
}

func (sc *scim) scimUsers() []scimResource {
	groups := sc.directoryGroups()
	var out []scimResource
	for _, u := range sc.dir.users() {
		out = append(out, scimResource{
			doc: map[string]any{"schemas": []string{scimUser, scimUserExt}, "id": u.ID, "userName": u.UserName,
				"displayName": u.DisplayName, "active": true,
				"emails": []map[string]any{{"value": u.Email, "type": "work", "primary": true}},
				"groups": groupsOf(u, groups)},
			attrs: map[string][]string{"id": {u.ID}, "username": {u.UserName}, "displayname": {u.DisplayName},
				"active": {"true"}, "emails": {u.Email}, "emails.value": {u.Email}},
		})
	}
	return out
}

func (sc *scim) scimServicePrincipals() []scimResource {
	groups := sc.directoryGroups()
	var out []scimResource
	for _, sp := range sc.dir.servicePrincipals() {
		p, ok := sc.dir.subject(sp.ApplicationID)
		if !ok {
			continue
		}
		out = append(out, scimResource{
			doc: map[string]any{"schemas": []string{scimSP}, "id": sp.ID, "applicationId": sp.ApplicationID,
				"displayName": sp.Name, "active": true, "groups": groupsOf(p, groups)},
			attrs: map[string][]string{"id": {sp.ID}, "applicationid": {sp.ApplicationID},
				"displayname": {sp.Name}, "active": {"true"}},
		})
	}
	return out
}

func (sc *scim) scimGroups() []scimResource {
	var out []scimResource
	for _, g := range sc.directoryGroups() {
		members := []map[string]any{}
		var values, displays []string
		for _, m := range g.members {
			ref := "Users/" + m.ID
			if m.Kind == identity.KindServicePrincipal {
				ref = "ServicePrincipals/" + m.ID
			}
			members = append(members, map[string]any{"value": m.ID, "display": m.DisplayName, "$ref": ref})
			values, displays = append(values, m.ID), append(displays, m.DisplayName)
		}
		id := groupID(g.name)
		out = append(out, scimResource{
			doc: map[string]any{"schemas": []string{scimGroup}, "id": id, "displayName": g.name, "members": members,
				"meta": map[string]any{"resourceType": "WorkspaceGroup"}},
			attrs: map[string][]string{"id": {id}, "displayname": {g.name}, "members.value": values,
				"members.display": displays},
		})
	}
	return out
}

// handleSCIMList answers a SCIM list: filter, sortBy and sortOrder, startIndex (from 1) and count, attributes and
// excludedAttributes, as RFC 7644 section 3.4.2 describes them and Databricks supports them.
func (sc *scim) handleSCIMList(all func() []scimResource) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		match, err := parseSCIMFilter(q.Get("filter"))
		if err != nil {
			jsonhttp.WriteError(rw, badParameter("filter: %v", err))
			return
		}
		start, jerr := scimInt(q.Get("startIndex"), "startIndex", 1)
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		count, jerr := scimInt(q.Get("count"), "count", maxSCIMPage)
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		start, count = max(start, 1), min(count, maxSCIMPage)
		var found []scimResource
		for _, res := range all() {
			if match(res.attrs) {
				found = append(found, res)
			}
		}
		sortBy, descending := strings.ToLower(q.Get("sortBy")), strings.EqualFold(q.Get("sortOrder"), "descending")
		slices.SortStableFunc(found, func(a, b scimResource) int {
			var c int
			if sortBy == "" || sortBy == "id" {
				c = cmp.Compare(numericID(first(a.attrs["id"])), numericID(first(b.attrs["id"])))
			} else {
				c = strings.Compare(strings.ToLower(first(a.attrs[sortBy])), strings.ToLower(first(b.attrs[sortBy])))
			}
			if descending {
				c = -c
			}
			return c
		})
		page := []map[string]any{}
		for i := start - 1; i >= 0 && i < len(found) && len(page) < count; i++ {
			page = append(page, project(found[i].doc, q.Get("attributes"), q.Get("excludedAttributes")))
		}
		jsonhttp.Write(rw, http.StatusOK, map[string]any{"schemas": []string{scimListSchema},
			"totalResults": len(found), "startIndex": start, "itemsPerPage": len(page), "Resources": page})
	}
}

func (sc *scim) handleSCIMGet(all func() []scimResource, kind string) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		for _, res := range all() {
			if first(res.attrs["id"]) == id {
				q := r.URL.Query()
				jsonhttp.Write(rw, http.StatusOK, project(res.doc, q.Get("attributes"), q.Get("excludedAttributes")))
				return
			}
		}
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
			Message: fmt.Sprintf("%s %s does not exist.", kind, id)})
	}
}

func scimInt(v, name string, def int) (int, *jsonhttp.Error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badParameter("%s must be a whole number, got %q", name, v)
	}
	return n, nil
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

// project keeps the named attributes of doc (schemas and id always), or drops the excluded ones.
func project(doc map[string]any, attributes, excluded string) map[string]any {
	names := func(list string) map[string]bool {
		m := map[string]bool{}
		for _, a := range strings.Split(list, ",") {
			if a = strings.TrimSpace(a); a != "" {
				m[strings.ToLower(a)] = true
			}
		}
		return m
	}
	keep, drop := names(attributes), names(excluded)
	out := map[string]any{}
	for k, v := range doc {
		lk := strings.ToLower(k)
		switch {
		case k == "schemas" || k == "id":
			out[k] = v
		case len(keep) > 0 && !keep[lk]:
		case drop[lk]:
		default:
			out[k] = v
		}
	}
	return out
}
