package workspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/emulator/sqlengine"
)

// dataServices are the data an app reads as its user or as itself, each subsystem with its own state and lock:
// Unity Catalog (catalog.go), the SQL warehouses (warehouses.go) and their statements (statements.go), files in
// volumes (volumes.go), Genie spaces (genie.go) and secrets (secrets.go). The lock order where two are held:
// statements.mu never while calling another subsystem; unityCatalog.mu and warehouses.mu are leaves.
type dataServices struct {
	uc         *unityCatalog
	warehouses *warehouses
	statements *statements
	volumes    *volumes
	genie      *genieSpaces
	secrets    *secretScopes
	engine     sqlengine.Engine // nil when there is none
}

// OpenSQLEngine starts the SQL engine behind the warehouses: emulator/sqlengine/duckdb's Open. A workspace
// started without one answers every statement with 501 and says why.
type OpenSQLEngine func(context.Context) (sqlengine.Engine, error)

// errNoEngine is why a workspace started without Options.SQLEngine runs no statement.
var errNoEngine = errors.New("this emulated workspace was started without a SQL engine: the emulator command " +
	"starts DuckDB (emulator/sqlengine/duckdb); in Go, set workspace.Options.SQLEngine")

// newDataServices builds the data subsystems from the model, and starts the engine and loads the model's tables
// into it as one of tasks. changed tells the workspace's store that a part changed (persist.go).
func newDataServices(ctx context.Context, opts Options, dir *directory, url, dataDir string, tasks *sync.WaitGroup,
	logger *slog.Logger, changed func(part string)) (*dataServices, error) {
	cfg := opts.Config
	d := &dataServices{uc: newUnityCatalog(cfg, dir, func() { changed(partCatalog) })}
	transition := opts.WarehouseTransition
	if transition == 0 {
		transition = DefaultWarehouseTransition
	}
	d.warehouses = newWarehouses(cfg, dir.signedIn.UserName, url, transition, func() { changed(partWarehouses) })
	d.genie = newGenieSpaces(cfg, dir.signedIn.UserName, func() { changed(partGenie) })
	d.secrets = newSecretScopes(cfg, dir, func() { changed(partSecrets) })
	var err error
	if d.volumes, err = newVolumes(cfg, d.uc, dataDir, opts.VolumeQuota); err != nil {
		return nil, err
	}
	d.statements = &statements{uc: d.uc, whs: d.warehouses, ctx: ctx, tasks: tasks, logger: logger, now: time.Now,
		byID: map[string]*statement{}, engineErr: errNoEngine, engineReady: make(chan struct{})}
	if opts.SQLEngine == nil {
		close(d.statements.engineReady)
		return d, nil
	}
	// The engine starts beside the workspace rather than before it: opening DuckDB and loading the model's tables
	// takes tens of milliseconds that nothing but a statement needs, and a statement waits for it (engineReady).
	// The model's data was read when the config was validated; what may still fail here is the engine itself, or a
	// value its column's type refuses: the log says so, and every statement answers with it.
	tasks.Go(func() {
		defer close(d.statements.engineReady)
		start := time.Now()
		engine, err := opts.SQLEngine(ctx)
		if err != nil {
			d.statements.engineErr = err
			logger.Warn("no SQL engine: statements will fail", "err", err)
			return
		}
		if err := LoadTables(ctx, engine, cfg); err != nil {
			_ = engine.Close()
			d.statements.engineErr = fmt.Errorf("load the model's tables into the SQL engine: %w", err)
			logger.Error("no SQL engine: statements will fail", "err", d.statements.engineErr)
			return
		}
		d.engine, d.statements.engine = engine, engine
		logger.Info("SQL engine ready", "tables", countTables(cfg), "duration", time.Since(start).Round(time.Millisecond))
	})
	return d, nil
}

