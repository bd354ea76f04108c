package workspace

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/service/sql"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/emulator/sqlengine"
)

// PathStatements is the Statement Execution API.
const PathStatements = "/api/2.0/sql/statements"

// Limits of the Statement Execution API, as documented, and of what the emulator keeps.
const (
	defaultWaitTimeout = 10 * time.Second
	// maxInlineBytes: an INLINE result larger than 25 MiB fails the statement, as on the platform.
	maxInlineBytes = 25 << 20
	// chunkBytes is how much of a result one chunk holds; a larger result is fetched chunk by chunk.
	chunkBytes = 4 << 20
	// maxActiveStatements bounds the statements pending or running at once; more are refused with 429.
	maxActiveStatements = 256
	// maxKeptResultBytes bounds the results kept for GET; the oldest are dropped (their statements then read
	// CLOSED, as an expired result does) once finished results hold more.
	maxKeptResultBytes = 256 << 20
	// statementRetention is how long a finished statement's result can be fetched.
	statementRetention = time.Hour
	// maxKeptStatements bounds the finished statements remembered; the oldest are forgotten (404) beyond it.
	maxKeptStatements = 10_000
)

// statements runs statements on the warehouses, as their callers, through the SQL engine, and keeps their results
// for polling. It checks what the engine cannot know: the caller's scopes (the routes do), CAN_USE on the warehouse,
// and Unity Catalog's privileges on every table a statement reads; the engine applies row filters and masks.
type statements struct {
	engine    sqlengine.Engine // nil when engineErr says why; both set before engineReady is closed
	engineErr error
	// engineReady is closed once the engine has started and holds the model's tables, or failed to.
	engineReady chan struct{}
	uc          *unityCatalog
	whs         *warehouses
	ctx         context.Context // ends when the workspace closes: running statements are canceled
	tasks       *sync.WaitGroup
	logger      *slog.Logger
	now         func() time.Time

	mu         sync.Mutex // guards the map, the accounting and every statement's mutable fields
	byID       map[string]*statement
	withResult []*statement // finished and holding a result, oldest first
	ended      []*statement // every finished statement still remembered, oldest first
	kept       int64        // bytes of results held
	active     int

	parseMu sync.Mutex
	parses  map[string]sqlengine.Parsed // what each statement text reads (parse), at most maxParses
}

// maxParses bounds the statement texts whose parse is remembered; past it the memory starts over.
const maxParses = 1000

type statement struct {
	id, owner string
	done      chan struct{}
	cancel    context.CancelFunc

	// guarded by statements.mu
	state    sql.StatementState
	err      *sql.ServiceError
	result   *sqlengine.Result
	chunks   []sql.BaseChunkInfo
	finished time.Time
}

// routes is the Statement Execution API. Every route needs the sql scope (routes.go).
func (st *statements) routes(r chi.Router) {
	r.Post(PathStatements, st.handleExecute())
	r.Get(PathStatements+"/{id}", st.handleGet())
	r.Post(PathStatements+"/{id}/cancel", st.handleCancel())
	r.Get(PathStatements+"/{id}/result/chunks/{chunk}", st.handleChunk())
}

// waitTimeout matches the API's wait_timeout: 0s, or 5s to 50s.
var waitTimeout = regexp.MustCompile(`^([0-9]{1,2})s$`)

func (st *statements) handleExecute() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		var req sql.ExecuteStatementRequest
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxAPIBody, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		wait, jerr := checkExecute(req)
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		p := authFrom(r.Context()).principal
		wh := st.whs.get(req.WarehouseId)
		if wh == nil || !wh.acl.has(p, "CAN_VIEW") {
			jsonhttp.WriteError(rw, warehouseNotFound(req.WarehouseId))
			return
		}
		if !wh.acl.has(p, PermissionCanUse) {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
				Message: fmt.Sprintf("User %s does not have CAN_USE permission on warehouse %s.", p.UserName, wh.id),
				Fix:     "a manager of the warehouse grants CAN_USE: databricks warehouses update-permissions " + wh.id})
			return
		}
		select {
		case <-st.engineReady:
		case <-r.Context().Done():
			return
		}
		if st.engine == nil {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotImplemented, Code: "NOT_IMPLEMENTED",
				Message: st.engineErr.Error()})
			return
		}
		s, jerr := st.start(r.Context(), p, req)
		if jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-s.done:
			case <-timer.C:
				if req.OnWaitTimeout == sql.ExecuteStatementRequestOnWaitTimeoutCancel {
					s.cancel()
					<-s.done
				}
			case <-r.Context().Done():
			}
			timer.Stop()
		}
		st.write(rw, s)
	}
}

