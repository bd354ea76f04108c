// Package jsonhttp holds the JSON wire conventions shared by the app, the emulator and the caller: how a response is
// written, how a request body is read, and the one error shape they all use.
//
// The error shape is Databricks' own ({"error_code", "message"}), with an optional "fix" telling the reader what to
// do, so a client parses the workspace's errors, the proxy's and the app's alike.
package jsonhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"
)

// Error is an API error as it travels on the wire.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"error_code"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

func (e *Error) Error() string {
	if e.Fix != "" {
		return fmt.Sprintf("%d %s: %s (fix: %s)", e.Status, e.Code, e.Message, e.Fix)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Error codes. The first ones are Databricks' own; the rest name the app's and the proxy's failures.
const (
	CodeNotFound         = "RESOURCE_DOES_NOT_EXIST"
	CodeEndpointNotFound = "ENDPOINT_NOT_FOUND"
	CodeUnauthenticated  = "UNAUTHENTICATED"
	CodePermissionDenied = "PERMISSION_DENIED"
	CodeInvalidParameter = "INVALID_PARAMETER_VALUE"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	CodeTooLarge         = "REQUEST_TOO_LARGE"
	CodeUnsupportedMedia = "UNSUPPORTED_MEDIA_TYPE"
	CodeInternal         = "INTERNAL_ERROR"
	CodeBadGateway       = "BAD_GATEWAY"
	CodeGatewayTimeout   = "GATEWAY_TIMEOUT"
	CodeUnavailable      = "TEMPORARILY_UNAVAILABLE"
)

// buffers holds encoding buffers for reuse: a response is encoded whole before anything is sent, so that an encoding
// error can still become a clean 500, and without the pool each answer allocates its buffer as it grows
// (BenchmarkWhoAmI: 2 allocations and 460 B more per request). Only buffers up to maxPooledBuffer go back: a pool
// keeps what it is given, so one large answer would otherwise pin its buffer for every later small one.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBuffer = 64 << 10

func getBuffer() *bytes.Buffer {
	buf := buffers.Get().(*bytes.Buffer)
	buf.Reset()
	return buf
}

func putBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuffer {
		buffers.Put(buf)
	}
}

// Write sends v as JSON with the given status. It does not escape <, > and & as \u003c, \u003e, \u0026: that is for
// JSON pasted into HTML, and these answers are served as application/json with nosniff. Escaping would make a body of
// '<' six times its size, and "<your user name>" in a fix unreadable.
func Write(w http.ResponseWriter, status int, v any) {
	buf := getBuffer()
	defer putBuffer(buf)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only a programming error gets here: the types we send are all marshallable.
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error_code":"` + CodeInternal + `","message":"could not encode the response"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// WriteError sends e in the shared error shape.
func WriteError(w http.ResponseWriter, e *Error) { Write(w, e.Status, e) }

// Decode reads a JSON request body of at most limit bytes into v. Its errors are ready to send: 415 for a content
// type other than JSON, 413 above the limit (without reading the rest), 400 for anything that is not one JSON value.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any) *Error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia,
			Message: "the body must be JSON", Fix: "send Content-Type: application/json"}
	}
	return DecodeAnyType(w, r, limit, v)
}

// DecodeAnyType is Decode whatever the request's Content-Type, as the Databricks REST APIs read their bodies: `curl
// -d '{…}'` sends application/x-www-form-urlencoded, AppKit's telemetry text/plain. Use it only where the client
// authenticates with a header it sets itself (a bearer token): a page of another site can post such a body with the
// browser's cookies and no preflight, so what a browser session authenticates keeps Decode.
func DecodeAnyType(w http.ResponseWriter, r *http.Request, limit int64, v any) *Error {
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	if err := dec.Decode(v); err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return tooLarge(limit)
		}
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameter, Message: "malformed JSON body: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return tooLarge(limit)
		}
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameter, Message: "malformed JSON body: more than one JSON value"}
	}
	return nil
}

func tooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
		Message: fmt.Sprintf("the body is larger than %d bytes", limit)}
}
