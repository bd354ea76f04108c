//go:build cgo

// Package duckdb is the emulated warehouse's SQL engine: an in-memory DuckDB database (github.com/duckdb/duckdb-go,
// which needs cgo). Each Unity Catalog catalog is an attached database of its own, so that catalog.schema.table
// names resolve natively; a table's rows live in a hidden database, and the table a statement names is a view over
// them whose WHERE clause is the row filter and whose columns are the masks. current_user() and
// is_account_group_member() read session variables that each query sets for its principal, so the engine itself
// applies the filters and masks per principal.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/databricks-sample/go-apps-api/emulator/sqlengine"
)

// storage is the attached database holding the tables' rows: statements never name it (the workspace refuses
// any table outside Unity Catalog's), only the views do.
const storage = "__uc_storage"

// The session variables the identity functions read.
const (
	userVariable   = "__uc_user"
	groupsVariable = "__uc_groups"
)

// maxConnections bounds the statements the engine runs at once; more wait for a connection.
const maxConnections = 8

type engine struct {
	db *sql.DB

	mu       sync.Mutex
	catalogs map[string]bool // attached
	schemas  map[string]bool // catalog.schema created
	sealed   bool
}

// identityMacros defines, once on each new connection, the functions statements call as Databricks SQL does, over
// the session variables each query sets for its principal. Defined per query, they were a third of its time.
func identityMacros(conn driver.ExecerContext) error {
	for _, m := range []string{
		"CREATE OR REPLACE TEMP MACRO current_user() AS getvariable('" + userVariable + "')",
		"CREATE OR REPLACE TEMP MACRO is_account_group_member(g) AS list_contains(getvariable('" + groupsVariable + "'), g)",
		"CREATE OR REPLACE TEMP MACRO is_member(g) AS list_contains(getvariable('" + groupsVariable + "'), g)",
	} {
		if _, err := conn.ExecContext(context.Background(), m, nil); err != nil {
			return fmt.Errorf("define the identity functions: %w", err)
		}
	}
	return nil
}

// Open starts an empty in-memory database.
func Open(ctx context.Context) (sqlengine.Engine, error) {
	connector, err := duckdbdriver.NewConnector("", identityMacros)
	if err != nil {
		return nil, fmt.Errorf("start DuckDB: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(maxConnections)
	e := &engine{db: db, catalogs: map[string]bool{}, schemas: map[string]bool{}}
	if _, err := db.ExecContext(ctx, "ATTACH ':memory:' AS "+quote(storage)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("set up DuckDB: %w", err)
	}
	return e, nil
}

func (e *engine) Close() error { return e.db.Close() }

// CreateTable stores the rows in the hidden database and creates the view statements read.
func (e *engine) CreateTable(ctx context.Context, t sqlengine.Table) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sealed {
		return errors.New("the engine is sealed: tables are created before it serves")
	}
	if err := e.ensureSchemaLocked(ctx, t.Catalog, t.Schema); err != nil {
		return err
	}
	name := t.Catalog + "." + t.Schema + "." + t.Name
	stored := quote(storage) + "." + quote(t.Catalog+"."+t.Schema) + "." + quote(t.Name)
	var defs, casts, cols []string
	for i, c := range t.Columns {
		typ, err := sqlengine.EngineType(c.Type)
		if err != nil {
			return fmt.Errorf("table %s, column %s: %w", name, c.Name, err)
		}
		defs = append(defs, quote(c.Name)+" "+typ)
		casts = append(casts, fmt.Sprintf("CAST(col%d AS %s)", i+1, typ))
		col := quote(c.Name)
		if mask, ok := t.Masks[c.Name]; ok {
			col = "(" + identityFunctions(mask) + ") AS " + quote(c.Name)
		}
		cols = append(cols, col)
	}
	for i, row := range t.Rows {
		if len(row) != len(t.Columns) {
			return fmt.Errorf("table %s, row %d: %d values for %d columns", name, i+1, len(row), len(t.Columns))
		}
	}
	if _, err := e.db.ExecContext(ctx, "CREATE TABLE "+stored+" ("+strings.Join(defs, ", ")+")"); err != nil {
		return fmt.Errorf("table %s: %w", name, err)
	}
	ok := false
	defer func() {
		if !ok {
			_, _ = e.db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+stored)
		}
	}()
	if err := e.insert(ctx, stored, casts, t.Rows); err != nil {
		return fmt.Errorf("table %s: %w", name, err)
	}
	view := "CREATE VIEW " + quote(t.Catalog) + "." + quote(t.Schema) + "." + quote(t.Name) + " AS SELECT " +
		strings.Join(cols, ", ") + " FROM " + stored
	if t.RowFilter != "" {
		view += " WHERE (" + identityFunctions(t.RowFilter) + ")"
	}
	if _, err := e.db.ExecContext(ctx, view); err != nil {
		return fmt.Errorf("table %s: its row filter or a column mask: %w", name, err)
	}
	ok = true
	return nil
}

