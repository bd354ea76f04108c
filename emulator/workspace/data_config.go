package workspace

import (
	"embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/databricks-sample/go-apps-api/emulator/sqlengine"
)

// The data an app reads as its user: the model's groups, SQL warehouses, Unity Catalog (catalogs, schemas, tables
// with their rows, row filters and column masks, volumes with their files, and grants), Genie spaces and secret
// scopes. See default.yaml for the default model's, and docs/data.md for what each one does.

// Group is a workspace group. Every user and service principal is also in the groups users and account users,
// which the model never lists.
type Group struct {
	Name              string   `json:"name" yaml:"name"`
	Users             []string `json:"users,omitempty" yaml:"users,omitempty"`                           // user names
	ServicePrincipals []string `json:"service_principals,omitempty" yaml:"service_principals,omitempty"` // names
}

// The groups every principal is in.
const (
	GroupAccountUsers = "account users"
	GroupAdmins       = "admins"
)

// Warehouse is a SQL warehouse: statements run on it, as whoever sends them.
type Warehouse struct {
	ID   string `json:"id" yaml:"id"`
	Name string `json:"name" yaml:"name"`
	// Stopped starts it STOPPED; a statement sent to it starts it, as a serverless warehouse starts.
	Stopped bool `json:"stopped,omitempty" yaml:"stopped,omitempty"`
	// CanUse may run statements on it; CanManage may also start, stop and grant it (the signed-in user by default).
	CanUse    CanUse `json:"can_use,omitempty" yaml:"can_use,omitempty"`
	CanManage CanUse `json:"can_manage,omitempty" yaml:"can_manage,omitempty"`
}

// Catalog is a Unity Catalog catalog.
type Catalog struct {
	Name    string   `json:"name" yaml:"name"`
	Comment string   `json:"comment,omitempty" yaml:"comment,omitempty"`
	Owner   string   `json:"owner,omitempty" yaml:"owner,omitempty"` // the signed-in user by default
	Grants  []Grant  `json:"grants,omitempty" yaml:"grants,omitempty"`
	Schemas []Schema `json:"schemas,omitempty" yaml:"schemas,omitempty"`
}

// Schema is a schema of a catalog, with its tables and volumes.
type Schema struct {
	Name    string   `json:"name" yaml:"name"`
	Comment string   `json:"comment,omitempty" yaml:"comment,omitempty"`
	Grants  []Grant  `json:"grants,omitempty" yaml:"grants,omitempty"`
	Tables  []Table  `json:"tables,omitempty" yaml:"tables,omitempty"`
	Volumes []Volume `json:"volumes,omitempty" yaml:"volumes,omitempty"`
}

// Table is a table of a schema and its rows.
type Table struct {
	Name    string        `json:"name" yaml:"name"`
	Comment string        `json:"comment,omitempty" yaml:"comment,omitempty"`
	Columns []TableColumn `json:"columns" yaml:"columns"`
	// Data is a CSV file, relative to the model file, whose header row names the columns: the table's rows.
	Data string `json:"data,omitempty" yaml:"data,omitempty"`
	// RowFilter is a boolean SQL expression over the columns: a principal sees the rows for which it is true. It
	// may call current_user() and is_account_group_member('group'), as a Unity Catalog row filter function does.
	RowFilter string `json:"row_filter,omitempty" yaml:"row_filter,omitempty"`
	// ColumnMasks replace a column's value with a SQL expression over the columns, with the same functions.
	ColumnMasks map[string]string `json:"column_masks,omitempty" yaml:"column_masks,omitempty"`
	Grants      []Grant           `json:"grants,omitempty" yaml:"grants,omitempty"`
}

// TableColumn is a column and its Databricks SQL type (STRING, BIGINT, DATE, DECIMAL(10,2), …).
type TableColumn struct {
	Name    string `json:"name" yaml:"name"`
	Type    string `json:"type" yaml:"type"`
	Comment string `json:"comment,omitempty" yaml:"comment,omitempty"`
}

