package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// failure is what the caller reports when a command fails: one line saying what happened, the checklist items of the
// documentation page that apply (made specific), and the exit code. run returns it; main exits with its Code.
type failure struct {
	Code     int             `json:"exit_code"`
	Status   int             `json:"status,omitempty"` // the HTTP status, when there was an answer
	Summary  string          `json:"error"`
	Response *jsonhttp.Error `json:"response_error,omitempty"` // the error body the proxy, app or workspace sent
	// Body is any other body of the answer, as the app sent it (JSON, or a JSON string): an app's own error.
	Body     json.RawMessage `json:"response_body,omitempty"`
	bodyText string
	Checks   []string `json:"checklist,omitempty"`
	reported bool     // the command already printed it (doctor's report)
}

func (f *failure) Error() string { return f.Summary }

func usageErrorf(format string, args ...any) *failure {
	return &failure{Code: exitUsage, Summary: fmt.Sprintf(format, args...)}
}

// asFailure turns any error from a command into a failure, so every error gets an exit code.
func asFailure(ctx context.Context, err error) *failure {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &failure{Code: exitNetwork, Summary: fmt.Sprintf("timed out: %v", err),
			Checks: []string{"raise --timeout if the app is slow; the Apps proxy itself gives up after 120 s (504)"}}
	}
	return &failure{Code: exitFailure, Summary: err.Error()}
}

// output writes results to stdout and everything meant for a person (notes, warnings, failures) to stderr; with
// --json, results and failures are JSON on stdout.
type output struct {
	stdout, stderr io.Writer
	json           bool
}

// newOutput is the output of a command: whatever it prints, a server's text included, cannot drive the terminal.
func newOutput(stdout, stderr io.Writer, json bool) *output {
	return &output{stdout: &terminalWriter{w: stdout, json: json}, stderr: &terminalWriter{w: stderr}, json: json}
}

// result prints text for people, or v as JSON.
func (o *output) result(text string, v any) {
	if o.json {
		o.writeJSON(v)
		return
	}
	fmt.Fprint(o.stdout, text)
	if !strings.HasSuffix(text, "\n") {
		fmt.Fprintln(o.stdout)
	}
}

// notef tells the person running the command something on stderr; quiet with --json.
func (o *output) notef(format string, args ...any) {
	if o.json {
		return
	}
	fmt.Fprintf(o.stderr, format+"\n", args...)
}

func (o *output) failure(f *failure) {
	if o.json {
		o.writeJSON(struct {
			OK bool `json:"ok"`
			*failure
		}{false, f})
		return
	}
	fmt.Fprintf(o.stderr, "callapp: %s\n", f.Summary)
	if f.Response != nil && f.Response.Message != "" {
		line := fmt.Sprintf("  the server said: %s: %s", oneLine(f.Response.Code), oneLine(f.Response.Message))
		if f.Response.Fix != "" {
			line += " (fix: " + oneLine(f.Response.Fix) + ")"
		}
		fmt.Fprintln(o.stderr, line)
	}
	if f.bodyText != "" {
		shown := f.bodyText
		if len(shown) > maxShownBody {
			shown = strings.ToValidUTF8(shown[:maxShownBody], "") + fmt.Sprintf("… (%d bytes in all)", len(f.bodyText))
		}
		fmt.Fprintf(o.stderr, "  the app answered: %s\n", oneLine(shown))
	}
	if len(f.Checks) > 0 {
		fmt.Fprintln(o.stderr, "Check (from \"Connect to a Databricks app using token authentication\", troubleshooting):")
		for _, c := range f.Checks {
			fmt.Fprintf(o.stderr, "  - %s\n", c)
		}
	}
}

func (o *output) writeJSON(v any) {
	enc := json.NewEncoder(o.stdout)
	enc.SetEscapeHTML(false) // "<your user name>" in a fix, not "\u003cyour user name\u003e"
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// prettyBody indents a JSON body and returns any other body unchanged. Only whitespace changes: keys keep their
// order and numbers their digits.
func prettyBody(body []byte) string {
	var b bytes.Buffer
	if json.Indent(&b, body, "", "  ") != nil {
		return string(body)
	}
	return b.String()
}

// bodyJSON returns the body as raw JSON when it is JSON, else as a JSON string, for --json output. It does not
// escape <, > and & (json.Marshal would, making a body of '<' six times its size).
func bodyJSON(body []byte) json.RawMessage {
	if len(body) > 0 && json.Valid(body) {
		return json.RawMessage(body)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(string(body))
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