// LoadTables creates every schema and table of a model in an engine, then seals it: what the workspace does with
// the engine Options.SQLEngine starts. Benchmarks use it to time the engine alone on the model's data.
func LoadTables(ctx context.Context, engine sqlengine.Engine, cfg Config) error {
	for _, c := range cfg.Catalogs {
		for _, s := range c.Schemas {
			if err := engine.CreateSchema(ctx, c.Name, s.Name); err != nil {
				return err
			}
			for _, t := range s.Tables {
				rows, err := cfg.tableRows(t)
				if err != nil {
					return fmt.Errorf("table %s.%s.%s: %w", c.Name, s.Name, t.Name, err)
				}
				table := sqlengine.Table{Catalog: c.Name, Schema: s.Name, Name: t.Name, Rows: rows,
					RowFilter: t.RowFilter, Masks: t.ColumnMasks}
				for _, col := range t.Columns {
					table.Columns = append(table.Columns, sqlengine.Column{Name: col.Name, Type: col.Type, Comment: col.Comment})
				}
				if err := engine.CreateTable(ctx, table); err != nil {
					return err
				}
			}
		}
	}
	return engine.Seal(ctx)
}

func countTables(cfg Config) int {
	n := 0
	for _, c := range cfg.Catalogs {
		for _, s := range c.Schemas {
			n += len(s.Tables)
		}
	}
	return n
}

// API scopes of the data APIs, as the documentation page names them for apps' user authorization. all-apis covers
// each; the Unity Catalog and Secrets APIs' writes take all-apis.
const (
	ScopeSQL   = "sql"
	ScopeFiles = "file.files"
	ScopeGenie = "dashboards.genie"
)

// routes wires each subsystem's API behind the scope a token needs for it. requireToken has run.
func (d *dataServices) routes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(requireScope(ScopeSQL))
		d.warehouses.routes(r)
		d.statements.routes(r)
	})
	r.Group(func(r chi.Router) {
		r.Use(requireScope(ScopeFiles))
		d.volumes.routes(r)
	})
	r.Group(func(r chi.Router) {
		r.Use(requireScope(ScopeGenie))
		d.genie.routes(r)
	})
	r.Group(func(r chi.Router) {
		r.With(requireScope("catalog.catalogs:read")).Get(PathUnityCatalog+"/catalogs", d.uc.handleListCatalogs())
		r.With(requireScope("catalog.catalogs:read")).Get(PathUnityCatalog+"/catalogs/{name}", d.uc.handleGet(kindCatalog))
		r.With(requireScope("catalog.schemas:read")).Get(PathUnityCatalog+"/schemas", d.uc.handleList(kindSchema))
		r.With(requireScope("catalog.schemas:read")).Get(PathUnityCatalog+"/schemas/{name}", d.uc.handleGet(kindSchema))
		r.With(requireScope("catalog.tables:read")).Get(PathUnityCatalog+"/tables", d.uc.handleList(kindTable))
		r.With(requireScope("catalog.tables:read")).Get(PathUnityCatalog+"/tables/{name}", d.uc.handleGet(kindTable))
		r.Group(func(r chi.Router) {
			r.Use(requireScope(ScopeAllAPIs))
			r.Get(PathUnityCatalog+"/volumes", d.uc.handleList(kindVolume))
			r.Get(PathUnityCatalog+"/volumes/{name}", d.uc.handleGet(kindVolume))
			r.Get(PathUnityCatalog+"/permissions/{kind}/{name}", d.uc.handleGetGrants())
			r.Patch(PathUnityCatalog+"/permissions/{kind}/{name}", d.uc.handleUpdateGrants())
			r.Get(PathUnityCatalog+"/effective-permissions/{kind}/{name}", d.uc.handleEffectiveGrants())
			d.secrets.routes(r)
		})
	})
}

// close stops the warehouses' timers and, once every statement has ended (the workspace's context is canceled and
// its tasks waited for), the engine.
func (d *dataServices) close() error {
	d.warehouses.close()
	<-d.statements.engineReady
	if d.engine != nil {
		return d.engine.Close()
	}
	return nil
}
