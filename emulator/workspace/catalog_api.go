package workspace

import (
	"net/http"
	"slices"
	"strings"

	"github.com/databricks/databricks-sdk-go/service/catalog"
	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// PathUnityCatalog is the prefix of the Unity Catalog REST API.
const PathUnityCatalog = "/api/2.1/unity-catalog"

// The Unity Catalog API (wired in data.go): reading catalogs, schemas, tables and volumes, each visible to whoever
// holds a privilege on it or on something in it, and reading and changing grants (the owner, or MANAGE). The objects
// themselves come from the model and cannot be created or dropped.

// visible finds the securable of kind and name that p may see, or answers 404 (a hidden object is not found, as
// Unity Catalog answers).
func (uc *unityCatalog) visible(rw http.ResponseWriter, p principal, kind, name string) (*securable, bool) {
	s := uc.lookup(kind, name)
	if s == nil || !uc.holdsAny(p, s) {
		jsonhttp.WriteError(rw, catalogNotFound(kind, name))
		return nil, false
	}
	return s, true
}

func (uc *unityCatalog) handleListCatalogs() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		p := authFrom(r.Context()).principal
		resp := catalog.ListCatalogsResponse{Catalogs: []catalog.CatalogInfo{}}
		for _, c := range uc.catalogs {
			if uc.holdsAny(p, c) {
				resp.Catalogs = append(resp.Catalogs, uc.catalogInfo(c))
			}
		}
		jsonhttp.Write(rw, http.StatusOK, resp)
	}
}

// handleList lists the schemas of a catalog, or the tables or volumes of a schema, that the caller may see. Listing
// takes USE CATALOG (and USE SCHEMA for tables and volumes), as in Unity Catalog.
func (uc *unityCatalog) handleList(kind string) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		p := authFrom(r.Context()).principal
		parentKind, parentName := kindCatalog, r.URL.Query().Get("catalog_name")
		if kind != kindSchema {
			parentKind, parentName = kindSchema, parentName+"."+r.URL.Query().Get("schema_name")
		}
		if strings.HasPrefix(parentName, ".") || strings.HasSuffix(parentName, ".") || parentName == "" {
			jsonhttp.WriteError(rw, badParameter("catalog_name%s is required", map[bool]string{true: " and schema_name"}[kind != kindSchema]))
			return
		}
		parent, ok := uc.visible(rw, p, parentKind, parentName)
		if !ok {
			return
		}
		need := PrivUseCatalog
		if parentKind == kindSchema {
			need = PrivUseSchema
		}
		if problem := uc.accessProblem(p, parent, need); problem != "" {
			jsonhttp.WriteError(rw, catalogForbidden(problem))
			return
		}
		var items []*securable
		for _, c := range parent.children {
			if c.kind == kind && uc.holdsAny(p, c) {
				items = append(items, c)
			}
		}
		switch kind {
		case kindSchema:
			resp := catalog.ListSchemasResponse{Schemas: []catalog.SchemaInfo{}}
			for _, s := range items {
				resp.Schemas = append(resp.Schemas, uc.schemaInfo(s))
			}
			jsonhttp.Write(rw, http.StatusOK, resp)
		case kindTable:
			resp := catalog.ListTablesResponse{Tables: []catalog.TableInfo{}}
			for _, s := range items {
				resp.Tables = append(resp.Tables, uc.tableInfo(s))
			}
			jsonhttp.Write(rw, http.StatusOK, resp)
		default:
			resp := catalog.ListVolumesResponseContent{Volumes: []catalog.VolumeInfo{}}
			for _, s := range items {
				resp.Volumes = append(resp.Volumes, uc.volumeInfo(s))
			}
			jsonhttp.Write(rw, http.StatusOK, resp)
		}
	}
}

func (uc *unityCatalog) handleGet(kind string) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		s, ok := uc.visible(rw, authFrom(r.Context()).principal, kind, chi.URLParam(r, "name"))
		if !ok {
			return
		}
		switch kind {
		case kindCatalog:
			jsonhttp.Write(rw, http.StatusOK, uc.catalogInfo(s))
		case kindSchema:
			jsonhttp.Write(rw, http.StatusOK, uc.schemaInfo(s))
		case kindTable:
			jsonhttp.Write(rw, http.StatusOK, uc.tableInfo(s))
		default:
			jsonhttp.Write(rw, http.StatusOK, uc.volumeInfo(s))
		}
	}
}

