package workspace

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/internal/testkit"
)

// patience bounds every wait of these tests for something that takes milliseconds (a log line, a listener, an
// answer): long enough that only a hang reaches it, however loaded the machine. No verdict here depends on how fast
// the machine is; a duration that is what a test is about (a token lifetime, a request timeout) is set apart from
// every event the test waits for, or played on a fake clock.
const patience = testkit.Patience

// startWorkspace starts the default model on free ports and stops it with the test.
func startWorkspace(t *testing.T, opts Options) (*Workspace, *testkit.Buffer) {
	t.Helper()
	logs := &testkit.Buffer{}
	if opts.Config.Workspace.ID == "" {
		opts.Config = DefaultConfig()
	}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.ComputeDelay == 0 {
		opts.ComputeDelay = 10 * time.Millisecond // the SDK's waiters still poll a transitional state at least once
	}
	if opts.DataDir != "" && opts.Config.Workspace.Host == "" {
		opts.Config.Workspace.Host = lastingAddress(t, opts.DataDir)
	}
	w, err := Start(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	return w, logs
}

// lastingAddresses are the workspace addresses of the data folders of this test binary, by folder.
var lastingAddresses sync.Map

// lastingAddress is where the workspace of a data folder listens, each time it starts: a port below the kernel's
// range of ports it picks itself (32768–60999 on Linux, 49152–65535 on macOS), so that while the workspace is down
// between two starts no other listener of the parallel tests, in this process or another, is given it.
func lastingAddress(t *testing.T, dataDir string) string {
	t.Helper()
	if addr, ok := lastingAddresses.Load(dataDir); ok {
		return addr.(string)
	}
	for range 100 {
		var b [2]byte
		_, _ = rand.Read(b[:])
		port := 20000 + (int(b[0])<<8|int(b[1]))%12000 // 20000–31999
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		actual, _ := lastingAddresses.LoadOrStore(dataDir, addr)
		return actual.(string)
	}
	t.Fatal("no free port in 20000–31999")
	return ""
}

// echoApp is a test upstream that answers with the headers it received, so tests assert what the app saw.
// /slow answers nothing until its client goes away; /ws accepts a WebSocket-style upgrade and echoes bytes.
func echoApp(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/slow":
			<-r.Context().Done()
			return
		case "/api/ws":
			conn, brw, err := rw.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			seen, _ := json.Marshal(r.Header)
			fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Seen: %s\r\n\r\n",
				base64.StdEncoding.EncodeToString(seen))
			_ = brw.Flush()
			line, _ := brw.ReadString('\n')
			fmt.Fprintf(brw, "echo: %s", line)
			_ = brw.Flush()
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{"path": r.URL.Path, "uri": r.RequestURI, "headers": r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

type echoed struct {
	Path    string      `json:"path"`
	URI     string      `json:"uri"` // the request target as it reached the app, undecoded
	Headers http.Header `json:"headers"`
}

// call sends a request to url with the given headers (repeatable) and returns the response, its body read.
func call(t *testing.T, method, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	require.NoError(t, err)
	for k, vs := range header {
		req.Header[k] = vs // keep the caller's spelling: tests send odd letter cases on purpose
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// m2mToken gets a service principal token from the token endpoint with Basic credentials, as the SDK does.
func m2mToken(t *testing.T, w *Workspace, spName string) string {
	t.Helper()
	return scopedToken(t, w, spName, ScopeAllAPIs)
}

// scopedToken gets a service principal token with only the given scope.
func scopedToken(t *testing.T, w *Workspace, spName, scope string) string {
	t.Helper()
	sp := w.State().ServicePrincipals[spName]
	return testkit.ClientCredentials(t, w.URL()+PathToken, sp.ClientID, sp.ClientSecret, scope)
}

// pkceLogin runs authorize + token by hand for the signed-in user and returns the token response.
func pkceLogin(t *testing.T, w *Workspace, scope string) map[string]any {
	t.Helper()
	code, verifier := pkceAuthorize(t, w, scope)
	status, body := redeemCode(t, w, code, verifier)
	require.Equal(t, http.StatusOK, status, string(body))
	var out map[string]any
	require.NoError(t, json.Unmarshal(body, &out))
	return out
}

// pkceRedirect is where pkceAuthorize's codes go: the loopback address a CLI listens on.
const pkceRedirect = "http://localhost:8020"

// pkceAuthorize runs the browser leg of the PKCE flow for the signed-in user and returns the authorization code
// and the verifier that redeems it, without redeeming it.
func pkceAuthorize(t *testing.T, w *Workspace, scope string) (code, verifier string) {
	t.Helper()
	verifierBytes := make([]byte, 48)
	_, _ = rand.Read(verifierBytes)
	verifier = base64.RawURLEncoding.EncodeToString(verifierBytes)
	q := url.Values{"client_id": {CLIClientID}, "response_type": {"code"}, "redirect_uri": {pkceRedirect},
		"state": {"xyz"}, "code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}, "scope": {scope}}
	resp, _ := call(t, http.MethodGet, w.URL()+PathAuthorize+"?"+q.Encode(), nil)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "xyz", loc.Query().Get("state"))
	code = loc.Query().Get("code")
	require.NotEmpty(t, code)
	return code, verifier
}

// redeemCode exchanges a code of pkceAuthorize at the token endpoint and returns the answer.
func redeemCode(t *testing.T, w *Workspace, code, verifier string) (int, []byte) {
	t.Helper()
	return postForm(t, w.URL()+PathToken, url.Values{"grant_type": {"authorization_code"},
		"client_id": {CLIClientID}, "code": {code}, "code_verifier": {verifier}, "redirect_uri": {pkceRedirect}})
}

func postForm(t *testing.T, target string, form url.Values) (int, []byte) {
	t.Helper()
	resp, err := http.PostForm(target, form)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

// issueAt signs a token as if at another time, for expired tokens without waiting.
func issueAt(t *testing.T, w *Workspace, at time.Time, subject string, scopes ...string) string {
	t.Helper()
	past := *w.auth.issuer
	past.now = func() time.Time { return at }
	p, _ := w.dir.subject(subject)
	token, _, err := past.issue(p, CLIClientID, "", scopes, time.Time{})
	require.NoError(t, err)
	return token
}

// rawUpgrade sends a WebSocket-style upgrade over a raw connection and returns the response and the connection.
func rawUpgrade(t *testing.T, target string, header http.Header) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	var d net.Dialer
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(patience))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n", u.RequestURI(), u.Host)
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	_, err = conn.Write([]byte(b.String()))
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	return resp, conn, br
}

// waitFor waits for one of the SDK's long-running calls (create, start, stop, deploy), as the CLI does after them.
func waitFor[R any, W interface{ Get() (*R, error) }](wait W, err error) (*R, error) {
	if err != nil {
		return nil, err
	}
	return wait.Get()
}
