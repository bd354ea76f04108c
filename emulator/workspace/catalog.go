package workspace

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/emulator/sqlengine"
)

// unityCatalog is the emulated Unity Catalog: the model's catalogs, schemas, tables and volumes, their owners, and
// the privileges granted on them. The objects come from the model; the grants change through the Grants API and
// when an app resource is added. Privileges are inherited (a grant on a catalog holds on every schema and table in
// it), and a group's grants hold for its members; owners hold every privilege on what they own.
type unityCatalog struct {
	mu         sync.RWMutex // guards every securable's grants
	byKey      map[string]*securable
	catalogs   []*securable // in model order
	created    int64        // creation time of every object, in ms
	metastore  string
	defaultCat string // the catalog unqualified names point at: the model's first
	changed    func() // a grant changed: the workspace keeps it (persist.go)
}

// securable is a catalog, schema, table or volume.
type securable struct {
	kind                  string // one of the securable kinds below
	catalog, schema, name string // the name's parts; schema and name empty for a catalog
	comment               string
	owner                 string // a user name, group name or application id
	parent                *securable
	children              []*securable
	grants                map[string][]string // principal -> privileges; guarded by unityCatalog.mu
	table                 *Table              // tables: the model's definition
}

// Securable kinds, as the Grants API names them in its path.
const (
	kindCatalog = "catalog"
	kindSchema  = "schema"
	kindTable   = "table"
	kindVolume  = "volume"
)

func (s *securable) fullName() string {
	switch s.kind {
	case kindCatalog:
		return s.catalog
	case kindSchema:
		return s.catalog + "." + s.schema
	}
	return s.catalog + "." + s.schema + "." + s.name
}

// label names the securable as Databricks' messages do: Table 'samples.sales.orders'.
func (s *securable) label() string {
	return fmt.Sprintf("%s%s '%s'", strings.ToUpper(s.kind[:1]), s.kind[1:], s.fullName())
}

func securableKey(kind, fullName string) string { return kind + ":" + strings.ToLower(fullName) }

// newUnityCatalog builds the catalog from the model; owners default to the signed-in user, and principals named by
// a service principal's name are stored by its application id, as Unity Catalog names them.
func newUnityCatalog(cfg Config, dir *directory, changed func()) *unityCatalog {
	uc := &unityCatalog{byKey: map[string]*securable{}, created: time.Now().UnixMilli(),
		metastore: "00000000-0000-4000-8000-00000000ca7a", changed: changed}
	name := func(principal string) string {
		if sp, ok := cfg.ServicePrincipal(principal); ok {
			return sp.ApplicationID
		}
		return principal
	}
	grants := func(list []Grant) map[string][]string {
		m := map[string][]string{}
		for _, g := range list {
			for _, p := range g.Privileges {
				if priv := normalPrivilege(p); !slices.Contains(m[name(g.Principal)], priv) {
					m[name(g.Principal)] = append(m[name(g.Principal)], priv)
				}
			}
		}
		return m
	}
	add := func(s *securable) *securable {
		uc.byKey[securableKey(s.kind, s.fullName())] = s
		if s.parent != nil {
			s.parent.children = append(s.parent.children, s)
		}
		return s
	}
	for _, c := range cfg.Catalogs {
		owner := cmp.Or(name(c.Owner), dir.signedIn.UserName)
		cat := add(&securable{kind: kindCatalog, catalog: c.Name, comment: c.Comment, owner: owner, grants: grants(c.Grants)})
		uc.catalogs = append(uc.catalogs, cat)
		for _, s := range c.Schemas {
			sch := add(&securable{kind: kindSchema, catalog: c.Name, schema: s.Name, comment: s.Comment, owner: owner,
				parent: cat, grants: grants(s.Grants)})
			for _, t := range s.Tables {
				add(&securable{kind: kindTable, catalog: c.Name, schema: s.Name, name: t.Name, comment: t.Comment,
					owner: owner, parent: sch, grants: grants(t.Grants), table: &t})
			}
			for _, v := range s.Volumes {
				add(&securable{kind: kindVolume, catalog: c.Name, schema: s.Name, name: v.Name, comment: v.Comment,
					owner: owner, parent: sch, grants: grants(v.Grants)})
			}
		}
	}
	if len(uc.catalogs) > 0 {
		uc.defaultCat = uc.catalogs[0].catalog
	}
	return uc
}

// columnType is a model column's type as the Tables API reports it: its type_text and type_name.
func columnType(t string) (text, name string) {
	engine, err := sqlengine.EngineType(t) // Validate checked it
	if err != nil {
		return strings.ToUpper(t), "STRING"
	}
	return sqlengine.DatabricksType(engine)
}

// lookup finds a securable by kind and full name, case-insensitively as Unity Catalog does.
func (uc *unityCatalog) lookup(kind, fullName string) *securable {
	return uc.byKey[securableKey(kind, fullName)]
}

