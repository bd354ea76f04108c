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
