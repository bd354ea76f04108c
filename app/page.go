package main

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
)

// pageHTML is the app's one page: it shows a person in a browser who the proxy says they are, by calling
// /api/whoami with their session. Plain HTML and a few lines of script, so there is nothing to build.
//
//go:embed page.html
var pageHTML []byte

// pagePolicy lets the page run its own inline script, named by its hash, and fetch from the app, and nothing else:
// no other script, no framing by another site.
var pagePolicy = func() string {
	_, script, _ := bytes.Cut(pageHTML, []byte("<script>"))
	script, _, _ = bytes.Cut(script, []byte("</script>"))
	sum := sha256.Sum256(script)
	return "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}()

// handlePage serves the page. It needs no identity itself: the script's /api/whoami call does, and says so.
func handlePage() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", pagePolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(pageHTML)
	}
}
