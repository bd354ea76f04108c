package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

func TestEscapeControls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, text, line, json string
	}{
		{"plain ünïcödé, <tags> & tabs\tand\nlines", "plain ünïcödé, <tags> & tabs\tand\nlines",
			`plain ünïcödé, <tags> & tabs\tand\nlines`, "plain ünïcödé, <tags> & tabs\tand\nlines"},
		{"\x1b[2J\x1b]0;title\x07", `\x1b[2J\x1b]0;title\x07`, `\x1b[2J\x1b]0;title\x07`, `\u001b[2J\u001b]0;title\u0007`},
		{"over\rwrite\x7f", `over\rwrite\x7f`, `over\rwrite\x7f`, `over\u000dwrite\u007f`},
		{"c1 \u009b31m \u0085", `c1 \u009b31m \u0085`, `c1 \u009b31m \u0085`, `c1 \u009b31m \u0085`},
		{"bad \xff\x9b utf-8, good \ufffd", `bad \xff\x9b utf-8, good ` + "\ufffd", `bad \xff\x9b utf-8, good ` + "\ufffd", `bad \ufffd\ufffd utf-8, good ` + "\ufffd"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.text, escapeControls(tt.in, false, true), "text %q", tt.in)
		assert.Equal(t, tt.line, oneLine(tt.in), "one line %q", tt.in)
		assert.Equal(t, tt.json, escapeControls(tt.in, true, true), "json %q", tt.in)
	}
}

// terminalControls lists what in s a terminal would act on: C0 but newline and tab, DEL, C1, bytes not UTF-8.
func terminalControls(s string) []string {
	var found []string
	for i, r := range s {
		if (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\ufffd")) || isControl(r) {
			found = append(found, fmt.Sprintf("%q at %d", r, i))
		}
	}
	return found
}

// hostile is what a malicious or broken app sends: clear the screen, set the title, move up a line and overwrite it,
// the same through C1's CSI, and a byte that is not UTF-8.
const hostile = "\x1b[2J\x1b]0;pwned\x07\x1b[1A\rcaller: all good\n\u009b31m\x7f\xff"

// startHostileApp puts an app that sends a terminal hostile text on every output path behind api-app's proxy. It is
// the app under test here, not a stand-in for one: no fault of the emulator answers a 200 of the app's own making.
func startHostileApp(t *testing.T, e *emulator) *httptest.Server {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/text":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("answer " + hostile))
		case "/api/json":
			jsonhttp.Write(w, http.StatusOK, map[string]string{"note": hostile})
		case "/api/whoami":
			jsonhttp.Write(w, http.StatusOK, identity.WhoAmI{Identity: identity.Identity{User: "2001@1" + hostile,
				Kind: identity.Kind("user" + hostile), Email: "a" + hostile, PreferredUsername: hostile},
				AccessTokenForwarded: true, AccessTokenClaims: &identity.TokenClaims{Scopes: []string{"sql" + hostile}}})
		case "/api/error":
			jsonhttp.WriteError(w, &jsonhttp.Error{Status: http.StatusForbidden, Code: "DENIED" + hostile,
				Message: "no " + hostile, Fix: "do " + hostile})
		case "/api/status": // the status line's reason phrase, which the retry note quotes
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			_, _ = buf.WriteString("HTTP/1.1 503 Busy\x1b]0;pwned\x07\x1b[2J\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n")
			_ = buf.Flush()
			_ = conn.Close()
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(app.Close)
	require.NoError(t, e.ws.SetUpstream("api-app", app.URL))
	return app
}

// A server's text reaches the terminal escaped on every output path: answers, errors, identities, retry notes, in
// text and in --json.
func TestServerTextCannotDriveTheTerminal(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	app := startHostileApp(t, e)
	api := e.state.Apps["api-app"].URL
	runs := []struct {
		url  string
		args []string
	}{
		{api, []string{"call", "/api/text"}}, {api, []string{"call", "/api/json"}}, {api, []string{"whoami"}},
		{api, []string{"call", "/api/error"}},
		// The Apps proxy writes a status line of its own: a reason phrase reaches the caller from a server it calls
		// directly (--url), such as a proxy on the way.
		{app.URL, []string{"--retries", "1", "call", "/api/status"}},
	}
	for _, run := range runs {
		for _, asJSON := range []bool{false, true} {
			full := append([]string{"--mode", "external", "--url", run.url}, run.args...)
			if asJSON {
				full = append(full, "--json")
			}
			t.Run(strings.Join(full[4:], " "), func(t *testing.T) {
				r := runCaller(t, e.spEnv("external-service"), full...)
				assert.NotEmpty(t, r.stdout+r.stderr)
				assert.Empty(t, terminalControls(r.stdout), "stdout:\n%s", r.stdout)
				assert.Empty(t, terminalControls(r.stderr), "stderr:\n%s", r.stderr)
				for _, out := range []string{r.stdout, r.stderr} {
					assert.NotContains(t, out, "\ncaller: all good", "a server's text starts no line of its own")
				}
				if asJSON {
					var v any
					assert.NoError(t, json.Unmarshal([]byte(r.stdout), &v), "--json stays JSON: %s", r.stdout)
				}
			})
		}
	}
}

// --json keeps the meaning of a server's text: escaped, it decodes to what the server sent (bytes that are not
// UTF-8 become U+FFFD, as encoding/json makes them).
func TestJSONOutputKeepsTheServersText(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	startHostileApp(t, e)
	r := runCaller(t, e.spEnv("external-service"), "--mode", "external", "--url", e.state.Apps["api-app"].URL, "--json", "call", "/api/json")
	require.Equal(t, exitOK, r.code, r.String())
	var got struct {
		Body struct{ Note string } `json:"body"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	assert.Equal(t, strings.ToValidUTF8(hostile, "\ufffd"), got.Body.Note)
}
