package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// requireIdentity builds the caller's Identity from the proxy's headers and refuses requests that carry none: such a
// request reached the app without going through the Databricks Apps proxy.
func requireIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := identity.FromHeaders(r.Header)
		if err != nil {
			jsonhttp.WriteError(w, identityError(err))
			return
		}
		next.ServeHTTP(w, r.WithContext(identity.NewContext(r.Context(), id)))
	})
}

// identityError is the answer to a request whose forwarded headers FromHeaders refused.
func identityError(err error) *jsonhttp.Error {
	var headerErr *identity.HeaderError
	switch {
	case errors.Is(err, identity.ErrNoIdentity):
		return &jsonhttp.Error{
			Status:  http.StatusUnauthorized,
			Code:    jsonhttp.CodeUnauthenticated,
			Message: "this request did not come through the Databricks Apps proxy: it has no " + identity.HeaderUser + " header",
			Fix: "call the app at its Databricks Apps URL with a bearer token; on a laptop, run it behind the emulator " +
				"(go run ./emulator run -- go run ./app) and call the emulator's proxy URL",
		}
	case errors.As(err, &headerErr):
		return &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter, Message: headerErr.Error()}
	}
	panic(err) // FromHeaders returns no other errors
}

// maxLoggedHeader caps the forwarded values copied into a log line, which are logged before they are validated.
const maxLoggedHeader = 128

// logRequests writes one line per request. It logs the proxy's request id and the caller's X-Forwarded-User so a line
// can be matched with the proxy's logs; it never logs other headers, where the user's access token travels.
func logRequests(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", cmp.Or(ww.Status(), http.StatusOK)),
				slog.Duration("duration", time.Since(start)),
				slog.String("request_id", capped(r.Header.Get(identity.HeaderRequestID))),
				slog.String("caller", capped(r.Header.Get(identity.HeaderUser))),
			)
		})
	}
}

func capped(s string) string {
	if len(s) > maxLoggedHeader {
		return s[:maxLoggedHeader] + "…"
	}
	return s
}

// recoverPanics turns a panic into a 500 with no internals in the body; the stack goes to the log.
func recoverPanics(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				rec := recover()
				if rec == nil {
					return
				}
				if rec == http.ErrAbortHandler {
					panic(rec) // the server's own signal to drop the connection
				}
				logger.Error("panic", "path", r.URL.Path, "panic", fmt.Sprintf("%T", rec), "stack", string(debug.Stack()))
				jsonhttp.WriteError(w, &jsonhttp.Error{
					Status: http.StatusInternalServerError, Code: jsonhttp.CodeInternal,
					Message: "the app failed to handle this request; the app's log has the details",
				})
			}()
			next.ServeHTTP(w, r)
		})
	}
}
