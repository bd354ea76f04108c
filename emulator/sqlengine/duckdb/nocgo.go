//go:build !cgo

package duckdb

import (
	"context"

	"github.com/databricks-sample/go-apps-api/emulator/sqlengine"
)

// Open reports that this build has no SQL engine: DuckDB needs cgo. The emulator still runs, and its warehouses
// answer every statement with [sqlengine.ErrNotBuilt].
func Open(context.Context) (sqlengine.Engine, error) { return nil, sqlengine.ErrNotBuilt }
