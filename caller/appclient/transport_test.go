package appclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
)

// The client on its own, against httptest servers: the bearer, the refresh after a 401, retries, the size bound and
// redirects. What it does against the real proxy is the caller's tests' business (caller/).

// fakeCreds hands out tok-1, then tok-2 after a Refresh, and so on.
type fakeCreds struct {
	mu         sync.Mutex
	generation int
	refreshes  int
	refreshErr error
	authErr    error
}

func (c *fakeCreds) Authenticate(_ context.Context, req *http.Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.authErr != nil {
		return c.authErr
	}
	req.Header.Set("Authorization", fmt.Sprintf("Bearer tok-%d", c.generation+1))
	return nil
}

func (c *fakeCreds) Refresh() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshes++
	if c.refreshErr != nil {
		return c.refreshErr
	}
	c.generation++
	return nil
}

// app is an httptest server that answers each request with answer(n, r), n counting from 1, and keeps what it got.
type app struct {
	*httptest.Server
	hits   atomic.Int32
	mu     sync.Mutex
	bodies []string
	tokens []string
}

func newApp(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *app {
	t.Helper()
	a := &app{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.bodies, a.tokens = append(a.bodies, string(body)), append(a.tokens, r.Header.Get("Authorization"))
		a.mu.Unlock()
		answer(int(a.hits.Add(1)), w, r)
	}))
	t.Cleanup(a.Close)
	return a
}