// insert stores rows of text in the table stored, each value cast to its column's type by casts. DuckDB's query
// appender hands every row over at once and casts them in one INSERT … SELECT: an INSERT per row spends most of
// its time parsing and planning, which made loading the model most of the emulator's start.
func (e *engine) insert(ctx context.Context, stored string, casts []string, rows [][]*string) error {
	if len(rows) == 0 {
		return nil
	}
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		text, err := duckdbdriver.NewTypeInfo(duckdbdriver.TYPE_VARCHAR)
		if err != nil {
			return err
		}
		types := make([]duckdbdriver.TypeInfo, len(casts))
		for i := range types {
			types[i] = text
		}
		a, err := duckdbdriver.NewQueryAppender(dc.(driver.Conn),
			"INSERT INTO "+stored+" SELECT "+strings.Join(casts, ", ")+" FROM appended_data", "", types, nil)
		if err != nil {
			return err
		}
		values := make([]driver.Value, len(casts))
		for _, row := range rows {
			for i, v := range row {
				values[i] = nil
				if v != nil {
					values[i] = *v
				}
			}
			if err := a.AppendRow(values...); err != nil {
				_ = a.Close()
				return err
			}
		}
		return a.Close() // runs the INSERT
	})
}

// CreateSchema creates an empty schema.
func (e *engine) CreateSchema(ctx context.Context, catalog, schema string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ensureSchemaLocked(ctx, catalog, schema)
}

// hasSchema reports whether a catalog.schema was created.
func (e *engine) hasSchema(catalog, schema string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.schemas[catalog+"."+schema]
}

func (e *engine) ensureSchemaLocked(ctx context.Context, catalog, schema string) error {
	if !e.catalogs[catalog] {
		if _, err := e.db.ExecContext(ctx, "ATTACH ':memory:' AS "+quote(catalog)); err != nil {
			return fmt.Errorf("catalog %s: %w", catalog, err)
		}
		e.catalogs[catalog] = true
	}
	key := catalog + "." + schema
	if !e.schemas[key] {
		for _, s := range []string{
			"CREATE SCHEMA IF NOT EXISTS " + quote(catalog) + "." + quote(schema),
			"CREATE SCHEMA " + quote(storage) + "." + quote(key),
		} {
			if _, err := e.db.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("schema %s: %w", key, err)
			}
		}
		e.schemas[key] = true
	}
	return nil
}

// The identity functions as Databricks SQL spells them in filters and masks.
var (
	currentUser = regexp.MustCompile(`(?i)\bcurrent_user\s*\(\s*\)`)
	groupMember = regexp.MustCompile(`(?i)\b(?:is_account_group_member|is_member)\s*\(`)
)

// identityFunctions makes a filter or mask read the querying principal from the session variables. A view is
// bound where it is queried, so it cannot rely on the querying connection's own macros (which a statement's
// current_user() calls).
func identityFunctions(expr string) string {
	expr = currentUser.ReplaceAllLiteralString(expr, "getvariable('"+userVariable+"')")
	return groupMember.ReplaceAllLiteralString(expr, "list_contains(getvariable('"+groupsVariable+"'), ")
}

// Seal turns off every file and network access of the engine and locks its settings, so no statement can read
// the emulator's files or change that.
func (e *engine) Seal(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range []string{
		"SET enable_external_access = false",
		"SET allow_community_extensions = false",
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET lock_configuration = true",
	} {
		if _, err := e.db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("seal DuckDB: %s: %w", s, err)
		}
	}
	e.sealed = true
	return nil
}

// Parse asks DuckDB's own parser for the statement's syntax tree and walks it for what the statement reads.
func (e *engine) Parse(ctx context.Context, query string) (sqlengine.Parsed, error) {
	translated, _, err := sqlengine.Translate(query, func(name string) string { return "$" + name })
	if err != nil {
		return sqlengine.Parsed{}, err
	}
	var tree string
	if err := e.db.QueryRowContext(ctx, "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", translated).Scan(&tree); err != nil {
		return sqlengine.Parsed{}, fmt.Errorf("parse: %w", err)
	}
	var doc struct {
		Error        bool            `json:"error"`
		ErrorType    string          `json:"error_type"`
		ErrorMessage string          `json:"error_message"`
		Statements   json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(tree), &doc); err != nil {
		return sqlengine.Parsed{}, fmt.Errorf("parse: %w", err)
	}
	if doc.Error {
		if doc.ErrorType == "parser" {
			return sqlengine.Parsed{}, &sqlengine.Error{Message: "[PARSE_SYNTAX_ERROR] " + doc.ErrorMessage}
		}
		return sqlengine.Parsed{}, sqlengine.ErrNotAQuery
	}
	var statements []any
	if err := json.Unmarshal(doc.Statements, &statements); err != nil {
		return sqlengine.Parsed{}, fmt.Errorf("parse: %w", err)
	}
	switch len(statements) {
	case 0:
		return sqlengine.Parsed{}, &sqlengine.Error{Message: "[PARSE_EMPTY_STATEMENT] the statement is empty"}
	case 1:
	default:
		return sqlengine.Parsed{}, &sqlengine.Error{Message: "[MULTIPLE_STATEMENTS] send one statement per request: " +
			"the Statement Execution API runs exactly one"}
	}
	var p sqlengine.Parsed
	ctes := map[string]bool{}
	var refs []sqlengine.TableRef
	walk(statements[0], func(m map[string]any) {
		switch m["type"] {
		case "BASE_TABLE":
			refs = append(refs, sqlengine.TableRef{Catalog: str(m["catalog_name"]), Schema: str(m["schema_name"]),
				Name: str(m["table_name"])})
		case "TABLE_FUNCTION":
			if f, ok := m["function"].(map[string]any); ok {
				p.TableFunctions = append(p.TableFunctions, str(f["function_name"]))
			}
		}
		if cm, ok := m["cte_map"].(map[string]any); ok {
			entries, _ := cm["map"].([]any)
			for _, entry := range entries {
				if kv, ok := entry.(map[string]any); ok {
					ctes[strings.ToLower(str(kv["key"]))] = true
				}
			}
		}
	})
	for _, r := range refs {
		if r.Catalog == "" && r.Schema == "" && ctes[strings.ToLower(r.Name)] {
			continue // a common table expression of the statement, not a table
		}
		p.Tables = append(p.Tables, r)
	}
	return p, nil
}

