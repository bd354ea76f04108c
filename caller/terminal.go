package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// What a server sends (an app's answer, the proxy's or the workspace's error message and fix, an identity) may hold
// escape sequences a terminal obeys: clear the screen, move the cursor up to overwrite a line, set the window title.
// Everything the caller prints goes through a terminalWriter, so they show as text instead.

// terminalWriter escapes, in everything written to w, the C0 control characters other than newline and tab (ESC
// among them), DEL, the C1 controls and bytes that are not UTF-8. As text they show as \r, \x1b, \x7f, \u009b, \xff; in
// JSON as \u001b, \u007f, \u009b and the replacement character, which keeps the JSON valid and its meaning the same
// (they can only occur inside its strings; encoding/json escapes C0 itself but passes DEL and C1 through).
//
// Each Write is escaped on its own: write whole strings, as fmt and encoding/json do.
type terminalWriter struct {
	w    io.Writer
	json bool
}

func (t *terminalWriter) Write(p []byte) (int, error) {
	if !hasControls(p) {
		return t.w.Write(p)
	}
	if _, err := io.WriteString(t.w, escapeControls(string(p), t.json, true)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// hasControls reports whether escapeControls would change p (keeping lines).
func hasControls(p []byte) bool { return !utf8.Valid(p) || bytes.ContainsFunc(p, isControl) }

// isControl is a control character other than newline and tab: C0, DEL, C1.
func isControl(r rune) bool {
	return (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f)
}

// escapeControls returns s with its control characters and invalid bytes escaped, as text or as JSON; keepLines
// keeps newlines and tabs.
func escapeControls(s string, json, keepLines bool) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			if json {
				b.WriteString(`\ufffd`)
			} else {
				fmt.Fprintf(&b, `\x%02x`, s[i])
			}
		case keepLines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case !json && (r == '\n' || r == '\t' || r == '\r'):
			b.WriteString(map[rune]string{'\n': `\n`, '\t': `\t`, '\r': `\r`}[r])
		case isControl(r) || r == '\n' || r == '\t':
			if json || r >= 0x80 {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				fmt.Fprintf(&b, `\x%02x`, r)
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// oneLine is s made fit for a place inside one line of text: newlines and tabs are escaped too, so that a server's
// message cannot start lines of its own that look like the caller's.
func oneLine(s string) string { return escapeControls(s, false, false) }
