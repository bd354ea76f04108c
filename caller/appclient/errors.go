package appclient

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// StatusError is an answer other than 2xx, after retries and the refresh.
type StatusError struct {
	*Response
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
}

// ErrorBody is the answer's Databricks error body ({"error_code","message"}, as the proxy, the workspace and this
// project's app send it), or nil when the body is something else: then Body is all there is.
func (e *StatusError) ErrorBody() *jsonhttp.Error {
	var b jsonhttp.Error
	if json.Unmarshal(e.Body, &b) != nil || (b.Code == "" && b.Message == "") {
		return nil
	}
	return &b
}

// NetworkError is a request that got no answer: DNS, TCP, TLS, a proxy, a reset or a timeout.
type NetworkError struct {
	Method, URL string
	Err         error
}

func (e *NetworkError) Error() string { return fmt.Sprintf("%s %s: %v", e.Method, e.URL, e.Err) }
func (e *NetworkError) Unwrap() error { return e.Err }

// TooLargeError is an answer over the Client's MaxBody: refused, not cut short, so nobody takes part of an answer
// for all of it.
type TooLargeError struct {
	Method, URL string
	Limit       int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s %s: the answer is larger than %d MiB, the most the caller reads", e.Method, e.URL, e.Limit>>20)
}