// names reports whether the grant's principal name stands for p: p itself, or a group p is in.
func names(p principal, name string) bool { return name == p.UserName || p.memberOf(name) }

// owns reports whether p owns s or something s is in.
func (uc *unityCatalog) owns(p principal, s *securable) bool {
	for ; s != nil; s = s.parent {
		if names(p, s.owner) {
			return true
		}
	}
	return false
}

// holds reports whether p holds priv on s: as an owner, or granted on s or on what s is in (ALL_PRIVILEGES counts).
func (uc *unityCatalog) holds(p principal, s *securable, priv string) bool {
	if uc.owns(p, s) {
		return true
	}
	uc.mu.RLock()
	defer uc.mu.RUnlock()
	for at := s; at != nil; at = at.parent {
		for who, privs := range at.grants {
			if names(p, who) && (slices.Contains(privs, priv) || slices.Contains(privs, PrivAllPrivileges)) {
				return true
			}
		}
	}
	return false
}

// holdsAny reports whether p may see s: it owns s (or what s is in), holds on s a privilege that applies to it
// (granted on s or inherited from what s is in), or may see something in s. USE CATALOG on a catalog shows the
// catalog, not its tables: each kind has its own privileges.
func (uc *unityCatalog) holdsAny(p principal, s *securable) bool {
	if uc.owns(p, s) {
		return true
	}
	uc.mu.RLock()
	for at := s; at != nil; at = at.parent {
		for who, privs := range at.grants {
			if names(p, who) && slices.ContainsFunc(privs, func(priv string) bool { return appliesTo(priv, s.kind) }) {
				uc.mu.RUnlock()
				return true
			}
		}
	}
	uc.mu.RUnlock()
	return slices.ContainsFunc(s.children, func(c *securable) bool { return uc.holdsAny(p, c) })
}

// appliesTo reports whether a privilege is one of a securable kind's own (which makes one of them visible).
func appliesTo(priv, kind string) bool {
	switch priv {
	case PrivAllPrivileges, PrivBrowse, PrivManage:
		return true
	case PrivUseCatalog:
		return kind == kindCatalog
	case PrivUseSchema:
		return kind == kindSchema
	case PrivSelect:
		return kind == kindTable
	case PrivReadVolume, PrivWriteVolume:
		return kind == kindVolume
	}
	return false
}

// accessProblem is why p may not use s with priv: the first privilege missing on the way down from its catalog
// (USE CATALOG, USE SCHEMA, then priv), worded as Databricks words it; "" when p may.
func (uc *unityCatalog) accessProblem(p principal, s *securable, priv string) string {
	var path []*securable
	for at := s; at != nil; at = at.parent {
		path = append([]*securable{at}, path...)
	}
	for _, at := range path {
		need := priv
		switch {
		case at == s:
		case at.kind == kindCatalog:
			need = PrivUseCatalog
		case at.kind == kindSchema:
			need = PrivUseSchema
		}
		if !uc.holds(p, at, need) {
			return fmt.Sprintf("User does not have %s on %s.", strings.ReplaceAll(need, "_", " "), at.label())
		}
	}
	return ""
}

// canManage reports whether p may change the grants of s: its owner, or holding MANAGE on it.
func (uc *unityCatalog) canManage(p principal, s *securable) bool {
	return uc.holds(p, s, PrivManage)
}

// grant adds privileges to a principal on s; it reports whether anything changed.
func (uc *unityCatalog) grant(s *securable, principal string, privs ...string) bool {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	changed := false
	for _, p := range privs {
		if !slices.Contains(s.grants[principal], p) {
			s.grants[principal] = append(s.grants[principal], p)
			changed = true
		}
	}
	if changed {
		uc.changed()
	}
	return changed
}

// table finds a table by its possibly partial name, the statement's defaults filling what is missing.
func (uc *unityCatalog) table(catalog, schema, name string) *securable {
	return uc.lookup(kindTable, catalog+"."+schema+"."+name)
}

// catalogError is Unity Catalog's answer to a missing or hidden object: 404 with the kind's code.
func catalogNotFound(kind, fullName string) *jsonhttp.Error {
	code := map[string]string{kindCatalog: "CATALOG_DOES_NOT_EXIST", kindSchema: "SCHEMA_DOES_NOT_EXIST",
		kindTable: "TABLE_DOES_NOT_EXIST", kindVolume: "RESOURCE_DOES_NOT_EXIST"}[kind]
	return &jsonhttp.Error{Status: http.StatusNotFound, Code: code,
		Message: fmt.Sprintf("%s%s '%s' does not exist.", strings.ToUpper(kind[:1]), kind[1:], fullName)}
}

func catalogForbidden(message string) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied, Message: message,
		Fix: "an owner of the object, or someone with MANAGE on it, grants the privilege: databricks grants update"}
}
