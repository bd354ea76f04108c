package main

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The page needs no identity of its own and answers HEAD like GET; what it shows comes from /api/whoami.
func TestPageServed(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, err := http.NewRequestWithContext(t.Context(), method, app.URL+"/", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'sha256-")
		if method == http.MethodGet {
			assert.Contains(t, string(body), `fetch("/api/whoami"`)
			assert.Contains(t, string(body), "Authorization: Bearer", "it says how scripts call the app")
		}
	}
}