// Volume is a managed volume: files under /Volumes/<catalog>/<schema>/<volume>/.
type Volume struct {
	Name    string `json:"name" yaml:"name"`
	Comment string `json:"comment,omitempty" yaml:"comment,omitempty"`
	// Files is a folder, relative to the model file, whose files the volume starts with.
	Files  string  `json:"files,omitempty" yaml:"files,omitempty"`
	Grants []Grant `json:"grants,omitempty" yaml:"grants,omitempty"`
}

// Grant gives a principal (a user name, a group, or a service principal's name or application id) privileges on
// a securable and, by inheritance, on everything in it: USE_CATALOG, USE_SCHEMA, SELECT, READ_VOLUME,
// WRITE_VOLUME, BROWSE, MANAGE or ALL_PRIVILEGES (spelt with a space or an underscore).
type Grant struct {
	Principal  string   `json:"principal" yaml:"principal"`
	Privileges []string `json:"privileges" yaml:"privileges"`
}

// GenieSpace is a Genie space over tables, answered from a warehouse.
type GenieSpace struct {
	ID          string   `json:"id" yaml:"id"`
	Title       string   `json:"title" yaml:"title"`
	Description string   `json:"description,omitempty" yaml:"description,omitempty"`
	Warehouse   string   `json:"warehouse" yaml:"warehouse"` // a warehouse id
	Tables      []string `json:"tables,omitempty" yaml:"tables,omitempty"`
	// CanRun may use the space; CanManage may also change its permissions (the signed-in user by default).
	CanRun    CanUse `json:"can_run,omitempty" yaml:"can_run,omitempty"`
	CanManage CanUse `json:"can_manage,omitempty" yaml:"can_manage,omitempty"`
}

// SecretScope is a Databricks-backed secret scope. Its values here are fixed strings of a throw-away workspace:
// never put a real secret in a model.
type SecretScope struct {
	Name    string            `json:"name" yaml:"name"`
	Secrets map[string]string `json:"secrets,omitempty" yaml:"secrets,omitempty"`
	ACLs    []SecretACL       `json:"acls,omitempty" yaml:"acls,omitempty"` // the signed-in user has MANAGE
}

// SecretACL gives a principal READ, WRITE or MANAGE on a secret scope.
type SecretACL struct {
	Principal  string `json:"principal" yaml:"principal"`
	Permission string `json:"permission" yaml:"permission"`
}

// The privileges the emulated Unity Catalog grants and checks, as the API spells them.
const (
	PrivUseCatalog    = "USE_CATALOG"
	PrivUseSchema     = "USE_SCHEMA"
	PrivSelect        = "SELECT"
	PrivReadVolume    = "READ_VOLUME"
	PrivWriteVolume   = "WRITE_VOLUME"
	PrivBrowse        = "BROWSE"
	PrivManage        = "MANAGE"
	PrivAllPrivileges = "ALL_PRIVILEGES"
)

var knownPrivileges = []string{PrivUseCatalog, PrivUseSchema, PrivSelect, PrivReadVolume, PrivWriteVolume,
	PrivBrowse, PrivManage, PrivAllPrivileges}

// normalPrivilege spells a privilege as the API does: USE CATALOG and use_catalog are USE_CATALOG.
func normalPrivilege(p string) string {
	return strings.ToUpper(strings.Join(strings.Fields(strings.ReplaceAll(p, "_", " ")), "_"))
}

// Secret permissions, weakest first.
var secretPermissions = []string{"READ", "WRITE", "MANAGE"}

