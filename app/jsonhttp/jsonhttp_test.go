package jsonhttp

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// <, > and & are written as they are: escaping them (for JSON inside HTML) made a body of '<' six times its size.
func TestWriteDoesNotEscapeHTML(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	WriteError(rec, &Error{Status: http.StatusForbidden, Code: CodePermissionDenied, Message: "a < b && c > d",
		Fix: "databricks apps update-permissions my-app --json '{\"user_name\": \"<your user name>\"}'"})
	assert.Equal(t, `{"error_code":"PERMISSION_DENIED","message":"a < b && c > d",`+
		`"fix":"databricks apps update-permissions my-app --json '{\"user_name\": \"<your user name>\"}'"}`+"\n", rec.Body.String())

	rec = httptest.NewRecorder()
	Write(rec, http.StatusOK, strings.Repeat("<", 1000))
	assert.Equal(t, 1000+3, rec.Body.Len())
}

// A buffer that grew for a large answer is not kept: the pool would hold it for the rest of the process.
func TestLargeBuffersAreNotPooled(t *testing.T) {
	t.Parallel()
	for range 20 {
		large := getBuffer()
		large.Write(bytes.Repeat([]byte{'x'}, 4*maxPooledBuffer))
		putBuffer(large)
		assert.LessOrEqual(t, getBuffer().Cap(), maxPooledBuffer)
	}
	small := getBuffer()
	small.WriteString("{}")
	putBuffer(small) // small ones are reused
}

// Decode wants application/json; DecodeAnyType reads the same body whatever its type, with the same limits.
func TestDecodeAndDecodeAnyType(t *testing.T) {
	tests := []struct {
		contentType, body string
		decode, anyType   int // 0: decoded
	}{
		{"application/json", `{"a":1}`, 0, 0},
		{"application/json; charset=utf-8", `{"a":1}`, 0, 0},
		{"", `{"a":1}`, http.StatusUnsupportedMediaType, 0},
		{"text/plain", `{"a":1}`, http.StatusUnsupportedMediaType, 0},
		{"application/x-www-form-urlencoded", `{"a":1}`, http.StatusUnsupportedMediaType, 0},
		{"text/plain", `a=1`, http.StatusUnsupportedMediaType, http.StatusBadRequest},
		{"text/plain", `{"a":"` + strings.Repeat("x", 100) + `"}`, http.StatusUnsupportedMediaType, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		for _, d := range []struct {
			decode func(http.ResponseWriter, *http.Request, int64, any) *Error
			want   int
		}{{Decode, tt.decode}, {DecodeAnyType, tt.anyType}} {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			var v map[string]any
			status := 0
			if err := d.decode(httptest.NewRecorder(), r, 64, &v); err != nil {
				status = err.Status
			}
			assert.Equal(t, d.want, status, "%q %s", tt.contentType, tt.body)
		}
	}
}