// checkExecute validates a request as the API does and returns its wait_timeout.
func checkExecute(req sql.ExecuteStatementRequest) (time.Duration, *jsonhttp.Error) {
	switch {
	case strings.TrimSpace(req.Statement) == "":
		return 0, badParameter("statement is required")
	case req.WarehouseId == "":
		return 0, badParameter("warehouse_id is required")
	case req.Disposition != "" && req.Disposition != sql.DispositionInline:
		return 0, badParameter("disposition %s is not supported by the emulated workspace, which keeps results in memory: "+
			"use INLINE (the default), with row_limit or byte_limit for large results", req.Disposition)
	case req.Format != "" && req.Format != sql.FormatJsonArray:
		return 0, badParameter("format %s is only supported with the EXTERNAL_LINKS disposition, which the emulated "+
			"workspace does not support: use JSON_ARRAY (the default)", req.Format)
	case req.OnWaitTimeout != "" && req.OnWaitTimeout != sql.ExecuteStatementRequestOnWaitTimeoutContinue &&
		req.OnWaitTimeout != sql.ExecuteStatementRequestOnWaitTimeoutCancel:
		return 0, badParameter("on_wait_timeout must be CONTINUE or CANCEL, not %q", req.OnWaitTimeout)
	case req.RowLimit < 0 || req.ByteLimit < 0:
		return 0, badParameter("row_limit and byte_limit must not be negative")
	}
	for _, p := range req.Parameters {
		if p.Name == "" {
			return 0, badParameter("every parameter needs a name")
		}
	}
	if req.WaitTimeout == "" {
		return defaultWaitTimeout, nil
	}
	m := waitTimeout.FindStringSubmatch(req.WaitTimeout)
	n := -1
	if m != nil {
		n, _ = strconv.Atoi(m[1])
	}
	if n != 0 && (n < 5 || n > 50) {
		return 0, badParameter("wait_timeout must be 0s or from 5s to 50s, not %q", req.WaitTimeout)
	}
	return time.Duration(n) * time.Second, nil
}

// start registers a PENDING statement and runs it in the background.
func (st *statements) start(ctx context.Context, p principal, req sql.ExecuteStatementRequest) (*statement, *jsonhttp.Error) {
	runCtx, cancel := context.WithCancel(st.ctx)
	s := &statement{id: uuid.NewString(), owner: p.UserName, done: make(chan struct{}), cancel: cancel,
		state: sql.StatementStatePending}
	st.mu.Lock()
	if st.ctx.Err() != nil {
		st.mu.Unlock()
		cancel()
		return nil, unavailable(errClosing)
	}
	if st.active >= maxActiveStatements {
		st.mu.Unlock()
		cancel()
		return nil, &jsonhttp.Error{Status: http.StatusTooManyRequests, Code: "RESOURCE_EXHAUSTED",
			Message: fmt.Sprintf("%d statements are pending or running on the emulated workspace: wait for some to finish",
				maxActiveStatements)}
	}
	st.sweepLocked()
	st.active++
	st.byID[s.id] = s
	st.mu.Unlock()
	st.tasks.Go(func() {
		defer cancel()
		st.run(runCtx, s, p, req)
	})
	return s, nil
}

