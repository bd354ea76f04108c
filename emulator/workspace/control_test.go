package workspace

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// control sends a request to the control API, with a JSON body unless body is "", and returns the status and the
// decoded answer.
func control(t *testing.T, w *Workspace, method, path, body string) (int, map[string]any) {
	t.Helper()
	var header http.Header
	if body != "" {
		header = http.Header{"Content-Type": {"application/json"}}
	}
	resp, raw := send(t, method, w.URL()+path, body, header)
	var answer map[string]any
	require.NoError(t, json.Unmarshal(raw, &answer), string(raw))
	return resp.StatusCode, answer
}

// The control API is InjectFault, ClearFaults, RevokeTokens and a timed Down over HTTP, for programs that run
// against `emulator serve`: the same faults, as JSON, with durations as strings.
func TestControlAPI(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	token := m2mToken(t, w, "external-service")
	c := sdkClient(t, w, token)
	me := func() error { _, err := c.CurrentUser.Me(t.Context(), iam.MeRequest{}); return err }

	status, added := control(t, w, http.MethodPost, PathFaults,
		`{"path":"`+PathSCIMMe+`","status":500,"message":"down for maintenance","delay":"20ms","times":1}`)
	require.Equal(t, http.StatusCreated, status, added)
	assert.Equal(t, map[string]any{"id": "1", "path": PathSCIMMe, "status": 500.0, "message": "down for maintenance",
		"delay": "20ms", "times": 1.0, "answer": "delay 20ms, then status 500", "hits": 0.0}, added)
	e := apiError(t, me())
	assert.Equal(t, 500, e.StatusCode)
	assert.Equal(t, "down for maintenance", e.Message)
	status, list := control(t, w, http.MethodGet, PathFaults, "")
	require.Equal(t, http.StatusOK, status)
	require.Len(t, list["faults"], 1)
	assert.Equal(t, 1.0, list["faults"].([]any)[0].(map[string]any)["hits"])
	status, cleared := control(t, w, http.MethodDelete, PathFaults+"/1", "")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "1", cleared["id"])
	status, missing := control(t, w, http.MethodDelete, PathFaults+"/1", "")
	assert.Equal(t, http.StatusNotFound, status)
	assert.Contains(t, missing["message"], `no fault "1"`)

	t.Run("a fault on every path spares the control API", func(t *testing.T) {
		status, _ := control(t, w, http.MethodPost, PathFaults, `{"path":"/","status":503}`)
		require.Equal(t, http.StatusCreated, status)
		status, _ = control(t, w, http.MethodPost, PathFaults, `{"app":"api-app","path":"/api/","reset":true}`)
		require.Equal(t, http.StatusCreated, status)
		resp, _ := call(t, http.MethodGet, w.URL()+PathHostMetadata, nil)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		status, answer := control(t, w, http.MethodDelete, PathFaults, "")
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, map[string]any{"cleared": 2.0}, answer)
		assert.NoError(t, me())
	})
	t.Run("bad input", func(t *testing.T) {
		tests := []struct{ body, mentions string }{
			{`{"path":"/","status":`, "malformed JSON body"},
			{`{"path":"/","stauts":500}`, `unknown field "stauts"`},
			{`{"path":"/","status":700}`, "status 700: want an error status"},
			{`{"path":"/","status":500,"times":-1}`, "times -1"},
			{`{"app":"nope","path":"/","status":500}`, `no app "nope"`},
			{`{"path":"/","delay":"soon"}`, `delay "soon": want a duration`},
			{`{"path":"/","principal":"nobody","status":500}`, `no user or service principal "nobody"`},
		}
		for _, tt := range tests {
			status, answer := control(t, w, http.MethodPost, PathFaults, tt.body)
			assert.Equal(t, http.StatusBadRequest, status, tt.body)
			assert.Equal(t, "INVALID_PARAMETER_VALUE", answer["error_code"], tt.body)
			assert.Contains(t, answer["message"], tt.mentions, tt.body)
		}
		resp, _ := send(t, http.MethodPost, w.URL()+PathFaults, `{"path":"/","status":500}`, nil)
		assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, "JSON only")
		status, answer := control(t, w, http.MethodPost, PathRevoke, `{"principal":"nobody"}`)
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Contains(t, answer["message"], `no user or service principal "nobody"`)
		for _, body := range []string{`{}`, `{"for":"0s"}`, `{"for":"11m"}`, `{"for":"soon"}`} {
			status, answer := control(t, w, http.MethodPost, PathDown, body)
			assert.Equal(t, http.StatusBadRequest, status, body)
			assert.Contains(t, answer["message"], "want how long to stay down", body)
		}
		assert.Empty(t, w.Faults())
	})
	t.Run("revoke", func(t *testing.T) {
		status, answer := control(t, w, http.MethodPost, PathRevoke, `{"principal":"external-service"}`)
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, map[string]any{"revoked": "external-service"}, answer)
		assert.Equal(t, http.StatusUnauthorized, apiError(t, me()).StatusCode)
		c = sdkClient(t, w, m2mToken(t, w, "external-service"))
		assert.NoError(t, me(), "a token minted afterwards works")
	})
	t.Run("down for a while", func(t *testing.T) {
		// The timer that brings the workspace up is the test's to fire: the workspace is down until then, however
		// long the checks in between take.
		type timer struct {
			after time.Duration
			fire  func()
		}
		timers := make(chan timer, 1)
		w.listenMu.Lock()
		w.afterFunc = func(d time.Duration, f func()) stopper { timers <- timer{d, f}; return noTimer{} }
		w.listenMu.Unlock()
		status, answer := control(t, w, http.MethodPost, PathDown, `{"for":"150ms"}`)
		require.Equal(t, http.StatusAccepted, status)
		assert.Equal(t, map[string]any{"down_for": "150ms", "url": w.URL()}, answer)
		up := <-timers
		assert.Equal(t, 150*time.Millisecond, up.after)
		_, err := http.Get(w.URL() + PathHostMetadata) // a plain request: the SDK would retry for seconds
		assert.ErrorIs(t, err, syscall.ECONNREFUSED, "%v", err)
		up.fire()
		assert.NoError(t, me(), "up again")
	})
	t.Run("the local machine only", func(t *testing.T) {
		for _, path := range []string{PathFaults, PathRevoke, PathDown} {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"for":"1s"}`))
			req.Header.Set("Content-Type", "application/json")
			req.RemoteAddr = "192.0.2.7:40000"
			rec := httptest.NewRecorder()
			w.routes().ServeHTTP(rec, req)
			assert.Equal(t, http.StatusForbidden, rec.Code, path)
			assert.Contains(t, rec.Body.String(), "the local machine only", path)
		}
	})
	t.Run("not under another host name (DNS rebinding)", func(t *testing.T) {
		// What a browser sends from http://rebind.example:PORT once that name's DNS answers 127.0.0.1: a loopback
		// client, same-origin headers, and the page's host in Host.
		_, port, err := net.SplitHostPort(strings.TrimPrefix(w.URL(), "http://"))
		require.NoError(t, err)
		host := "rebind.example:" + port
		for path, body := range map[string]string{PathFaults: `{"path":"/","status":503}`,
			PathRevoke: `{"principal":"external-service"}`, PathDown: `{"for":"1s"}`} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.URL()+path, strings.NewReader(body))
			require.NoError(t, err)
			req.Host = host
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", "http://"+host)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, path)
		}
		assert.Empty(t, w.Faults())
		assert.NoError(t, me(), "still up, and the token not revoked")
	})
	t.Run("not from another origin", func(t *testing.T) {
		resp, body := send(t, http.MethodPost, w.URL()+PathDown, `{"for":"1s"}`, http.Header{
			"Content-Type": {"application/json"}, "Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, string(body))
		assert.Contains(t, string(body), "from another origin")
		assert.NoError(t, me(), "still up")
	})
	for _, secret := range []string{token, w.State().ServicePrincipals["external-service"].ClientSecret} {
		assert.NotContains(t, logs.String(), secret)
	}
	assert.Contains(t, logs.String(), "fault played")
}

// noTimer is a timer the test fires itself, so stopping it does nothing.
type noTimer struct{}

func (noTimer) Stop() bool { return true }