// status answers code for the first n requests (Retry-After: 0, so retries do not wait), then 200 {"ok":true}.
func status(code, n int) func(int, http.ResponseWriter, *http.Request) {
	return func(i int, w http.ResponseWriter, _ *http.Request) {
		if i <= n {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(code)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}
}

func newTestClient(creds Credentials, retries int) (*Client, *[]Retry) {
	var heard []Retry
	c := &Client{HTTP: NewHTTPClient(&Transport{Creds: creds}), Retries: retries, MaxBody: DefaultMaxBody,
		OnRetry: func(r Retry) { heard = append(heard, r) }}
	return c, &heard
}

func TestTransportAddsTheBearerAndLeavesTheRequestAlone(t *testing.T) {
	t.Parallel()
	a := newApp(t, status(0, 0))
	hc := &http.Client{Transport: &Transport{Creds: &fakeCreds{}}}
	req, err := http.NewRequest(http.MethodGet, a.URL+"/api/whoami", nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []string{"Bearer tok-1"}, a.tokens)
	assert.Empty(t, req.Header.Get("Authorization"), "a RoundTripper does not change the request it is given")
}

func TestTransportRefreshesOnceAfter401AndSendsTheBodyAgain(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer tok-1" { // revoked
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	creds := &fakeCreds{}
	hc := &http.Client{Transport: &Transport{Creds: creds}}
	resp, err := hc.Post(a.URL+"/api/echo", "application/json", strings.NewReader(`{"hello":"world"}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 1, creds.refreshes)
	assert.Equal(t, []string{"Bearer tok-1", "Bearer tok-2"}, a.tokens)
	assert.Equal(t, []string{`{"hello":"world"}`, `{"hello":"world"}`}, a.bodies, "the body is sent again whole")
}

func TestTransportLeavesA401ThatCannotBeRetried(t *testing.T) {
	t.Parallel()
	a := newApp(t, status(http.StatusUnauthorized, 100))
	// No new token to get: the 401 stands, after one request.
	creds := &fakeCreds{refreshErr: errors.New("no refresh token")}
	resp, err := (&http.Client{Transport: &Transport{Creds: creds}}).Get(a.URL + "/api/x")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, int32(1), a.hits.Load())

	// A body that cannot be read twice (no GetBody) is not sent twice: no refresh.
	creds = &fakeCreds{}
	req, err := http.NewRequest(http.MethodPost, a.URL+"/api/x", io.NopCloser(strings.NewReader("once")))
	require.NoError(t, err)
	resp, err = (&http.Client{Transport: &Transport{Creds: creds}}).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, 0, creds.refreshes)
}

func TestTransportCredentialsErrorSendsNothing(t *testing.T) {
	t.Parallel()
	a := newApp(t, status(0, 0))
	noToken := errors.New("no token: log in first")
	c, _ := newTestClient(&fakeCreds{authErr: noToken}, 3)
	_, err := c.Do(t.Context(), http.MethodGet, a.URL+"/api/x", nil)
	assert.Same(t, noToken, err, "the credentials' own error, not a *NetworkError")
	assert.Zero(t, a.hits.Load())
}

func TestClientRefreshesOncePerCall(t *testing.T) {
	t.Parallel()
	a := newApp(t, status(http.StatusUnauthorized, 100))
	creds := &fakeCreds{}
	c, heard := newTestClient(creds, 3)
	resp, err := c.Do(t.Context(), http.MethodGet, a.URL+"/api/x", nil)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusUnauthorized, resp.Status)
	assert.True(t, resp.Refreshed, "the 401 came even after a refresh")
	assert.Equal(t, 1, creds.refreshes)
	assert.Equal(t, int32(2), a.hits.Load(), "one request, one after the refresh")
	require.Len(t, *heard, 1)
	assert.Zero(t, (*heard)[0].Attempt, "the refresh is retry 0")
	assert.Contains(t, (*heard)[0].Reason, "401 from "+strings.TrimPrefix(a.URL, "http://")+": refreshing the token")

	// Refresh that fails: the 401 is reported as it came, not as after a refresh.
	creds = &fakeCreds{refreshErr: errors.New("expired refresh token")}
	c, _ = newTestClient(creds, 3)
	resp, err = c.Do(t.Context(), http.MethodGet, a.URL+"/api/x", nil)
	require.ErrorAs(t, err, &se)
	assert.False(t, resp.Refreshed)
}

func TestClientRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		method   string
		answer   func(int, http.ResponseWriter, *http.Request)
		retries  int
		status   int
		attempts int
	}{
		{"503 twice, then 200", http.MethodGet, status(http.StatusServiceUnavailable, 2), 3, 200, 3},
		{"429 is retried for a POST too", http.MethodPost, status(http.StatusTooManyRequests, 1), 3, 200, 2},
		{"502 is retried for a GET", http.MethodGet, status(http.StatusBadGateway, 1), 3, 200, 2},
		{"502 is not retried for a POST: the app may have acted", http.MethodPost, status(http.StatusBadGateway, 1), 3, 502, 1},
		{"504 for a PUT is retried", http.MethodPut, status(http.StatusGatewayTimeout, 1), 3, 200, 2},
		{"the budget ends it", http.MethodGet, status(http.StatusServiceUnavailable, 100), 2, 503, 3},
		{"no retries", http.MethodGet, status(http.StatusServiceUnavailable, 100), 0, 503, 1},
		{"500 is not retried", http.MethodGet, status(http.StatusInternalServerError, 100), 3, 500, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, tt.answer)
			c, heard := newTestClient(&fakeCreds{}, tt.retries)
			resp, err := c.Do(t.Context(), tt.method, a.URL+"/api/x", []byte(`{}`))
			if tt.status == 200 {
				require.NoError(t, err)
			} else {
				var se *StatusError
				require.ErrorAs(t, err, &se)
			}
			assert.Equal(t, tt.status, resp.Status)
			assert.Equal(t, tt.attempts, resp.Attempts)
			assert.Equal(t, int32(tt.attempts), a.hits.Load())
			assert.Len(t, *heard, tt.attempts-1, "each retry is heard of")
			for _, b := range a.bodies {
				assert.Equal(t, `{}`, b, "each attempt sends the whole body")
			}
		})
	}
}

// A connection reset before the answer is retried for a GET, not for a POST.
func TestClientRetriesAResetForIdempotentMethodsOnly(t *testing.T) {
	t.Parallel()
	reset := func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}
	a := newApp(t, reset)
	c, heard := newTestClient(&fakeCreds{}, 3)
	resp, err := c.Do(t.Context(), http.MethodGet, a.URL+"/api/x", nil)
	require.NoError(t, err)
	assert.Equal(t, 2, resp.Attempts)
	require.Len(t, *heard, 1)
	assert.Contains(t, (*heard)[0].Reason, "connection reset")

	a = newApp(t, reset)
	c, _ = newTestClient(&fakeCreds{}, 3)
	_, err = c.Do(t.Context(), http.MethodPost, a.URL+"/api/x", []byte(`{}`))
	var ne *NetworkError
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, int32(1), a.hits.Load())
}

// An answer over MaxBody is refused whole, with or without a Content-Length; one of exactly MaxBody is read.
func TestClientSizeLimit(t *testing.T) {
	t.Parallel()
	const limit = 1 << 10
	a := newApp(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		n := map[string]int{"/api/over": limit + 1, "/api/exact": limit, "/api/chunked": 4 * limit}[r.URL.Path]
		if r.URL.Path == "/api/chunked" {
			for range 4 { // flushed in parts: no Content-Length
				_, _ = w.Write(bytes.Repeat([]byte("x"), limit))
				http.NewResponseController(w).Flush()
			}
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(n))
		_, _ = w.Write(bytes.Repeat([]byte("x"), n))
	})
	c, _ := newTestClient(&fakeCreds{}, 0)
	c.MaxBody = limit
	for _, path := range []string{"/api/over", "/api/chunked"} {
		_, err := c.Do(t.Context(), http.MethodGet, a.URL+path, nil)
		var tl *TooLargeError
		require.ErrorAs(t, err, &tl, path)
		assert.Equal(t, int64(limit), tl.Limit)
	}
	resp, err := c.Do(t.Context(), http.MethodGet, a.URL+"/api/exact", nil)
	require.NoError(t, err)
	assert.Len(t, resp.Body, limit)
}

// A redirect is the login page: reported, never followed with the token.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	elsewhere := newApp(t, status(0, 0))
	a := newApp(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/login", http.StatusFound)
	})
	c, _ := newTestClient(&fakeCreds{}, 3)
	resp, err := c.Do(t.Context(), http.MethodGet, a.URL+"/api/x", nil)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusFound, resp.Status)
	assert.Zero(t, elsewhere.hits.Load())
}

// The waits between retries, on a fake clock: the server's Retry-After when it gives one, else the backoff; none
// that would outlast the context.
func TestClientWaits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		answers := []string{"2", "", ""} // Retry-After of each 503, then a 200
		var sent []time.Time
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			sent = append(sent, time.Now())
			code, h := http.StatusOK, http.Header{}
			if i := len(sent) - 1; i < len(answers) {
				code = http.StatusServiceUnavailable
				if answers[i] != "" {
					h.Set("Retry-After", answers[i])
				}
			}
			return &http.Response{StatusCode: code, Header: h, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
		})
		c := &Client{HTTP: NewHTTPClient(&Transport{Creds: &fakeCreds{}, Base: base}), Retries: 3, MaxBody: DefaultMaxBody}
		resp, err := c.Do(t.Context(), http.MethodGet, "http://app.example/api/x", nil)
		require.NoError(t, err)
		assert.Equal(t, 4, resp.Attempts)
		assert.Equal(t, 2*time.Second, sent[1].Sub(sent[0]), "the server's Retry-After")
		assert.InDelta(t, 375*time.Millisecond, sent[2].Sub(sent[1]), float64(125*time.Millisecond), "backoff of the second retry: 250–500 ms, halved and jittered")
		assert.InDelta(t, 750*time.Millisecond, sent[3].Sub(sent[2]), float64(250*time.Millisecond), "backoff of the third: 500 ms–1 s")

		// A Retry-After past the deadline ends the call at once with the 503.
		sent, answers = nil, []string{"30"}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		start := time.Now()
		resp, err = c.Do(ctx, http.MethodGet, "http://app.example/api/x", nil)
		var se *StatusError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, http.StatusServiceUnavailable, resp.Status)
		assert.Zero(t, time.Since(start), "no wait that outlasts the context")
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Resolve asks the workspace's Apps API through the SDK: a running app's URL, a stopped app, an unknown one.
func TestResolve(t *testing.T) {
	t.Parallel()
	workspace := newApp(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/databricks-config": // the SDK asks first
			_, _ = io.WriteString(w, `{"workspace_id":"1","cloud":"AWS","host_type":"workspace"}`)
		case "/api/2.0/apps/api-app":
			_, _ = io.WriteString(w, `{"name":"api-app","url":"https://api-app-1.aws.databricksapps.com",
				"user_api_scopes":["sql"],"app_status":{"state":"RUNNING","message":"App is running"}}`)
		case "/api/2.0/apps/stopped":
			_, _ = io.WriteString(w, `{"name":"stopped","url":"https://stopped-1.aws.databricksapps.com",
				"app_status":{"state":"UNAVAILABLE","message":"App has no running deployment"}}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"App does not exist"}`)
		}
	})
	cfg := &config.Config{Host: workspace.URL, Token: "dapi-test", AuthType: "pat", Loaders: []config.Loader{sdkconfig.ExplicitOnly{}}}

	got, err := Resolve(t.Context(), cfg, "api-app")
	require.NoError(t, err)
	assert.Equal(t, "https://api-app-1.aws.databricksapps.com", got.Base.String())
	assert.Equal(t, "RUNNING", got.State())
	assert.Equal(t, []string{"sql"}, got.App.UserApiScopes)
	assert.Equal(t, "Bearer dapi-test", workspace.tokens[len(workspace.tokens)-1], "with cfg's credentials")

	_, err = Resolve(t.Context(), cfg, "stopped")
	var notRunning *AppNotRunningError
	require.ErrorAs(t, err, &notRunning)
	assert.Equal(t, `app "stopped" is UNAVAILABLE, not RUNNING: App has no running deployment`, err.Error())

	_, err = Resolve(t.Context(), cfg, "ghost")
	var apiErr *apierr.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	assert.ErrorIs(t, err, apierr.ErrNotFound)

	before := workspace.hits.Load()
	_, err = Resolve(t.Context(), cfg, "a/../../b")
	assert.ErrorIs(t, err, ErrBadAppName)
	assert.Equal(t, before, workspace.hits.Load(), "a bad name is not sent")
}