// run waits for the warehouse, checks the statement against Unity Catalog and runs it.
func (st *statements) run(ctx context.Context, s *statement, p principal, req sql.ExecuteStatementRequest) {
	var (
		res   *sqlengine.Result
		fault *sql.ServiceError
	)
	defer func() { st.finish(s, res, fault, ctx.Err() != nil) }()
	wh := st.whs.get(req.WarehouseId)
	for {
		running, changed := st.whs.running(wh)
		if running {
			break
		}
		st.whs.start(wh) // a statement starts a stopped warehouse, as a serverless one starts
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
	st.setState(s, sql.StatementStateRunning)

	parsed, err := st.parse(ctx, req.Statement)
	if err != nil {
		fault = st.statementError(ctx, err)
		return
	}
	catalog := cmp.Or(req.Catalog, st.uc.defaultCat)
	schema := cmp.Or(req.Schema, "default")
	if problem := st.checkReads(p, parsed, catalog, schema); problem != "" {
		fault = &sql.ServiceError{ErrorCode: sql.ServiceErrorCodeBadRequest, Message: problem}
		return
	}
	q := sqlengine.Query{SQL: req.Statement, Catalog: catalog, Schema: schema, User: p.UserName, Groups: p.groups(),
		RowLimit: req.RowLimit, ByteLimit: req.ByteLimit}
	if q.ByteLimit == 0 || q.ByteLimit > maxInlineBytes {
		q.ByteLimit = maxInlineBytes + 1
	}
	for _, param := range req.Parameters {
		q.Params = append(q.Params, sqlengine.Param{Name: param.Name, Value: paramValue(param), Type: param.Type})
	}
	res, err = st.engine.Query(ctx, q)
	switch {
	case err != nil:
		res, fault = nil, st.statementError(ctx, err)
	case res.Bytes > maxInlineBytes || res.Truncated && req.ByteLimit == 0 && (req.RowLimit == 0 || int64(len(res.Rows)) < req.RowLimit):
		res, fault = nil, &sql.ServiceError{ErrorCode: sql.ServiceErrorCodeBadRequest,
			Message: "The result is larger than the 25 MiB an INLINE disposition returns: set row_limit or byte_limit, " +
				"or select less"}
	}
}

// parse is what a statement reads, as the engine's parser finds it, remembered by the statement's text: an app runs
// the same few statements over and over, and the parser costs about a millisecond each time, as much as the rest of
// the workspace's part of a statement. A statement that does not parse is not remembered.
func (st *statements) parse(ctx context.Context, statement string) (sqlengine.Parsed, error) {
	st.parseMu.Lock()
	p, ok := st.parses[statement]
	st.parseMu.Unlock()
	if ok {
		return p, nil
	}
	p, err := st.engine.Parse(ctx, statement)
	if err != nil {
		return p, err
	}
	st.parseMu.Lock()
	if st.parses == nil || len(st.parses) >= maxParses {
		st.parses = map[string]sqlengine.Parsed{}
	}
	st.parses[statement] = p
	st.parseMu.Unlock()
	return p, nil
}

// paramValue is a parameter's value, nil for NULL (a value that is left out).
func paramValue(p sql.StatementParameterListItem) *string {
	if p.Value == "" && !slices.Contains(p.ForceSendFields, "Value") {
		return nil
	}
	v := p.Value
	return &v
}

// safeTableFunctions are the table functions a statement may call: they read nothing but their arguments.
var safeTableFunctions = []string{"range", "generate_series", "unnest"}

// checkReads checks every table the statement reads: it must be a table of Unity Catalog, and the principal must
// hold USE CATALOG, USE SCHEMA and SELECT on it. It answers with the workspace's error, or "".
func (st *statements) checkReads(p principal, parsed sqlengine.Parsed, catalog, schema string) string {
	for _, f := range parsed.TableFunctions {
		if !slices.Contains(safeTableFunctions, strings.ToLower(f)) {
			return fmt.Sprintf("[UNRESOLVED_ROUTINE] Cannot resolve routine `%s`: the emulated warehouse reads Unity "+
				"Catalog's tables only. SQLSTATE: 42883", f)
		}
	}
	for _, ref := range parsed.Tables {
		c, s := cmp.Or(ref.Catalog, catalog), cmp.Or(ref.Schema, schema)
		t := st.uc.table(c, s, ref.Name)
		if t == nil {
			return fmt.Sprintf("[TABLE_OR_VIEW_NOT_FOUND] The table or view `%s`.`%s`.`%s` cannot be found. Verify the "+
				"spelling and correctness of the schema and catalog. SQLSTATE: 42P01", c, s, ref.Name)
		}
		if problem := st.uc.accessProblem(p, t, PrivSelect); problem != "" {
			return "[INSUFFICIENT_PERMISSIONS] Insufficient privileges:\n" + problem + " SQLSTATE: 42501"
		}
	}
	return ""
}

// statementError is a failed statement's error: the engine's message for what the statement got wrong, an internal
// error otherwise (logged, not shown), none when the statement was canceled (the engine's error is then its
// interruption).
func (st *statements) statementError(ctx context.Context, err error) *sql.ServiceError {
	var se *sqlengine.Error
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.As(err, &se):
		return &sql.ServiceError{ErrorCode: sql.ServiceErrorCodeBadRequest, Message: se.Message}
	case errors.Is(err, sqlengine.ErrNotAQuery):
		return &sql.ServiceError{ErrorCode: sql.ServiceErrorCodeBadRequest, Message: "[UNSUPPORTED_FEATURE] " + err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil
	}
	st.logger.Error("the SQL engine failed", "err", err)
	return &sql.ServiceError{ErrorCode: sql.ServiceErrorCodeInternalError, Message: "the emulated warehouse failed: see the emulator's log"}
}

func (st *statements) setState(s *statement, state sql.StatementState) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s.state == sql.StatementStatePending {
		s.state = state
	}
}