// ucName matches a Unity Catalog object name part.
var ucName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,254}$`)

//go:embed data
var defaultData embed.FS

// dataFiles is where a model's relative data and files paths point: the model file's folder, then the default
// model's own data (orders.csv, volumes/reports), so that a copy of default.yaml loads from anywhere.
func (c Config) dataFiles() fs.FS {
	embedded, _ := fs.Sub(defaultData, "data")
	if c.files == nil {
		return embedded
	}
	return fallbackFS{c.files, embedded}
}

// fallbackFS opens a name in its first file system, or in its second where the first has no such name.
type fallbackFS [2]fs.FS

func (f fallbackFS) Open(name string) (fs.File, error) {
	file, err := f[0].Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return f[1].Open(name)
	}
	return file, err
}

// validateData checks the data part of a model; bad reports each problem.
func (c Config) validateData(bad func(string, ...any), users, sps map[string]bool) {
	groups := map[string]bool{GroupUsers: true, GroupAccountUsers: true}
	for _, g := range c.Groups {
		if g.Name == "" || groups[g.Name] {
			bad("group %q: names are set, unique and not %q or %q", g.Name, GroupUsers, GroupAccountUsers)
		}
		groups[g.Name] = true
		for _, u := range g.Users {
			if !users[u] {
				bad("group %q: users: %q is not in users", g.Name, u)
			}
		}
		for _, s := range g.ServicePrincipals {
			if !sps[s] {
				bad("group %q: service_principals: %q is not in service_principals", g.Name, s)
			}
		}
	}
	principal := func(where, name string) {
		if !users[name] && !groups[name] && !sps[name] && !c.isApplicationID(name) {
			bad("%s: principal %q is not a user, group or service principal of the model", where, name)
		}
	}
	checkList := func(where string, list CanUse) {
		for _, u := range list.Users {
			if !users[u] {
				bad("%s.users: %q is not in users", where, u)
			}
		}
		for _, s := range list.ServicePrincipals {
			if !sps[s] {
				bad("%s.service_principals: %q is not in service_principals", where, s)
			}
		}
		for _, g := range list.Groups {
			if !groups[g] {
				bad("%s.groups: %q is not a group of the model", where, g)
			}
		}
	}

	warehouses := map[string]bool{}
	for _, wh := range c.Warehouses {
		if !hexID.MatchString(wh.ID) || warehouses[wh.ID] {
			bad("warehouse %q: ids are unique, 16 lower-case hex digits", wh.ID)
		}
		warehouses[wh.ID] = true
		if wh.Name == "" {
			bad("warehouse %q: name must be set", wh.ID)
		}
		checkList("warehouse "+wh.ID+": can_use", wh.CanUse)
		checkList("warehouse "+wh.ID+": can_manage", wh.CanManage)
	}

	tables := map[string]bool{}
	seen := map[string]bool{}
	unique := func(kind, full string) {
		if seen[strings.ToLower(full)] {
			bad("%s %s is defined twice", kind, full)
		}
		seen[strings.ToLower(full)] = true
	}
	checkGrants := func(where string, grants []Grant) {
		for _, g := range grants {
			principal(where+": grants", g.Principal)
			for _, p := range g.Privileges {
				if !slices.Contains(knownPrivileges, normalPrivilege(p)) {
					bad("%s: grants: unknown privilege %q; known: %s", where, p, strings.Join(knownPrivileges, ", "))
				}
			}
		}
	}
	for _, cat := range c.Catalogs {
		if !ucName.MatchString(cat.Name) || strings.HasPrefix(cat.Name, "__") || isEngineCatalog(cat.Name) {
			bad("catalog %q: names are letters, digits, _ and -, not starting with __ and not %s",
				cat.Name, strings.Join(engineCatalogs, ", "))
		}
		unique("catalog", cat.Name)
		if cat.Owner != "" {
			principal("catalog "+cat.Name+": owner", cat.Owner)
		}
		checkGrants("catalog "+cat.Name, cat.Grants)
		for _, s := range cat.Schemas {
			schema := cat.Name + "." + s.Name
			if !ucName.MatchString(s.Name) {
				bad("schema %q: names are letters, digits, _ and -", schema)
			}
			unique("schema", schema)
			checkGrants("schema "+schema, s.Grants)
			for _, t := range s.Tables {
				full := schema + "." + t.Name
				if !ucName.MatchString(t.Name) {
					bad("table %q: names are letters, digits, _ and -", full)
				}
				unique("table or volume", full)
				tables[strings.ToLower(full)] = true
				checkGrants("table "+full, t.Grants)
				c.validateTable(bad, full, t)
			}
			for _, v := range s.Volumes {
				full := schema + "." + v.Name
				if !ucName.MatchString(v.Name) {
					bad("volume %q: names are letters, digits, _ and -", full)
				}
				unique("table or volume", full)
				checkGrants("volume "+full, v.Grants)
				if v.Files != "" {
					if st, err := fs.Stat(c.dataFiles(), v.Files); err != nil || !st.IsDir() {
						bad("volume %s: files: %q is not a folder next to the model", full, v.Files)
					}
				}
			}
		}
	}

	spaces := map[string]bool{}
	for _, g := range c.GenieSpaces {
		if !hexID.MatchString(g.ID) && !genieID.MatchString(g.ID) || spaces[g.ID] {
			bad("genie space %q: ids are unique, 16 or 32 lower-case hex digits", g.ID)
		}
		spaces[g.ID] = true
		if g.Title == "" {
			bad("genie space %q: title must be set", g.ID)
		}
		if !warehouses[g.Warehouse] {
			bad("genie space %q: warehouse %q is not in warehouses", g.ID, g.Warehouse)
		}
		for _, t := range g.Tables {
			if !tables[strings.ToLower(t)] {
				bad("genie space %q: table %q is not in catalogs", g.ID, t)
			}
		}
		checkList("genie space "+g.ID+": can_run", g.CanRun)
		checkList("genie space "+g.ID+": can_manage", g.CanManage)
	}

	scopes := map[string]bool{}
	for _, s := range c.SecretScopes {
		if !secretName.MatchString(s.Name) || scopes[s.Name] {
			bad("secret scope %q: names are unique: letters, digits, -, _, @ and .", s.Name)
		}
		scopes[s.Name] = true
		for k := range s.Secrets {
			if !secretName.MatchString(k) {
				bad("secret scope %q: key %q: letters, digits, -, _, @ and .", s.Name, k)
			}
		}
		for _, acl := range s.ACLs {
			principal("secret scope "+s.Name+": acls", acl.Principal)
			if !slices.Contains(secretPermissions, acl.Permission) {
				bad("secret scope %q: acls: permission %q: want READ, WRITE or MANAGE", s.Name, acl.Permission)
			}
		}
	}
}

// validateTable checks a table's columns, data file, filter and masks.
func (c Config) validateTable(bad func(string, ...any), full string, t Table) {
	if len(t.Columns) == 0 {
		bad("table %s: columns must be set", full)
	}
	cols := map[string]bool{}
	for _, col := range t.Columns {
		if !ucName.MatchString(col.Name) || cols[strings.ToLower(col.Name)] {
			bad("table %s: column %q: names are unique letters, digits, _ and -", full, col.Name)
		}
		cols[strings.ToLower(col.Name)] = true
		if _, err := sqlengine.EngineType(col.Type); err != nil {
			bad("table %s: column %s: %v", full, col.Name, err)
		}
	}
	for col := range t.ColumnMasks {
		if !cols[strings.ToLower(col)] {
			bad("table %s: column_masks: %q is not a column", full, col)
		}
	}
	if t.Data != "" {
		if _, err := c.tableRows(t); err != nil {
			bad("table %s: %v", full, err)
		}
	}
}

// maxTableRows bounds a model table: the emulator holds its tables in memory, and a sample needs hundreds.
const maxTableRows = 100_000

// tableRows reads a table's CSV: a header row naming the table's columns (in any order), then its rows. An empty
// field is NULL.
func (c Config) tableRows(t Table) ([][]*string, error) {
	if t.Data == "" {
		return nil, nil
	}
	f, err := c.dataFiles().Open(path.Clean(t.Data))
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("data %s: the header row: %w", t.Data, err)
	}
	index := make([]int, len(t.Columns)) // the CSV field of each column
	for i, col := range t.Columns {
		index[i] = slices.IndexFunc(header, func(h string) bool { return strings.EqualFold(strings.TrimSpace(h), col.Name) })
		if index[i] < 0 {
			return nil, fmt.Errorf("data %s: the header row has no column %s", t.Data, col.Name)
		}
	}
	var rows [][]*string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("data %s: %w", t.Data, err)
		}
		if len(rows) == maxTableRows {
			return nil, fmt.Errorf("data %s: more than %d rows", t.Data, maxTableRows)
		}
		row := make([]*string, len(t.Columns))
		for i, at := range index {
			if v := rec[at]; v != "" {
				row[i] = &v
			}
		}
		rows = append(rows, row)
	}
}

// isApplicationID reports whether name is a service principal's application id: UC and secret ACLs name service
// principals by it.
func (c Config) isApplicationID(name string) bool {
	return slices.ContainsFunc(c.ServicePrincipals, func(sp ServicePrincipal) bool { return sp.ApplicationID == name })
}

var (
	hexID      = regexp.MustCompile(`^[0-9a-f]{16}$`)
	genieID    = regexp.MustCompile(`^[0-9a-f]{32}$`)
	secretName = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,128}$`)
)

