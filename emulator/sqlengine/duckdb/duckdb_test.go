//go:build cgo

package duckdb

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/sqlengine"
)

func ptr(s string) *string { return &s }

// ordersEngine is an engine with one table whose row filter and mask depend on who queries it.
func ordersEngine(t *testing.T) sqlengine.Engine {
	t.Helper()
	ctx := t.Context()
	e, err := Open(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	require.NoError(t, e.CreateTable(ctx, sqlengine.Table{
		Catalog: "samples", Schema: "sales", Name: "orders",
		Columns: []sqlengine.Column{{Name: "id", Type: "BIGINT"}, {Name: "rep", Type: "STRING"},
			{Name: "email", Type: "STRING"}, {Name: "amount", Type: "DECIMAL(10,2)"}, {Name: "day", Type: "DATE"}},
		Rows: [][]*string{
			{ptr("1"), ptr("ana@example.com"), ptr("one@customer.test"), ptr("10.5"), ptr("2026-01-02")},
			{ptr("2"), ptr("lee@example.com"), ptr("two@customer.test"), ptr("20"), ptr("2026-02-03")},
			{ptr("3"), ptr("ana@example.com"), nil, ptr("-0.05"), nil},
		},
		RowFilter: "is_account_group_member('leads') OR rep = current_user()",
		Masks:     map[string]string{"email": "CASE WHEN is_account_group_member('leads') THEN email ELSE '***' END"},
	}))
	require.NoError(t, e.Seal(ctx))
	return e
}

func query(t *testing.T, e sqlengine.Engine, q sqlengine.Query) *sqlengine.Result {
	t.Helper()
	if q.Catalog == "" {
		q.Catalog, q.Schema = "samples", "sales"
	}
	res, err := e.Query(t.Context(), q)
	require.NoError(t, err)
	return res
}

func column(res *sqlengine.Result, i int) []string {
	var out []string
	for _, row := range res.Rows {
		if row[i] == nil {
			out = append(out, "NULL")
		} else {
			out = append(out, *row[i])
		}
	}
	return out
}

func TestRowFilterAndMaskPerPrincipal(t *testing.T) {
	t.Parallel()
	e := ordersEngine(t)
	sql := "SELECT id, email FROM samples.sales.orders ORDER BY id"

	ana := query(t, e, sqlengine.Query{SQL: sql, User: "ana@example.com", Groups: []string{"users"}})
	assert.Equal(t, []string{"1", "3"}, column(ana, 0), "ana sees her own rows only")
	assert.Equal(t, []string{"***", "***"}, column(ana, 1), "and no customer's email")

	lead := query(t, e, sqlengine.Query{SQL: sql, User: "dev@example.com", Groups: []string{"users", "leads"}})
	assert.Equal(t, []string{"1", "2", "3"}, column(lead, 0), "a lead sees every row")
	assert.Equal(t, []string{"one@customer.test", "two@customer.test", "NULL"}, column(lead, 1), "through the mask")

	nobody := query(t, e, sqlengine.Query{SQL: sql, User: "7b0d3c52-0000", Groups: nil})
	assert.Empty(t, nobody.Rows)
}

func TestCurrentUserAnswersForThePrincipal(t *testing.T) {
	t.Parallel()
	e := ordersEngine(t)
	res := query(t, e, sqlengine.Query{SQL: "SELECT current_user() AS me, is_account_group_member('leads') AS lead",
		User: "ana@example.com", Groups: []string{"users"}})
	require.Len(t, res.Rows, 1)
	assert.Equal(t, "ana@example.com", *res.Rows[0][0])
	assert.Equal(t, "false", *res.Rows[0][1])
	assert.Equal(t, "BOOLEAN", res.Columns[1].TypeName)
}

func TestValuesInTheStatementExecutionAPIsTextForm(t *testing.T) {
	t.Parallel()
	e := ordersEngine(t)
	res := query(t, e, sqlengine.Query{SQL: "SELECT id, amount, day FROM orders ORDER BY id", User: "x",
		Groups: []string{"leads"}})
	assert.Equal(t, []string{"10.50", "20.00", "-0.05"}, column(res, 1), "decimals keep their scale")
	assert.Equal(t, []string{"2026-01-02", "2026-02-03", "NULL"}, column(res, 2))
	assert.Equal(t, sqlengine.ResultColumn{Name: "id", TypeText: "BIGINT", TypeName: "LONG"}, res.Columns[0])
	assert.Equal(t, sqlengine.ResultColumn{Name: "amount", TypeText: "DECIMAL(10,2)", TypeName: "DECIMAL",
		Precision: 10, Scale: 2}, res.Columns[1])

	res = query(t, e, sqlengine.Query{SQL: "SELECT 'a' AS s, 1.5::DOUBLE AS d, TIMESTAMPTZ '2026-01-02 03:04:05Z' AS ts, " +
		"[1, 2] AS l, true AS b, NULL AS n", User: "x"})
	require.Len(t, res.Rows, 1)
	assert.Equal(t, "a", *res.Rows[0][0])
	assert.Equal(t, "1.5", *res.Rows[0][1])
	assert.Equal(t, "2026-01-02T03:04:05.000Z", *res.Rows[0][2])
	assert.Equal(t, "[1,2]", *res.Rows[0][3])
	assert.Equal(t, "ARRAY<INT>", res.Columns[3].TypeText)
	assert.Equal(t, "true", *res.Rows[0][4])
	assert.Nil(t, res.Rows[0][5])
}

func TestNamedParameters(t *testing.T) {
	t.Parallel()
	e := ordersEngine(t)
	lead := []string{"leads"}
	res := query(t, e, sqlengine.Query{SQL: "SELECT id FROM orders WHERE rep = :rep AND amount > :min ORDER BY id",
		User: "x", Groups: lead, Params: []sqlengine.Param{{Name: "rep", Value: ptr("ana@example.com")},
			{Name: "min", Value: ptr("1"), Type: "DECIMAL(10,2)"}}})
	assert.Equal(t, []string{"1"}, column(res, 0))

	res = query(t, e, sqlengine.Query{SQL: "SELECT :x::INT + 1 AS y, :x AS again", User: "x",
		Params: []sqlengine.Param{{Name: "x", Value: ptr("41")}}})
	assert.Equal(t, "42", *res.Rows[0][0], "a cast after a marker is not a marker")

	_, err := e.Query(t.Context(), sqlengine.Query{SQL: "SELECT :missing", User: "x", Catalog: "samples", Schema: "sales"})
	var se *sqlengine.Error
	require.ErrorAs(t, err, &se)
	assert.Contains(t, se.Message, "UNBOUND_SQL_PARAMETER")

	_, err = e.Query(t.Context(), sqlengine.Query{SQL: "SELECT :d", User: "x", Catalog: "samples", Schema: "sales",
		Params: []sqlengine.Param{{Name: "d", Value: ptr("not a date"), Type: "DATE"}}})
	require.ErrorAs(t, err, &se, "a value its type refuses fails the statement")

	_, err = e.Query(t.Context(), sqlengine.Query{SQL: "SELECT :d", User: "x", Catalog: "samples", Schema: "sales",
		Params: []sqlengine.Param{{Name: "d", Value: ptr("1"), Type: "INT); DROP TABLE x; --"}}})
	require.ErrorAs(t, err, &se, "a type is a type name, never SQL")
	assert.Contains(t, se.Message, "unsupported type")
}

func TestLimits(t *testing.T) {
	t.Parallel()
	e := ordersEngine(t)
	res := query(t, e, sqlengine.Query{SQL: "SELECT * FROM range(10)", User: "x", RowLimit: 3})
	assert.Len(t, res.Rows, 3)
	assert.True(t, res.Truncated)

	res = query(t, e, sqlengine.Query{SQL: "SELECT repeat('x', 100) FROM range(10)", User: "x", ByteLimit: 250})
	assert.Len(t, res.Rows, 2)
	assert.True(t, res.Truncated)
	assert.EqualValues(t, 200, res.Bytes)

	res = query(t, e, sqlengine.Query{SQL: "SELECT * FROM range(3)", User: "x", RowLimit: 3})
	assert.False(t, res.Truncated, "exactly the limit is not cut")
}

func TestParseListsWhatAStatementReads(t *testing.T) {
	t.Parallel()
	e := ordersEngine(t)
	p, err := e.Parse(t.Context(), "WITH recent AS (SELECT * FROM samples.sales.orders) "+
		"SELECT * FROM recent JOIN `other`.s.t ON true WHERE id IN (SELECT id FROM orders) AND rep = :rep "+
		"UNION ALL SELECT * FROM range(3)")
	require.NoError(t, err)
	assert.ElementsMatch(t, []sqlengine.TableRef{{Catalog: "samples", Schema: "sales", Name: "orders"},
		{Catalog: "other", Schema: "s", Name: "t"}, {Name: "orders"}}, p.Tables, "the CTE is not a table")
	assert.Equal(t, []string{"range"}, p.TableFunctions)

	p, err = e.Parse(t.Context(), "SELECT * FROM '/etc/passwd'")
	require.NoError(t, err)
	assert.Equal(t, []sqlengine.TableRef{{Name: "/etc/passwd"}}, p.Tables, "a file is a table name the catalog refuses")

	for _, refused := range []string{"INSERT INTO orders VALUES (1)", "DROP TABLE orders", "SET VARIABLE __uc_user = 'x'",
		"ATTACH '/tmp/x.db'", "CREATE TEMP MACRO current_user() AS 'dev@example.com'"} {
		_, err = e.Parse(t.Context(), refused)
		assert.ErrorIs(t, err, sqlengine.ErrNotAQuery, refused)
	}
	_, err = e.Parse(t.Context(), "SELECT 1; SELECT 2")
	var se *sqlengine.Error
	require.ErrorAs(t, err, &se)
	assert.Contains(t, se.Message, "MULTIPLE_STATEMENTS")
	_, err = e.Parse(t.Context(), "SELEC 1")
	require.ErrorAs(t, err, &se)
	assert.Contains(t, se.Message, "PARSE_SYNTAX_ERROR")
	_, err = e.Parse(t.Context(), "SELECT * FROM t WHERE a = ?")
	require.ErrorAs(t, err, &se)
	assert.Contains(t, se.Message, "positional parameter")
}

// After Seal, nothing a statement calls reaches the emulator's files or environment.
func TestSealedEngineReadsNoFileAndNoEnvironment(t *testing.T) {
	e := ordersEngine(t)
	t.Setenv("EMULATOR_SECRET_PROBE", "do-not-leak")
	for _, sql := range []string{
		"SELECT * FROM read_text('/etc/hostname')",
		"SELECT * FROM read_csv('/etc/passwd')",
		"SELECT getenv('EMULATOR_SECRET_PROBE')",
	} {
		res, err := e.Query(t.Context(), sqlengine.Query{SQL: sql, User: "x", Catalog: "samples", Schema: "sales"})
		if err == nil {
			for _, row := range res.Rows {
				for _, v := range row {
					require.NotNil(t, v, sql)
					assert.NotContains(t, *v, "do-not-leak", sql)
				}
			}
			continue
		}
		var se *sqlengine.Error
		assert.ErrorAs(t, err, &se, sql)
	}
	_, err := e.Query(t.Context(), sqlengine.Query{SQL: "SELECT 1", User: "x", Catalog: "samples", Schema: "sales"})
	require.NoError(t, err)
}

func TestCanceledQuery(t *testing.T) {
	t.Parallel()
	e := ordersEngine(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := e.Query(ctx, sqlengine.Query{SQL: "SELECT count(*) FROM range(1000000000000)", User: "x",
		Catalog: "samples", Schema: "sales"})
	assert.ErrorIs(t, err, context.Canceled)
}

// A value its column's type refuses fails the table, which is then not there, nor half there: the model can be
// fixed and the table created again.
func TestCreateTableRefusesAValueOfTheWrongType(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e, err := Open(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	table := sqlengine.Table{Catalog: "samples", Schema: "sales", Name: "orders",
		Columns: []sqlengine.Column{{Name: "id", Type: "BIGINT"}, {Name: "day", Type: "DATE"}},
		Rows:    [][]*string{{ptr("1"), ptr("2026-01-02")}, {ptr("two"), ptr("2026-01-03")}}}
	err = e.CreateTable(ctx, table)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "table samples.sales.orders")
	assert.Contains(t, err.Error(), "two")

	table.Rows[1][0] = ptr("2")
	require.NoError(t, e.CreateTable(ctx, table))
	require.NoError(t, e.Seal(ctx))
	assert.Equal(t, []string{"1", "2"}, column(query(t, e, sqlengine.Query{SQL: "SELECT id FROM orders ORDER BY id"}), 0))
}
