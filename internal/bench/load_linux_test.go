package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The load generator counts a request as failed unless the answer is a 200 with a Content-Length whose body holds the
// expected text.
func TestLoadCountsFailedRequests(t *testing.T) {
	const want = `"user":"7001@1234567890123456"`
	body := `{"user":"7001@1234567890123456","kind":"service_principal"}`
	tests := []struct {
		name    string
		handler http.HandlerFunc
		failed  bool
		errText string
	}{
		{"200 with the body", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }, false, ""},
		{"200, chunked", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, body[:10])
			w.(http.Flusher).Flush()
			io.WriteString(w, body[10:])
		}, true, "does not read"},
		{"200, connection closed after each answer", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, body)
		}, false, ""},
		{"500 with the body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, body)
		}, true, "500"},
		{"200 with another caller", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.ReplaceAll(body, "7001", "7002"))
		}, true, "expected text"},
		{"200 with an empty body", func(w http.ResponseWriter, r *http.Request) {}, true, "expected text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			res, err := load{duration: 100 * time.Millisecond, concurrency: 2}.run(t.Context(), srv.URL, http.Header{}, want)
			require.NoError(t, err)
			require.Positive(t, res.requests)
			if !tt.failed {
				assert.Zero(t, res.errors, "first: %v", res.firstErr)
				return
			}
			assert.Equal(t, res.requests, res.errors)
			assert.ErrorContains(t, res.firstErr, tt.errText)
		})
	}
}

// A server that hangs up without answering, or answers what is not HTTP, fails requests rather than the run.
func TestLoadCountsBrokenConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = bufio.NewReader(conn).ReadString('\n')
				_, _ = io.WriteString(conn, "SSH-2.0-OpenSSH_9.6\r\n\r\n")
			}()
		}
	}()
	res, err := load{duration: 100 * time.Millisecond, concurrency: 2}.run(t.Context(), "http://"+ln.Addr().String(),
		http.Header{}, "x")
	require.NoError(t, err)
	require.Positive(t, res.requests)
	assert.Equal(t, res.requests, res.errors)
}