// securableFromPath reads the Grants API's {kind}/{name}: catalog, schema, table or volume, in any letter case.
func (uc *unityCatalog) securableFromPath(rw http.ResponseWriter, r *http.Request) (*securable, bool) {
	kind := strings.ToLower(chi.URLParam(r, "kind"))
	if !slices.Contains([]string{kindCatalog, kindSchema, kindTable, kindVolume}, kind) {
		jsonhttp.WriteError(rw, badParameter("securable type %q: the emulator's Unity Catalog has catalog, schema, table and volume",
			chi.URLParam(r, "kind")))
		return nil, false
	}
	return uc.visible(rw, authFrom(r.Context()).principal, kind, chi.URLParam(r, "name"))
}

// handleGetGrants lists the privileges granted on the securable itself (not inherited ones), optionally for one
// principal.
func (uc *unityCatalog) handleGetGrants() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		s, ok := uc.securableFromPath(rw, r)
		if ok {
			jsonhttp.Write(rw, http.StatusOK, uc.assignments(s, r.URL.Query().Get("principal")))
		}
	}
}

func (uc *unityCatalog) assignments(s *securable, only string) catalog.GetPermissionsResponse {
	uc.mu.RLock()
	defer uc.mu.RUnlock()
	resp := catalog.GetPermissionsResponse{PrivilegeAssignments: []catalog.PrivilegeAssignment{}}
	for _, who := range sortedKeys(s.grants) {
		if (only != "" && who != only) || len(s.grants[who]) == 0 {
			continue
		}
		a := catalog.PrivilegeAssignment{Principal: who}
		for _, priv := range s.grants[who] {
			a.Privileges = append(a.Privileges, catalog.Privilege(priv))
		}
		resp.PrivilegeAssignments = append(resp.PrivilegeAssignments, a)
	}
	return resp
}

// handleUpdateGrants applies {"changes":[{"principal","add","remove"}]}, for the owner or a holder of MANAGE; it
// answers with the grants after the change, as the Grants API does.
func (uc *unityCatalog) handleUpdateGrants() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		s, ok := uc.securableFromPath(rw, r)
		if !ok {
			return
		}
		p := authFrom(r.Context()).principal
		if !uc.canManage(p, s) {
			jsonhttp.WriteError(rw, catalogForbidden("User does not have MANAGE on "+s.label()+"."))
			return
		}
		var req struct {
			Changes []catalog.PermissionsChange `json:"changes"`
		}
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxAPIBody, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		for _, c := range req.Changes {
			if c.Principal == "" {
				jsonhttp.WriteError(rw, badParameter("every change names a principal"))
				return
			}
			for _, priv := range append(slices.Clone(c.Add), c.Remove...) {
				if !slices.Contains(knownPrivileges, normalPrivilege(string(priv))) {
					jsonhttp.WriteError(rw, badParameter("Privilege %s is not applicable to this entity: the emulator grants %s",
						priv, strings.Join(knownPrivileges, ", ")))
					return
				}
			}
		}
		uc.mu.Lock()
		for _, c := range req.Changes {
			for _, priv := range c.Add {
				if n := normalPrivilege(string(priv)); !slices.Contains(s.grants[c.Principal], n) {
					s.grants[c.Principal] = append(s.grants[c.Principal], n)
				}
			}
			for _, priv := range c.Remove {
				n := normalPrivilege(string(priv))
				s.grants[c.Principal] = slices.DeleteFunc(s.grants[c.Principal], func(have string) bool { return have == n })
			}
			if len(s.grants[c.Principal]) == 0 {
				delete(s.grants, c.Principal)
			}
		}
		uc.mu.Unlock()
		uc.changed()
		jsonhttp.Write(rw, http.StatusOK, uc.assignments(s, ""))
	}
}

