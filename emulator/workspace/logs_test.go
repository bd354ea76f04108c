package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// cliHeaders are the handshake headers `databricks apps logs` sends: its bearer token and the app's origin.
func cliHeaders(w *Workspace, app, token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}, "Origin": {w.AppURL(app)},
		"User-Agent": {"databricks-cli apps logs"}}
}

// dialLogs opens an app's /logz/stream with the given handshake headers. It does not follow redirects, so a 302
// shows as the handshake's response.
func dialLogs(t *testing.T, w *Workspace, app string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	target := "ws" + strings.TrimPrefix(w.AppURL(app), "http") + PathAppLogsStream
	conn, resp, err := websocket.Dial(ctx, target, &websocket.DialOptions{HTTPClient: client, HTTPHeader: header})
	if conn != nil {
		t.Cleanup(func() { _ = conn.CloseNow() })
	}
	return conn, resp, err
}

// openLogs connects as the CLI does and sends the search term, its first frame.
func openLogs(t *testing.T, w *Workspace, app, token, search string) *websocket.Conn {
	t.Helper()
	conn, resp, err := dialLogs(t, w, app, cliHeaders(w, app, token))
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte(search)))
	return conn
}

// readFrame reads one text frame within a bound.
func readFrame(t *testing.T, conn *websocket.Conn) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	typ, data, err := conn.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, websocket.MessageText, typ)
	return data
}

// readRecords reads n log records, skipping keepalive frames as the CLI does.
func readRecords(t *testing.T, conn *websocket.Conn, n int) []logRecord {
	t.Helper()
	var out []logRecord
	for len(out) < n {
		data := readFrame(t, conn)
		if len(data) == 1 && data[0] == 0 {
			continue
		}
		var rec logRecord
		require.NoError(t, json.Unmarshal(data, &rec), string(data))
		out = append(out, rec)
	}
	return out
}

func messages(recs []logRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Message
	}
	return out
}

func writeString(t *testing.T, w io.Writer, s string) {
	t.Helper()
	_, err := io.WriteString(w, s)
	require.NoError(t, err)
}

func TestAppLogStreamSendsRecordsThenFollows(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	token := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	before := float64(time.Now().UnixMicro()) / 1e6

	w.AppLogSystem("api-app", "Deploying app")
	stdout := w.AppLogWriter("api-app")
	writeString(t, stdout, "listening on :8000\nhandled ")
	writeString(t, stdout, "GET /api/health\n")
	w.AppLogSystem("api-app", "App started\n")
	w.AppLogSystem("caller-app", "another app's log")

	conn := openLogs(t, w, "api-app", token, "")
	got := readRecords(t, conn, 4)
	assert.Equal(t, []logRecord{
		{Source: "SYSTEM", Message: "Deploying app\n"},
		{Source: "APP", Message: "listening on :8000\n"},
		{Source: "APP", Message: "handled GET /api/health\n"},
		{Source: "SYSTEM", Message: "App started\n"},
	}, withoutTimestamps(got))
	after := float64(time.Now().UnixMicro()) / 1e6
	for _, rec := range got {
		assert.GreaterOrEqual(t, rec.Timestamp, before)
		assert.LessOrEqual(t, rec.Timestamp, after)
	}

	writeString(t, stdout, "a line written while following\n")
	assert.Equal(t, []string{"a line written while following\n"}, messages(readRecords(t, conn, 1)))

	require.NoError(t, conn.Close(websocket.StatusNormalClosure, ""))
	assert.Eventually(t, func() bool { return strings.Contains(logs.String(), `ended="client closed"`) },
		patience, 10*time.Millisecond)
	assert.NotContains(t, logs.String(), token)
	assert.NotContains(t, logs.String(), "proxy request", "/logz/stream is the platform's, not the app's traffic")
}

func withoutTimestamps(recs []logRecord) []logRecord {
	out := make([]logRecord, len(recs))
	for i, r := range recs {
		r.Timestamp = 0
		out[i] = r
	}
	return out
}

