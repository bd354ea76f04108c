// Package sqlengine is the boundary between the emulated SQL warehouse and the SQL engine behind it. The engine is
// real (DuckDB, in the subpackage duckdb, which needs cgo); what the workspace adds around it (the Statement
// Execution API's states and shapes, Unity Catalog's grants, scopes) speaks only this package's types, so that the
// workspace package, and every test that does not run SQL, never links the engine.
package sqlengine

import (
	"context"
	"errors"
)

// Engine runs the statements of the emulated warehouses over the model's tables. An Engine is safe for concurrent
// use; each Query runs on a connection of its own.
type Engine interface {
	// CreateSchema creates an empty schema, and its catalog if new, so that statements may default to it.
	CreateSchema(ctx context.Context, catalog, schema string) error
	// CreateTable stores a table's rows where no statement can name them, and creates the table itself as a view
	// over them that applies its row filter and column masks for whoever queries it.
	CreateTable(ctx context.Context, t Table) error
	// Seal ends the set-up: from then on the engine reads no file and no setting can change.
	Seal(ctx context.Context) error
	// Parse checks one statement's syntax and lists what it reads. A statement that is not a single query (a
	// SELECT, VALUES or a set operation of them) is refused with ErrNotAQuery.
	Parse(ctx context.Context, sql string) (Parsed, error)
	// Query runs one query for a principal and returns its result, cut at the limits. It checks no privilege:
	// the caller has checked what Parse listed.
	Query(ctx context.Context, q Query) (*Result, error)
	Close() error
}

// ErrNotAQuery refuses a statement that would change something or is not SQL the engine can check: the emulated
// warehouse runs queries only.
var ErrNotAQuery = errors.New("only queries (SELECT, VALUES, WITH … SELECT) can run on the emulated warehouse: " +
	"its tables come from the emulator's model and are read-only")

// ErrNotBuilt is what an emulator built without cgo answers every SQL call with.
var ErrNotBuilt = errors.New("this emulator was built without the SQL engine (DuckDB needs cgo): " +
	"build it with CGO_ENABLED=1 and a C compiler to run SQL statements")

// Table is one Unity Catalog table and its data.
type Table struct {
	Catalog, Schema, Name string
	Columns               []Column
	Rows                  [][]*string // each value as text, cast to its column's type; nil is NULL
	// RowFilter is a boolean SQL expression over the table's columns; rows for which it is not true are hidden.
	// It may call current_user() and is_account_group_member('group'), which answer for whoever queries.
	RowFilter string
	// Masks replace a column's value by a SQL expression over the table's columns, with the same functions.
	Masks map[string]string
}

// Column is a table column and its SQL type, such as BIGINT, STRING, DATE or DECIMAL(10,2).
type Column struct {
	Name, Type string
	Comment    string
}

// TableRef names a table a statement reads. Catalog or Schema are empty when the statement left them out.
type TableRef struct{ Catalog, Schema, Name string }

// Parsed is what a statement reads: its tables and any table functions, which the warehouse refuses.
type Parsed struct {
	Tables         []TableRef
	TableFunctions []string
}

// Query is one statement to run: for whom, where unqualified names point, with which parameters and limits.
type Query struct {
	SQL             string
	Params          []Param
	Catalog, Schema string // defaults for unqualified names
	User            string // what current_user() answers
	Groups          []string
	RowLimit        int64 // 0: none
	ByteLimit       int64 // 0: none; the result is cut, and marked truncated, past this many bytes of values
}

// Param is a named parameter marker's value (:name in the statement). A nil Value is NULL; Type is a SQL type,
// STRING when empty.
type Param struct {
	Name  string
	Value *string
	Type  string
}

// Result is a query's answer, each value already in the Statement Execution API's text form.
type Result struct {
	Columns   []ResultColumn
	Rows      [][]*string
	Truncated bool  // cut at RowLimit or ByteLimit
	Bytes     int64 // the values' total length
}

// ResultColumn describes one column of a result as the Statement Execution API's manifest does.
type ResultColumn struct {
	Name      string
	TypeText  string // e.g. DECIMAL(10,2)
	TypeName  string // e.g. DECIMAL
	Scale     int
	Precision int
}

// Error is a failure the engine reports about the statement itself (a syntax error, an unknown column), as opposed
// to an engine that does not work. Its message is the engine's own.
type Error struct{ Message string }

func (e *Error) Error() string { return e.Message }