// handleEffectiveGrants lists what each principal holds on the securable, inherited privileges naming where they
// come from.
func (uc *unityCatalog) handleEffectiveGrants() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		s, ok := uc.securableFromPath(rw, r)
		if !ok {
			return
		}
		only := r.URL.Query().Get("principal")
		byPrincipal := map[string][]catalog.EffectivePrivilege{}
		uc.mu.RLock()
		for at := s; at != nil; at = at.parent {
			for who, privs := range at.grants {
				if only != "" && who != only {
					continue
				}
				for _, priv := range privs {
					e := catalog.EffectivePrivilege{Privilege: catalog.Privilege(priv)}
					if at != s {
						e.InheritedFromType = catalog.SecurableType(strings.ToUpper(at.kind))
						e.InheritedFromName = at.fullName()
					}
					byPrincipal[who] = append(byPrincipal[who], e)
				}
			}
		}
		uc.mu.RUnlock()
		resp := catalog.EffectivePermissionsList{PrivilegeAssignments: []catalog.EffectivePrivilegeAssignment{}}
		for _, who := range sortedKeys(byPrincipal) {
			resp.PrivilegeAssignments = append(resp.PrivilegeAssignments,
				catalog.EffectivePrivilegeAssignment{Principal: who, Privileges: byPrincipal[who]})
		}
		jsonhttp.Write(rw, http.StatusOK, resp)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (uc *unityCatalog) catalogInfo(s *securable) catalog.CatalogInfo {
	return catalog.CatalogInfo{Name: s.catalog, FullName: s.catalog, Comment: s.comment, Owner: s.owner,
		CatalogType: catalog.CatalogTypeManagedCatalog, MetastoreId: uc.metastore, CreatedAt: uc.created,
		CreatedBy: s.owner, SecurableType: catalog.SecurableTypeCatalog, IsolationMode: catalog.CatalogIsolationModeOpen}
}

func (uc *unityCatalog) schemaInfo(s *securable) catalog.SchemaInfo {
	return catalog.SchemaInfo{Name: s.schema, CatalogName: s.catalog, FullName: s.fullName(), Comment: s.comment,
		Owner: s.owner, MetastoreId: uc.metastore, CreatedAt: uc.created, CreatedBy: s.owner}
}

func (uc *unityCatalog) tableInfo(s *securable) catalog.TableInfo {
	t := catalog.TableInfo{Name: s.name, CatalogName: s.catalog, SchemaName: s.schema, FullName: s.fullName(),
		Comment: s.comment, Owner: s.owner, TableType: catalog.TableTypeManaged,
		DataSourceFormat: catalog.DataSourceFormatDelta, MetastoreId: uc.metastore, CreatedAt: uc.created,
		CreatedBy: s.owner}
	for i, c := range s.table.Columns {
		text, name := columnType(c.Type)
		col := catalog.ColumnInfo{Name: c.Name, TypeText: text, TypeName: catalog.ColumnTypeName(name), Position: i,
			Comment: c.Comment, Nullable: true, ForceSendFields: []string{"Position", "Nullable"}}
		if _, masked := s.table.ColumnMasks[c.Name]; masked {
			col.Mask = &catalog.ColumnMask{FunctionName: s.fullName() + "_mask_" + c.Name, UsingColumnNames: []string{}}
		}
		t.Columns = append(t.Columns, col)
	}
	if s.table.RowFilter != "" {
		t.RowFilter = &catalog.TableRowFilter{FunctionName: s.fullName() + "_row_filter", InputColumnNames: []string{}}
	}
	return t
}

func (uc *unityCatalog) volumeInfo(s *securable) catalog.VolumeInfo {
	return catalog.VolumeInfo{Name: s.name, CatalogName: s.catalog, SchemaName: s.schema, FullName: s.fullName(),
		Comment: s.comment, Owner: s.owner, VolumeType: catalog.VolumeTypeManaged, MetastoreId: uc.metastore,
		StorageLocation: "emulator://volumes/" + s.catalog + "/" + s.schema + "/" + s.name, CreatedAt: uc.created,
		CreatedBy: s.owner}
}
