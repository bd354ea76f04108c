package main

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"net/http"
	"path/filepath"
	"time"

	"github.com/databricks-sample/go-apps-api/emulator/sqlengine"
	"github.com/databricks-sample/go-apps-api/emulator/sqlengine/duckdb"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// dataPathUser is who asks for the orders: a sales lead, who sees every order of the region.
const dataPathUser = "dev@example.com"

// dataPathScopes are the scopes the user's token holds: the documentation page's custom scopes, which api-app asks
// for (docs/data.md).
const dataPathScopes = "sql file.files dashboards.genie"

// dataPath times GET /api/orders through ws's proxy, the app and the warehouse, one call at a time, against the
// engine alone doing the same work, in an engine of its own loaded with the same model: the endpoint's query as the
// user and, at the same time, as the app's service principal (the endpoint shows both, side by side). The two
// alternate within each round; it returns each round's medians, in nanoseconds.
func dataPath(ctx context.Context, ws *workspace.Workspace, root string, rounds, calls int) (through, engine []float64, err error) {
	query, err := stringConst(filepath.Join(root, "app", "data.go"), "ordersQuery")
	if err != nil {
		return nil, nil, err
	}
	eng, err := duckdb.Open(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer eng.Close()
	cfg := workspace.DefaultConfig()
	if err := workspace.LoadTables(ctx, eng, cfg); err != nil {
		return nil, nil, err
	}
	token, err := userLogin(ctx, ws.URL(), dataPathUser, dataPathScopes)
	if err != nil {
		return nil, nil, err
	}
	// What the app sends (app/data.go): the region and the default limit, typed as it types them.
	region, limit := "EMEA", "10"
	q := sqlengine.Query{SQL: query, Catalog: cfg.Catalogs[0].Name, Schema: "default", User: dataPathUser,
		Groups: cfg.GroupsOf(dataPathUser),
		Params: []sqlengine.Param{{Name: "region", Value: &region}, {Name: "limit", Value: &limit, Type: "INT"}}}
	sp, _ := cfg.ServicePrincipal("api-app")
	asApp := q
	asApp.User, asApp.Groups = sp.ApplicationID, cfg.GroupsOf(sp.Name)
	url := ws.AppURL("api-app") + "/api/orders?region=" + region
	header := http.Header{"Authorization": {"Bearer " + token}}

	viaApp := func() (time.Duration, error) {
		start := time.Now()
		body, err := get(ctx, url, header)
		if err != nil {
			return 0, err
		}
		return time.Since(start), checkOrders(body)
	}
	alone := func() (time.Duration, error) {
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := eng.Query(ctx, asApp)
			done <- err
		}()
		res, err := eng.Query(ctx, q)
		if appErr := <-done; err == nil {
			err = appErr
		}
		if err != nil {
			return 0, err
		}
		if len(res.Rows) == 0 {
			return 0, fmt.Errorf("the engine found no order in %s for %s", region, dataPathUser)
		}
		return time.Since(start), nil
	}
	for range calls / 4 { // warm: connections, the app's clients and tokens, the engine's caches
		if _, err := viaApp(); err != nil {
			return nil, nil, fmt.Errorf("GET /api/orders: %w", err)
		}
		if _, err := alone(); err != nil {
			return nil, nil, err
		}
	}
	for range rounds {
		var a, b []float64
		for i := range 2 * calls {
			f, times := viaApp, &a
			if i%2 == 1 {
				f, times = alone, &b
			}
			d, err := f()
			if err != nil {
				return nil, nil, err
			}
			*times = append(*times, float64(d))
		}
		through, engine = append(through, spreadOf(a).median), append(engine, spreadOf(b).median)
	}
	return through, engine, nil
}

// checkOrders fails unless the app's answer shows the user's side: the path under test queried as the user.
func checkOrders(body []byte) error {
	if !bytes.Contains(body, []byte(`"on_behalf_of_user":{"principal":"`+dataPathUser+`"`)) {
		return fmt.Errorf("GET /api/orders: no rows read on behalf of %s: %.300s", dataPathUser, body)
	}
	return nil
}

// stringConst is the value of a package-level string constant of a Go file: the app's own query, read from its
// source rather than copied here.
func stringConst(file, name string) (string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		return "", err
	}
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if n.Name != name || i >= len(vs.Values) {
					continue
				}
				tv, err := types.Eval(fset, nil, vs.Values[i].Pos(), types.ExprString(vs.Values[i]))
				if err != nil || tv.Value == nil || tv.Value.Kind() != constant.String {
					return "", fmt.Errorf("%s: %s is not a string constant", file, name)
				}
				return constant.StringVal(tv.Value), nil
			}
		}
	}
	return "", fmt.Errorf("%s: no constant %s", file, name)
}