func TestAppLogStreamSearch(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	token := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	stdout := w.AppLogWriter("api-app")
	writeString(t, stdout, "ERROR: database unreachable\nok\nretrying after an error\n")

	conn := openLogs(t, w, "api-app", token, "error")
	assert.Equal(t, []string{"ERROR: database unreachable\n", "retrying after an error\n"},
		messages(readRecords(t, conn, 2)), "a case-insensitive substring of the message")

	writeString(t, stdout, "fine again\nanother Error\n")
	assert.Equal(t, []string{"another Error\n"}, messages(readRecords(t, conn, 1)), "the search applies to followed records too")
}

func TestAppLogStreamKeepalive(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{LogKeepalive: 20 * time.Millisecond})
	token := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	conn := openLogs(t, w, "api-app", token, "")
	for range 3 {
		assert.Equal(t, []byte{0}, readFrame(t, conn))
	}
}

func TestAppLogsRefusals(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	other, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	dev := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	service := m2mToken(t, w, "external-service") // CAN_USE on api-app, not CAN_MANAGE
	outsider := issueAt(t, w, time.Now(), "outsider@example.com", "all-apis")
	expired := issueAt(t, w, time.Now().Add(-2*time.Hour), "dev@example.com", "all-apis")
	foreign := m2mToken(t, other, "external-service")
	origin := w.AppURL("api-app")

	tests := []struct {
		name   string
		header http.Header
		page   int // GET /logz
		stream int // the /logz/stream handshake
	}{
		{"no token", http.Header{"Origin": {origin}}, http.StatusFound, http.StatusFound},
		{"malformed token", http.Header{"Authorization": {"Bearer not-a-jwt"}, "Origin": {origin}}, http.StatusFound, http.StatusFound},
		{"expired token", cliHeaders(w, "api-app", expired), http.StatusFound, http.StatusFound},
		{"another workspace's token", cliHeaders(w, "api-app", foreign), http.StatusFound, http.StatusFound},
		{"tampered token", cliHeaders(w, "api-app", dev[:len(dev)-4]+"AAAA"), http.StatusFound, http.StatusFound},
		{"service principal without CAN_MANAGE", cliHeaders(w, "api-app", service), http.StatusForbidden, http.StatusForbidden},
		{"user without CAN_MANAGE", cliHeaders(w, "api-app", outsider), http.StatusForbidden, http.StatusForbidden},
		{"manager from another origin", http.Header{"Authorization": {"Bearer " + dev}, "Origin": {"http://evil.example"}}, http.StatusOK, http.StatusForbidden},
		{"manager from another port", http.Header{"Authorization": {"Bearer " + dev}, "Origin": {w.URL()}}, http.StatusOK, http.StatusForbidden},
		{"manager over https", http.Header{"Authorization": {"Bearer " + dev}, "Origin": {"https" + strings.TrimPrefix(origin, "http")}}, http.StatusOK, http.StatusForbidden},
		{"manager without Origin", http.Header{"Authorization": {"Bearer " + dev}}, http.StatusOK, http.StatusForbidden},
		{"manager", cliHeaders(w, "api-app", dev), http.StatusOK, http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name+" page", func(t *testing.T) {
			resp, body := call(t, http.MethodGet, origin+PathAppLogs, tt.header)
			assert.Equal(t, tt.page, resp.StatusCode, string(body))
			assertLogsAnswer(t, w, resp, body, PathAppLogs)
			if tt.page == http.StatusOK {
				assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
				assert.NotContains(t, string(body), `"headers"`, "the app must not answer /logz")
			}
		})
		t.Run(tt.name+" stream", func(t *testing.T) {
			conn, resp, err := dialLogs(t, w, "api-app", tt.header)
			require.NotNil(t, resp)
			assert.Equal(t, tt.stream, resp.StatusCode)
			if tt.stream == http.StatusSwitchingProtocols {
				require.NoError(t, err)
				assert.NoError(t, conn.Close(websocket.StatusNormalClosure, ""))
				return
			}
			require.Error(t, err)
			body, _ := io.ReadAll(resp.Body)
			assertLogsAnswer(t, w, resp, body, PathAppLogsStream)
		})
	}
	assert.NotContains(t, logs.String(), "proxy request", "refusals on /logz are not app traffic either")
	for _, token := range []string{dev, service, outsider, expired, foreign} {
		assert.NotContains(t, logs.String(), token)
	}
}