// walk calls visit for every object in a decoded JSON tree.
func walk(v any, visit func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		visit(v)
		for _, child := range v {
			walk(child, visit)
		}
	case []any:
		for _, child := range v {
			walk(child, visit)
		}
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// Query runs the statement on a connection of its own, as the principal, with its parameters.
func (e *engine) Query(ctx context.Context, q sqlengine.Query) (*sqlengine.Result, error) {
	byName := map[string]sqlengine.Param{}
	for _, p := range q.Params {
		byName[p.Name] = p
	}
	var typeErr error
	translated, names, err := sqlengine.Translate(q.SQL, func(name string) string {
		// A typed parameter is cast by the statement itself, so a value its type refuses fails the statement,
		// as Databricks checks a typed parameter with cast().
		p, ok := byName[name]
		if !ok || p.Type == "" {
			return "$" + name
		}
		typ, err := sqlengine.EngineType(p.Type)
		if err != nil {
			typeErr = &sqlengine.Error{Message: fmt.Sprintf("parameter %s: %v", name, err)}
			return "$" + name
		}
		return "CAST($" + name + " AS " + typ + ")"
	})
	if err == nil {
		err = typeErr
	}
	if err != nil {
		return nil, err
	}
	args, err := bindParams(names, byName)
	if err != nil {
		return nil, err
	}
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("a connection to DuckDB: %w", err)
	}
	defer conn.Close()
	groups := q.Groups
	if groups == nil {
		groups = []string{}
	}
	session := []struct {
		sql  string
		args []any
	}{
		// The identity macros (identityMacros) read these: this connection answers for the principal.
		{"SET VARIABLE " + userVariable + " = ?::VARCHAR", []any{q.User}},
		{"SET VARIABLE " + groupsVariable + " = ?::VARCHAR[]", []any{groups}},
		// Unqualified names resolve in the statement's catalog and schema, or, where no such schema exists, nowhere.
		{"USE " + quote(q.Catalog) + "." + quote(q.Schema), nil},
	}
	if !e.hasSchema(q.Catalog, q.Schema) {
		session[len(session)-1].sql = "USE memory.main"
	}
	for _, s := range session {
		if _, err := conn.ExecContext(ctx, s.sql, s.args...); err != nil {
			return nil, fmt.Errorf("set up the session: %w", err)
		}
	}
	rows, err := conn.QueryContext(ctx, translated, args...)
	if err != nil {
		return nil, engineError(ctx, err)
	}
	defer rows.Close()
	res, err := readResult(rows, q.RowLimit, q.ByteLimit)
	if err != nil {
		return nil, engineError(ctx, err)
	}
	return res, nil
}

// engineError tells a statement's own error (reported to its caller as the engine's message) from a cancellation.
func engineError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var de *duckdbdriver.Error
	if errors.As(err, &de) {
		return &sqlengine.Error{Message: de.Msg}
	}
	return &sqlengine.Error{Message: err.Error()}
}

// bindParams gives each marker of the statement its value, as text: a typed marker is cast by the statement.
func bindParams(names []string, byName map[string]sqlengine.Param) ([]any, error) {
	var args []any
	for _, name := range names {
		p, ok := byName[name]
		if !ok {
			return nil, &sqlengine.Error{Message: fmt.Sprintf("[UNBOUND_SQL_PARAMETER] Found the unbound parameter: %s. "+
				"Please, fix `args` and provide a mapping of the parameter to a SQL literal.", name)}
		}
		var v any
		if p.Value != nil {
			v = *p.Value
		}
		args = append(args, sql.Named(name, v))
	}
	return args, nil
}

func quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }
