// Package inflight bounds how many requests a handler works on at once, for handlers whose memory grows with what
// they read or send (a request body, a large answer): without a bound, concurrency multiplies it.
package inflight

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// RetryAfter is what a refused request is told to wait before it tries again.
const RetryAfter = time.Second

// Limit lets at most n requests into next at once. A request over the limit waits up to wait for a slot, then gets
// 503 with Retry-After.
//
// Waiting absorbs a burst: a slot frees within milliseconds, and a waiting request costs little because it has not
// read its body yet. Refusing after wait keeps a saturated app from building a queue whose latency only grows; 503
// with Retry-After is the answer clients already retry (the Databricks SDKs and this project's caller do, the Apps
// proxy passes it on), and it says the request was not processed, so even a POST is safe to send again.
func Limit(n int, wait time.Duration) func(http.Handler) http.Handler {
	slots := make(chan struct{}, n)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case slots <- struct{}{}:
			default:
				timer := time.NewTimer(wait)
				select {
				case slots <- struct{}{}:
					timer.Stop()
				case <-timer.C:
					w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
					jsonhttp.WriteError(w, &jsonhttp.Error{
						Status: http.StatusServiceUnavailable, Code: jsonhttp.CodeUnavailable,
						Message: fmt.Sprintf("busy: %d requests to %s are in progress, the most this server works on at once", n, r.URL.Path),
						Fix:     fmt.Sprintf("retry after %s (the Retry-After header)", RetryAfter),
					})
					return
				case <-r.Context().Done():
					timer.Stop()
					return // the client left; nobody reads an answer
				}
			}
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		})
	}
}