// assertLogsAnswer checks a refusal's shape: a 302 goes to the workspace's login page and back to the path; a 403
// is a Databricks error that says what to do.
func assertLogsAnswer(t *testing.T, w *Workspace, resp *http.Response, body []byte, path string) {
	t.Helper()
	switch resp.StatusCode {
	case http.StatusFound:
		loc := resp.Header.Get("Location")
		assert.True(t, strings.HasPrefix(loc, w.URL()+PathLogin+"?next_url="), loc)
		assert.Contains(t, loc, strings.ReplaceAll(path, "/", "%2F"))
	case http.StatusForbidden:
		var e jsonhttp.Error
		require.NoError(t, json.Unmarshal(body, &e), string(body))
		assert.Equal(t, jsonhttp.CodePermissionDenied, e.Code)
		assert.NotEmpty(t, e.Fix)
	}
}

func TestAppLogPage(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	dev := bearer(pkceLogin(t, w, "offline_access all-apis")["access_token"].(string))
	w.AppLogSystem("api-app", "App started")
	writeString(t, w.AppLogWriter("api-app"), "<script>alert(1)</script>\n")

	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+PathAppLogs, dev)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), "the app's output is not trusted as HTML")
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	require.Len(t, lines, 2, string(body))
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[SYSTEM\] App started$`, lines[0])
	assert.Regexp(t, `^\S+ \[APP\] <script>alert\(1\)</script>$`, lines[1])

	resp, body = call(t, http.MethodPost, w.AppURL("api-app")+PathAppLogs, dev)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, string(body))
	assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))

	resp, body = call(t, http.MethodGet, w.AppURL("api-app")+PathAppLogsStream, dev)
	assert.Equal(t, http.StatusUpgradeRequired, resp.StatusCode, "a plain GET of the stream: %s", body)
	var e jsonhttp.Error
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	assert.Contains(t, e.Fix, "databricks apps logs api-app")
}

func TestAppLogWriterForUnknownApp(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	assert.Equal(t, io.Discard, w.AppLogWriter("no-such-app"))
	assert.NotPanics(t, func() { w.AppLogSystem("no-such-app", "App started") })
}

func TestAppLogLines(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", logMaxMessage)
	euro := strings.Repeat("a", logMaxMessage-1) + "€tail" // the bound falls inside the three-byte €

	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"lines in one write", []string{"one\ntwo\n"}, []string{"one\n", "two\n"}},
		{"a line across writes", []string{"par", "tial", " line\nnext"}, []string{"partial line\n"}},
		{"a partial line waits for its newline", []string{"no newline yet"}, nil},
		{"CRLF", []string{"windows\r\n"}, []string{"windows\n"}},
		{"an empty line", []string{"\n"}, []string{"\n"}},
		{"a line of exactly the bound", []string{long + "\n"}, []string{long + "\n"}},
		{"a long line is cut into pieces", []string{long + long + "end\n"}, []string{long + "\n", long + "\n", "end\n"}},
		{"a long line over many writes", []string{long[:100], long[100:] + "y", "z\n"}, []string{long + "\n", "yz\n"}},
		{"a cut keeps runes whole", []string{euro + "\n"}, []string{euro[:logMaxMessage-1] + "\n", "€tail\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newAppLog()
			w := l.Writer()
			for _, s := range tt.writes {
				n, err := io.WriteString(w, s)
				require.NoError(t, err)
				assert.Equal(t, len(s), n)
			}
			recs := l.records()
			assert.Equal(t, tt.want, nilIfEmpty(messages(recs)))
			for _, r := range recs {
				assert.Equal(t, logSourceApp, r.Source)
				assert.True(t, utf8.ValidString(r.Message))
				assert.LessOrEqual(t, len(r.Message), logMaxMessage+1)
			}
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestAppLogIsBounded(t *testing.T) {
	t.Parallel()
	t.Run("records", func(t *testing.T) {
		l := newAppLog()
		w := l.Writer()
		for i := range 2 * logMaxRecords {
			writeString(t, w, fmt.Sprintf("line %d\n", i))
		}
		recs := l.records()
		require.Len(t, recs, logMaxRecords)
		assert.Equal(t, fmt.Sprintf("line %d\n", logMaxRecords), recs[0].Message, "the oldest go first")
		assert.Equal(t, fmt.Sprintf("line %d\n", 2*logMaxRecords-1), recs[len(recs)-1].Message)
	})
	t.Run("bytes", func(t *testing.T) {
		l := newAppLog()
		w := l.Writer()
		line := strings.Repeat("y", logMaxMessage) + "\n"
		for range 2 * logMaxBytes / len(line) {
			writeString(t, w, line)
		}
		total := 0
		for _, r := range l.records() {
			total += len(r.Message)
		}
		assert.LessOrEqual(t, total, logMaxBytes)
		assert.Greater(t, total, logMaxBytes-len(line), "the budget is used, not just the count")
	})
}

func TestAppLogDropsALaggingFollower(t *testing.T) {
	t.Parallel()
	l := newAppLog()
	_, f, ok := l.follow()
	require.True(t, ok)
	defer l.unfollow(f)
	w := l.Writer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range logFollowBuffer + 10 {
			_, _ = fmt.Fprintf(w, "line %d\n", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(patience):
		t.Fatal("writes blocked on a follower that does not read")
	}
	select {
	case <-f.ctx.Done():
		assert.ErrorIs(t, context.Cause(f.ctx), errFollowerLagged)
	default:
		t.Fatal("the lagging follower was kept")
	}
	assert.Len(t, l.records(), logFollowBuffer+10)
}

func TestAppLogStuckReaderDoesNotBlockTheApp(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	token := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	conn := openLogs(t, w, "api-app", token, "") // and never read

	line := strings.Repeat("z", 1<<10) + "\n"
	stdout := w.AppLogWriter("api-app")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 * logMaxRecords {
			_, _ = io.WriteString(stdout, line)
		}
	}()
	select {
	case <-done:
	case <-time.After(patience):
		t.Fatal("the app's writes blocked on a log reader that does not read")
	}
	require.NoError(t, conn.CloseNow())

	resp, body := call(t, http.MethodGet, w.AppURL("api-app")+PathAppLogs, bearer(token))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.LessOrEqual(t, len(body), logMaxBytes+strings.Count(string(body), "\n")*len("2006-01-02T15:04:05.000Z [APP] "),
		"the log kept its byte budget")
	assert.LessOrEqual(t, strings.Count(string(body), "\n"), logMaxRecords)
}

func TestAppLogStreamEnds(t *testing.T) {
	t.Parallel()
	t.Run("when the client closes", func(t *testing.T) {
		w, _ := startWorkspace(t, Options{LogKeepalive: 10 * time.Millisecond})
		token := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
		base := runtime.NumGoroutine()
		for range 5 {
			conn := openLogs(t, w, "api-app", token, "")
			readFrame(t, conn)
			require.NoError(t, conn.Close(websocket.StatusNormalClosure, ""))
		}
		for range 5 {
			conn := openLogs(t, w, "api-app", token, "")
			require.NoError(t, conn.CloseNow(), "a client that goes away without a close frame")
		}
		assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= base+2 }, patience, 10*time.Millisecond,
			"goroutines: %d before the streams, %d after", base, runtime.NumGoroutine())
	})
	t.Run("when the workspace closes", func(t *testing.T) {
		w, _ := startWorkspace(t, Options{})
		token := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
		base := runtime.NumGoroutine()
		apps := []string{"api-app", "caller-app"}
		closed := make(chan error, len(apps))
		for _, app := range apps {
			conn := openLogs(t, w, app, token, "")
			// A record through the stream proves it follows: a handshake still under way when the workspace closes
			// is cut with the other in-flight requests, not closed with 1001.
			w.AppLogSystem(app, "App started")
			readRecords(t, conn, 1)
			go func() {
				ctx, cancel := context.WithTimeout(t.Context(), patience)
				defer cancel()
				_, _, err := conn.Read(ctx)
				closed <- fmt.Errorf("%s: %w", app, err)
			}()
		}

		// Close waits for the streams, which end at once: with the keepalive 15 s away, it does not wait for one.
		closedWorkspace := make(chan error, 1)
		go func() { closedWorkspace <- w.Close() }()
		select {
		case err := <-closedWorkspace:
			require.NoError(t, err)
		case <-time.After(patience):
			t.Fatal("Close did not return")
		}
		for range apps {
			err := <-closed
			assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "err: %v", err)
		}
		assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= base }, patience, 10*time.Millisecond,
			"goroutines: %d before the streams, %d after", base, runtime.NumGoroutine())
	})
	t.Run("without a search term", func(t *testing.T) {
		w, _ := startWorkspace(t, Options{})
		token := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
		conn, _, err := dialLogs(t, w, "api-app", cliHeaders(w, "api-app", token))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), patience)
		defer cancel()
		require.NoError(t, conn.Write(ctx, websocket.MessageBinary, []byte("error")))
		_, _, err = conn.Read(ctx)
		assert.Equal(t, websocket.StatusUnsupportedData, websocket.CloseStatus(err), "err: %v", err)
		assert.False(t, errors.Is(err, context.DeadlineExceeded))
	})
}

// TestAppLogStreamResumes: `databricks apps logs --follow` drops its first connection after about two seconds and
// reconnects with the same token, search term and User-Agent; the new stream sends what came since, not the kept
// records again. A new stream later than logResumeWindow, or of another client, gets the kept records.
func TestAppLogStreamResumes(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	token := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	p := w.apps.proxyOf("api-app")
	now := time.Now()
	p.logs.now = func() time.Time { return now } // the log's clock: when streams end and reconnect
	stdout := w.AppLogWriter("api-app")
	writeString(t, stdout, "one\ntwo\n")

	first := openLogs(t, w, "api-app", token, "")
	assert.Equal(t, []string{"one\n", "two\n"}, messages(readRecords(t, first, 2)))
	closeAndWait(t, p, first)

	writeString(t, stdout, "three\n")
	now = now.Add(logResumeWindow / 2)
	second := openLogs(t, w, "api-app", token, "")
	assert.Equal(t, []string{"three\n"}, messages(readRecords(t, second, 1)), "a reconnect resumes")
	closeAndWait(t, p, second)

	other := openLogs(t, w, "api-app", token, "t") // another search term: another client
	assert.Equal(t, []string{"two\n", "three\n"}, messages(readRecords(t, other, 2)))
	closeAndWait(t, p, other)

	now = now.Add(logResumeWindow + time.Second)
	later := openLogs(t, w, "api-app", token, "")
	assert.Equal(t, []string{"one\n", "two\n", "three\n"}, messages(readRecords(t, later, 3)),
		"a new databricks apps logs gets the kept records")
}

// closeAndWait closes a log stream as the CLI does and waits until the proxy has let go of it.
func closeAndWait(t *testing.T, p *appProxy, conn *websocket.Conn) {
	t.Helper()
	require.NoError(t, conn.Close(websocket.StatusNormalClosure, "context canceled"))
	assert.Eventually(t, func() bool {
		p.logs.mu.Lock()
		defer p.logs.mu.Unlock()
		return len(p.logs.followers) == 0
	}, patience, 5*time.Millisecond)
}