// engineCatalogs are the engine's own databases: no Unity Catalog catalog may take their names.
var engineCatalogs = []string{"memory", "system", "temp"}

func isEngineCatalog(name string) bool { return slices.Contains(engineCatalogs, strings.ToLower(name)) }

// resourcePermissions are the permissions each kind of app resource may grant, the default first.
var resourcePermissions = map[string][]string{
	"app":           {PermissionCanUse},
	"sql_warehouse": {PermissionCanUse, PermissionCanManage, "IS_OWNER"},
	"table":         {PrivSelect},
	"volume":        {PrivReadVolume, PrivWriteVolume},
	"genie_space":   {"CAN_RUN", "CAN_VIEW", "CAN_EDIT", PermissionCanManage},
	"secret":        {"READ", "WRITE", "MANAGE"},
}

// kind is which of its targets a model resource names, or "" when it names none or several.
func (r AppResource) kind() string {
	var kinds []string
	for k, set := range map[string]bool{"app": r.App != "", "sql_warehouse": r.SQLWarehouse != "", "table": r.Table != "",
		"volume": r.Volume != "", "genie_space": r.GenieSpace != "", "secret": r.Secret != nil} {
		if set {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		return ""
	}
	return kinds[0]
}

// permission is the resource's permission, or its kind's default.
func (r AppResource) permission() string {
	if r.Permission != "" {
		return r.Permission
	}
	return resourcePermissions[r.kind()][0]
}

// checkResource checks that a model resource names one thing of the model, with a permission of its kind.
func (c Config) checkResource(r AppResource, apps map[string]bool) error {
	kind := r.kind()
	if kind == "" {
		return errors.New("name exactly one of app, sql_warehouse, table, volume, genie_space and secret")
	}
	if !slices.Contains(resourcePermissions[kind], r.permission()) {
		return fmt.Errorf("permission %q: a %s resource grants one of %s", r.Permission, kind,
			strings.Join(resourcePermissions[kind], ", "))
	}
	found := false
	switch kind {
	case "app":
		found = apps[r.App]
	case "sql_warehouse":
		found = slices.ContainsFunc(c.Warehouses, func(w Warehouse) bool { return w.ID == r.SQLWarehouse })
	case "table", "volume":
		full := r.Table + r.Volume
		for _, cat := range c.Catalogs {
			for _, s := range cat.Schemas {
				for _, t := range s.Tables {
					found = found || kind == "table" && strings.EqualFold(cat.Name+"."+s.Name+"."+t.Name, full)
				}
				for _, v := range s.Volumes {
					found = found || kind == "volume" && strings.EqualFold(cat.Name+"."+s.Name+"."+v.Name, full)
				}
			}
		}
	case "genie_space":
		found = slices.ContainsFunc(c.GenieSpaces, func(g GenieSpace) bool { return g.ID == r.GenieSpace })
	case "secret":
		i := slices.IndexFunc(c.SecretScopes, func(s SecretScope) bool { return s.Name == r.Secret.Scope })
		if i >= 0 {
			_, found = c.SecretScopes[i].Secrets[r.Secret.Key]
		}
	}
	if !found {
		target := map[string]string{"app": r.App, "sql_warehouse": r.SQLWarehouse, "table": r.Table, "volume": r.Volume,
			"genie_space": r.GenieSpace}[kind]
		if r.Secret != nil {
			target = r.Secret.Scope + "/" + r.Secret.Key
		}
		return fmt.Errorf("%s %q is not in the model", strings.ReplaceAll(kind, "_", " "), target)
	}
	return nil
}
