package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseAnswer(t *testing.T) {
	const want = `"user":"7001@1"`
	ok := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"user\":\"7001@1\"}"
	tests := []struct {
		name   string
		answer string
		n      int
		keep   bool
		err    error
	}{
		{"a 200 with the text", ok, len(ok), true, nil},
		{"lower-case names, as uvicorn sends", "HTTP/1.1 200 OK\r\ncontent-length: 17\r\n\r\n{\"user\":\"7001@1\"}", 56, true, nil},
		{"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 17\r\n\r\n{\"user\":\"7001@1\"}", 75, false, nil},
		{"a 500", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 17\r\n\r\n{\"user\":\"7001@1\"}", 75, true, errStatus},
		{"another caller", "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"user\":\"7002@1\"}", 56, true, errBadBody},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, false, errFraming},
		{"no Content-Length", "HTTP/1.1 200 OK\r\n\r\n", 0, false, errFraming},
		{"not HTTP", "SSH-2.0-OpenSSH_9.6\r\nbanner\r\n\r\n", 0, false, errFraming},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, keep, err := parseAnswer([]byte(tt.answer), []byte(want))
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err)
			} else {
				assert.NoError(t, err)
			}
			if tt.err != errFraming {
				assert.Equal(t, tt.n, n)
				assert.Equal(t, tt.keep, keep)
			}
		})
	}
}

// Until the whole answer is there, parseAnswer asks for more, whatever byte the answer is cut at.
func TestParseAnswerWaitsForTheWholeAnswer(t *testing.T) {
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"user\":\"7001@1\"}"
	for i := range len(ok) {
		n, _, err := parseAnswer([]byte(ok[:i]), []byte(`"user":"7001@1"`))
		assert.Zero(t, n, "cut at %d", i)
		assert.NoError(t, err, "cut at %d", i)
	}
}

func TestStatusOK(t *testing.T) {
	for line, ok := range map[string]bool{
		"HTTP/1.1 200 OK\r\n": true, "HTTP/1.0 200 OK\r\n": true, "HTTP/1.1 200\r\n": true,
		"HTTP/1.1 2000 OK\r\n": false, "HTTP/1.1 201 Created\r\n": false, "HTTP/1.1 500 OK\r\n": false,
		"HTTP/2 200\r\n": false, "SSH-2.0-OpenSSH\r\n": false, "": false,
	} {
		assert.Equal(t, ok, statusOK([]byte(line)), "%q", line)
	}
}