// finish records the outcome and cuts the result into chunks. A statement canceled (by the API, a wait_timeout with
// CANCEL or the workspace closing) is CANCELED, whatever it was doing.
func (st *statements) finish(s *statement, res *sqlengine.Result, fault *sql.ServiceError, canceled bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.active--
	s.finished = st.now()
	switch {
	case canceled: // whatever the engine said when it was interrupted
		s.state = sql.StatementStateCanceled
	case fault != nil:
		s.state, s.err = sql.StatementStateFailed, fault
	default:
		s.state, s.result = sql.StatementStateSucceeded, res
		s.chunks = chunk(res)
		st.kept += res.Bytes
		st.withResult = append(st.withResult, s)
	}
	st.ended = append(st.ended, s)
	close(s.done)
	st.sweepLocked()
}

// chunk cuts a result's rows into chunks of about chunkBytes.
func chunk(res *sqlengine.Result) []sql.BaseChunkInfo {
	force := []string{"ChunkIndex", "RowOffset", "RowCount", "ByteCount"}
	var chunks []sql.BaseChunkInfo
	cur := sql.BaseChunkInfo{ForceSendFields: force}
	for _, row := range res.Rows {
		var size int64
		for _, v := range row {
			if v != nil {
				size += int64(len(*v))
			}
		}
		if cur.RowCount > 0 && cur.ByteCount+size > chunkBytes {
			chunks = append(chunks, cur)
			cur = sql.BaseChunkInfo{ChunkIndex: len(chunks), RowOffset: cur.RowOffset + cur.RowCount, ForceSendFields: force}
		}
		cur.RowCount++
		cur.ByteCount += size
	}
	return append(chunks, cur)
}

// sweepLocked drops the results of statements finished longer ago than statementRetention, and the oldest
// results while more than maxKeptResultBytes are held: their statements read CLOSED. It forgets statements finished
// longer ago than the retention, and the oldest beyond maxKeptStatements: those are not found any more.
func (st *statements) sweepLocked() {
	now := st.now()
	for len(st.withResult) > 0 && (st.kept > maxKeptResultBytes || now.Sub(st.withResult[0].finished) > statementRetention) {
		s := st.withResult[0]
		st.withResult = st.withResult[1:]
		st.kept -= s.result.Bytes
		s.result, s.chunks, s.state = nil, nil, sql.StatementStateClosed
	}
	for len(st.ended) > 0 && (len(st.ended) > maxKeptStatements || now.Sub(st.ended[0].finished) > statementRetention) {
		s := st.ended[0]
		st.ended = st.ended[1:]
		delete(st.byID, s.id)
		if s.result != nil { // forgotten before its result was dropped: beyond maxKeptStatements
			st.withResult = slices.DeleteFunc(st.withResult, func(o *statement) bool { return o == s })
			st.kept -= s.result.Bytes
			s.result, s.chunks = nil, nil
		}
	}
}

// find reads the statement in the path; another principal's statements are not found.
func (st *statements) find(rw http.ResponseWriter, r *http.Request) (*statement, bool) {
	id := chi.URLParam(r, "id")
	st.mu.Lock()
	s, ok := st.byID[id]
	st.mu.Unlock()
	if !ok || s.owner != authFrom(r.Context()).principal.UserName {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
			Message: fmt.Sprintf("Statement %s not found, or its result has expired.", id)})
		return nil, false
	}
	return s, true
}

