package workspace

import (
	"context"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/sql"
	"github.com/stretchr/testify/assert"

	"github.com/databricks-sample/go-apps-api/emulator/sqlengine"
)

// Finished statements are kept for the retention, their results within a memory bound, and at most
// maxKeptStatements of them: a flood of statements does not grow the workspace without end.
func TestStatementsAreForgottenInTime(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	st := &statements{byID: map[string]*statement{}, now: func() time.Time { return now }}
	run := func(id string, bytes int64) *statement {
		_, cancel := context.WithCancel(context.Background())
		s := &statement{id: id, done: make(chan struct{}), cancel: cancel, state: sql.StatementStateRunning}
		st.byID[id] = s
		st.active++
		var res *sqlengine.Result
		if bytes >= 0 {
			res = &sqlengine.Result{Bytes: bytes}
		}
		st.finish(s, res, nil, false)
		return s
	}
	small := run("small", 10)
	big := run("big", maxKeptResultBytes)
	assert.Equal(t, sql.StatementStateClosed, small.state, "the oldest result goes when results hold too much")
	assert.Equal(t, sql.StatementStateSucceeded, big.state)
	assert.Contains(t, st.byID, "small", "its statement is still known")

	now = now.Add(statementRetention + time.Second)
	run("later", 1)
	assert.Equal(t, sql.StatementStateClosed, big.state, "a result past the retention is dropped")
	assert.NotContains(t, st.byID, "small", "a statement past the retention is forgotten")
	assert.NotContains(t, st.byID, "big")

	for i := range maxKeptStatements + 5 {
		run(string(rune('a'+i%26))+time.Duration(i).String(), 1)
	}
	assert.Len(t, st.byID, maxKeptStatements)
	assert.LessOrEqual(t, st.kept, int64(maxKeptStatements))
	assert.Zero(t, st.active)
}

// parseCounter is an engine whose parser counts its calls and refuses "bad".
type parseCounter struct {
	sqlengine.Engine
	calls int
}

func (p *parseCounter) Parse(_ context.Context, statement string) (sqlengine.Parsed, error) {
	p.calls++
	if statement == "bad" {
		return sqlengine.Parsed{}, &sqlengine.Error{Message: "syntax error"}
	}
	return sqlengine.Parsed{Tables: []sqlengine.TableRef{{Name: statement}}}, nil
}

// A statement's text is parsed once, however often it runs; one that does not parse is asked again; the memory
// is bounded.
func TestStatementsParseEachTextOnce(t *testing.T) {
	t.Parallel()
	engine := &parseCounter{}
	st := &statements{engine: engine}
	for range 3 {
		p, err := st.parse(t.Context(), "orders")
		assert.NoError(t, err)
		assert.Equal(t, "orders", p.Tables[0].Name)
	}
	assert.Equal(t, 1, engine.calls)
	for range 2 {
		_, err := st.parse(t.Context(), "bad")
		assert.Error(t, err)
	}
	assert.Equal(t, 3, engine.calls)
	for i := range maxParses + 1 {
		_, _ = st.parse(t.Context(), time.Duration(i).String())
	}
	assert.LessOrEqual(t, len(st.parses), maxParses)
}
