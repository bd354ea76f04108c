package workspace

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// Paths of the emulated workspace, as databricks-sdk-go calls them.
const (
	PathHostMetadata  = "/.well-known/databricks-config"
	PathOIDCDiscovery = "/oidc/.well-known/oauth-authorization-server"
	PathAuthorize     = "/oidc/v1/authorize"
	PathToken         = "/oidc/v1/token"
	PathSCIMMe        = "/api/2.0/preview/scim/v2/Me"
	PathApps          = "/api/2.0/apps"
	PathLogin         = "/login.html"
	PathConsent       = "/login/consent"
	PathTelemetry     = "/telemetry-ext"
)

// The emulator's control API: [Workspace.InjectFault], [Workspace.RevokeTokens] and a timed [Workspace.Down] over
// HTTP, for programs that run against `emulator serve` rather than in-process (tests in Python or Node, workshops).
// Its paths are the emulator's own, under /emulator/; no workspace has them.
const (
	PathFaults = "/emulator/v1/faults"
	PathRevoke = "/emulator/v1/revoke"
	PathDown   = "/emulator/v1/down"
)

// isControlPath reports whether path is the emulator's own, which faults never touch.
func isControlPath(path string) bool { return strings.HasPrefix(path, "/emulator/") }

// routes is the whole workspace API surface. Anything else is a 404 in the Databricks error shape. Faults injected
// on purpose play before every handler but the control API's (faults.go).
func (w *Workspace) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(w.countAndLog, w.faults.play)
	r.Get(PathHostMetadata, w.auth.handleHostMetadata())
	r.Get(PathOIDCDiscovery, w.auth.handleOIDCDiscovery())
	r.Get(PathAuthorize, w.auth.handleAuthorize())
	r.Post(PathToken, w.auth.handleToken())
	r.Get(PathLogin, w.sessions.handleLoginPage())
	r.Route(PathIdentityProviders+"/{idp}", w.auth.identityProviderRoutes)
	r.Group(w.control.routes) // the emulator's own: faults, revocations and outages on purpose (control.go)
	r.Group(func(r chi.Router) {
		// The browser sign-in's forms (login.go): refused when posted from another origin, besides their CSRF tokens.
		sameOrigin := http.NewCrossOriginProtection()
		sameOrigin.SetDenyHandler(crossOriginRefused())
		r.Use(sameOrigin.Handler)
		r.Post(PathLogin, w.sessions.handleSignIn())
		r.Post(PathConsent, w.sessions.handleConsent())
	})
	r.Group(func(r chi.Router) {
		r.Use(w.auth.requireToken)
		w.scim.routes(r) // SCIM Me and the directory: users, service principals and groups (scim.go)
		r.Post(PathTelemetry, handleTelemetry())
		r.Group(func(r chi.Router) {
			r.Use(requireScope(ScopeApps))
			w.apps.routes(r)
			w.perms.routes(r)
		})
		r.Group(func(r chi.Router) {
			r.Use(requireScope(ScopeWorkspace))
			w.files.routes(r)
		})
		w.data.routes(r)
		r.Group(func(r chi.Router) {
			r.Use(requireScope(ScopeAllAPIs))
			w.settings.routes(r)
		})
	})
	r.NotFound(func(rw http.ResponseWriter, req *http.Request) {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeEndpointNotFound,
			Message: fmt.Sprintf("No API found for '%s %s'", req.Method, req.URL.Path),
			Fix:     "the emulated workspace serves only the endpoints listed in docs/emulator.md, \"What it serves\""})
	})
	r.MethodNotAllowed(func(rw http.ResponseWriter, req *http.Request) {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusMethodNotAllowed, Code: jsonhttp.CodeMethodNotAllowed,
			Message: fmt.Sprintf("%s is not allowed on %s", req.Method, req.URL.Path)})
	})
	return r
}

// countAndLog counts every request per path and logs it. It logs the path only: queries carry OAuth codes.
func (w *Workspace) countAndLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.counts.add(r.URL.Path)
		rec := middleware.NewWrapResponseWriter(rw, r.ProtoMajor)
		start := time.Now()
		next.ServeHTTP(rec, r)
		w.logger.Info("workspace request", "method", r.Method, "path", r.URL.Path, "status", statusOf(rec),
			"duration", time.Since(start).Round(time.Microsecond))
	})
}

// statusOf is the status a handler answered through rec, chi's wrapper (which has 0 until one is written), for the
// access log: 200 when it wrote nothing.
func statusOf(rec middleware.WrapResponseWriter) int { return cmp.Or(rec.Status(), http.StatusOK) }

// handleTelemetry accepts the usage events the Databricks CLI posts after a deploy, and keeps none.
func handleTelemetry() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		var req struct {
			ProtoLogs []json.RawMessage `json:"protoLogs"`
		}
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxAPIBody, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		jsonhttp.Write(rw, http.StatusOK, map[string]any{"errors": []string{}, "numProtoSuccess": len(req.ProtoLogs)})
	}
}