func (st *statements) handleGet() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if s, ok := st.find(rw, r); ok {
			st.write(rw, s)
		}
	}
}

func (st *statements) handleCancel() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if s, ok := st.find(rw, r); ok {
			s.cancel()
			jsonhttp.Write(rw, http.StatusOK, struct{}{})
		}
	}
}

func (st *statements) handleChunk() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		s, ok := st.find(rw, r)
		if !ok {
			return
		}
		n, err := strconv.Atoi(chi.URLParam(r, "chunk"))
		st.mu.Lock()
		defer st.mu.Unlock()
		switch {
		case s.state != sql.StatementStateSucceeded:
			jsonhttp.WriteError(rw, badParameter("statement %s is %s: only a SUCCEEDED statement has result chunks", s.id, s.state))
		case err != nil || n < 0 || n >= len(s.chunks):
			jsonhttp.WriteError(rw, badParameter("chunk_index %q: the result has chunks 0 to %d", chi.URLParam(r, "chunk"), len(s.chunks)-1))
		default:
			jsonhttp.Write(rw, http.StatusOK, st.chunkLocked(s, n))
		}
	}
}

// resultData is a chunk as the API sends it. The SDK's type holds values as strings; the wire holds null for NULL.
type resultData struct {
	ChunkIndex            int         `json:"chunk_index"`
	RowOffset             int64       `json:"row_offset"`
	RowCount              int64       `json:"row_count"`
	ByteCount             int64       `json:"byte_count"`
	DataArray             [][]*string `json:"data_array,omitempty"`
	NextChunkIndex        *int        `json:"next_chunk_index,omitempty"`
	NextChunkInternalLink string      `json:"next_chunk_internal_link,omitempty"`
}

type statementResponse struct {
	StatementID string              `json:"statement_id"`
	Status      sql.StatementStatus `json:"status"`
	Manifest    *sql.ResultManifest `json:"manifest,omitempty"`
	Result      *resultData         `json:"result,omitempty"`
}

func (st *statements) write(rw http.ResponseWriter, s *statement) {
	st.mu.Lock()
	resp := statementResponse{StatementID: s.id, Status: sql.StatementStatus{State: s.state, Error: s.err}}
	if s.state == sql.StatementStateSucceeded {
		resp.Manifest = manifest(s)
		resp.Result = st.chunkLocked(s, 0)
	}
	st.mu.Unlock()
	jsonhttp.Write(rw, http.StatusOK, resp)
}

func manifest(s *statement) *sql.ResultManifest {
	schema := &sql.ResultSchema{ColumnCount: len(s.result.Columns), ForceSendFields: []string{"ColumnCount"}}
	for i, c := range s.result.Columns {
		schema.Columns = append(schema.Columns, sql.ColumnInfo{Name: c.Name, Position: i, TypeText: c.TypeText,
			TypeName: sql.ColumnInfoTypeName(c.TypeName), TypePrecision: c.Precision, TypeScale: c.Scale,
			ForceSendFields: []string{"Position"}})
	}
	return &sql.ResultManifest{Format: sql.FormatJsonArray, Schema: schema, Chunks: s.chunks,
		TotalChunkCount: len(s.chunks), TotalRowCount: int64(len(s.result.Rows)), TotalByteCount: s.result.Bytes,
		Truncated: s.result.Truncated, ForceSendFields: []string{"TotalChunkCount", "TotalRowCount", "Truncated"}}
}

// chunkLocked is chunk n of a statement's result. Callers hold st.mu.
func (st *statements) chunkLocked(s *statement, n int) *resultData {
	c := s.chunks[n]
	d := &resultData{ChunkIndex: n, RowOffset: c.RowOffset, RowCount: c.RowCount, ByteCount: c.ByteCount,
		DataArray: s.result.Rows[c.RowOffset : c.RowOffset+c.RowCount]}
	if n+1 < len(s.chunks) {
		next := n + 1
		d.NextChunkIndex = &next
		d.NextChunkInternalLink = fmt.Sprintf("%s/%s/result/chunks/%d", PathStatements, s.id, next)
	}
	return d
}
