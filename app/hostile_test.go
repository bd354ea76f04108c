package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// Hostile input that gets past the Databricks Apps proxy, or reaches an app exposed without it: the app answers
// with the right status, closes what it must and echoes nothing it was sent.

// rawResponse writes head (request line and headers, without the blank line) and body on a new connection and reads
// the whole answer: status code and body. It reaches the server with bytes Go's client refuses to send.
func rawResponse(t *testing.T, baseURL, head, body string) (status, answer string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, head+"\r\nConnection: close\r\n\r\n"+body)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(patience)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Status[:3], string(b)
}

// Every forwarded header, with every kind of byte no proxy sends: 400, from Go's server (bytes HTTP forbids) or from
// the identity check (bytes HTTP allows but no proxy sends), and the value is not echoed.
func TestHostileForwardedHeaderValues(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	bad := map[string]string{
		"NUL":                    "a\x00b",
		"SOH":                    "a\x01b",
		"ESC (terminal escapes)": "a\x1b[31mb",
		"tab inside":             "a\tb",
		"DEL":                    "a\x7fb",
		"invalid UTF-8":          "a\xff\xfeb",
		"truncated UTF-8":        "a\xc3",
		"overlong UTF-8 slash":   "a\xc0\xafb",
		"UTF-16 surrogate":       "a\xed\xa0\x80b",
		"NEL (C1 control)":       "a\u0085b",
		"CSI (C1 control)":       "a\u009b31mb",
	}
	tried := 0
	for _, header := range identity.ForwardedHeaders {
		for name, value := range bad {
			user := "1001@1234567890123456"
			if header == identity.HeaderUser {
				user = "1001@" + value
			}
			head := "GET /api/whoami HTTP/1.1\r\nHost: x\r\n" + identity.HeaderUser + ": " + user
			if header != identity.HeaderUser {
				head += "\r\n" + header + ": " + value
			}
			t.Run(header+" "+name, func(t *testing.T) {
				tried++
				status, answer := rawResponse(t, app.URL, head, "")
				assert.Equal(t, "400", status, answer)
				assert.NotContains(t, answer, value, "the bad value is not echoed")
			})
		}
	}
	t.Logf("hostile forwarded header values tried: %d, each answered 400", tried)
}

// Headers over the app's 64 KiB limit get 431, however they add up, before any handler runs.
func TestOversizedHeadersGet431HoweverTheyAddUp(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	many := http.Header{}
	for i := range 100 {
		many.Set(fmt.Sprintf("X-Padding-%d", i), strings.Repeat("p", 1<<10))
	}
	tests := map[string]http.Header{
		"one huge forwarded token": with(asUser(""), identity.HeaderAccessToken, strings.Repeat("t", 2*maxHeaderBytes)),
		"a hundred 1 KiB headers":  many,
		"one header repeated":      {"X-Padding": strings.Split(strings.Repeat("p,", 40<<10), ",")},
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, app.URL+"/api/whoami", nil)
			require.NoError(t, err)
			req.Header = h
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
			assert.NotContains(t, string(body), "ttttttttt")
		})
	}
	assert.NotContains(t, app.Stdout.String(), "ttttttttt", "nothing of the headers is logged")
}

// A client that sends its headers a byte at a time is cut off after the read-header timeout: it cannot hold a
// connection open for ever. APP_READ_HEADER_TIMEOUT shortens the timeout (10 s by default) for the test.
func TestSlowHeaderClientIsClosed(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	app := startApp(t, map[string]string{"APP_READ_HEADER_TIMEOUT": timeout.String()})
	conn, err := net.Dial("tcp", strings.TrimPrefix(app.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()

	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() { // one byte every 50 ms, never the blank line that ends the headers
		n := 0
		defer func() { sent <- n }()
		msg := "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 1000)
		for i := range len(msg) {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{msg[i]}); err != nil {
				return
			}
			n++
		}
	}()

	require.NoError(t, conn.SetReadDeadline(time.Now().Add(patience)))
	got, err := io.ReadAll(conn) // returns when the app closes the connection
	elapsed := time.Since(start)
	close(stop)
	var netErr net.Error
	require.False(t, errors.As(err, &netErr) && netErr.Timeout(), "the app kept the connection open for %s", elapsed)
	if len(got) > 0 { // Go's server may say why before it closes; it never serves the request
		assert.True(t, strings.HasPrefix(string(got), "HTTP/1.1 400 "), "%q", got)
	}
	assert.GreaterOrEqual(t, elapsed, timeout, "closed by the read-header timeout, not before")
	assert.Less(t, <-sent, 1000, "the client could not send its whole header")
}

// A chunked body has no Content-Length to refuse it by: the app stops reading after its 1 MiB limit and answers 413
// while the client is still sending: only 2 MiB are ever written, and never the end of the body.
func TestEchoRefusesChunkedLargeBodiesWithoutReadingThem(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(app.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	go func() { // 2 MiB of a body that never ends; the app must answer long before
		_, _ = io.WriteString(conn, "POST /api/echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-User: 1@2\r\n"+
			"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, `"`+strings.Repeat("x", 64<<10-1))
		for range 32 {
			if _, err := io.WriteString(conn, chunk); err != nil {
				return // the app has answered and closed the connection
			}
			chunk = fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("x", 64<<10))
		}
	}()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(patience)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "the app answers before the body ends")
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Contains(t, string(body), "REQUEST_TOO_LARGE")
	assert.NotContains(t, string(body), "xxxxxxxx", "the body is not echoed")
}

// A forwarded token whose claims hold times past the year 9999 (JSON cannot encode them) still gets a 200 from
// /api/whoami, without those times and without the token.
func TestWhoAmIWithFarFutureToken(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	token := fakeJWT(`{"sub":"1001","scope":"sql","iat":1795000000,"exp":253402300800}`)
	status, body := call(t, "GET", app.URL+"/api/whoami", asUser(token), "")
	require.Equal(t, http.StatusOK, status, "body: %v", body)
	claims, _ := body["access_token_claims"].(map[string]any)
	assert.Equal(t, "1001", claims["subject"])
	assert.Nil(t, claims["expires_at"])
	assert.NotContains(t, fmt.Sprint(body), token)
}
