package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkWhoAmI is one GET /api/whoami through the app's whole stack (logging, recovery, routing, identity), with
// the headers the proxy sends for a service principal.
func BenchmarkWhoAmI(b *testing.B) {
	h := NewServer(slog.New(slog.NewJSONHandler(io.Discard, nil)), "api-app", newWorkspace(settings{}, nil))
	req := httptest.NewRequest(http.MethodGet, "/api/whoami", nil)
	req.Header = asServicePrincipal()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkBare is the same answer from a bare handler: the floor BenchmarkWhoAmI is compared with.
func BenchmarkBare(b *testing.B) {
	body := []byte(`{"user":"2001@1234567890123456","user_format":"id@workspace","principal_id":"2001","workspace_id":"1234567890123456","kind":"service_principal"}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	req := httptest.NewRequest(http.MethodGet, "/api/whoami", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
