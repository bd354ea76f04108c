package main

import (
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/databricks-sample/go-apps-api/app/inflight"
)

// NewServer builds the app's whole HTTP surface. Every endpoint lives under /api/: the Databricks Apps proxy accepts
// bearer tokens on /api/ routes only, so that is where an API app's endpoints belong. The one page, at /, is for a
// person in a browser, whose session the proxy accepts on every path. Routes are spelt in full rather than in an
// r.Route("/api", …) sub-router, which routes every request twice: BenchmarkWhoAmI measures 5 allocations and 380 B
// more per request with one (26 against 21), an eighth of what the app allocates per request under make bench's load.
func NewServer(logger *slog.Logger, appName string, ws *workspace) http.Handler {
	// Routes that read a body share one bound on how many they work on at once: each holds its body, decoded and
	// encoded again, so without it memory grows with concurrency.
	limitBodies := inflight.Limit(maxBodiesInFlight, bodySlotWait)

	r := chi.NewRouter()
	// GetHead answers HEAD on every GET route as GET does; net/http drops the body.
	r.Use(logRequests(logger), recoverPanics(logger), middleware.GetHead)
	r.NotFound(handleNotFound())
	r.MethodNotAllowed(handleMethodNotAllowed(r))

	r.Get("/", handlePage())
	r.Get("/api/health", handleHealth(appName))
	r.Get("/api/openapi.json", handleOpenAPI())
	r.Group(func(r chi.Router) {
		r.Use(requireIdentity)
		r.Get("/api/whoami", handleWhoAmI())
		r.With(limitBodies).Post("/api/echo", handleEcho())
		r.Get("/api/me", handleMe(logger, ws))
		r.Get("/api/orders", handleOrders(logger, ws))
		r.Get("/api/reports", handleReports(ws))
		r.Get("/api/reports/{name}", handleReport(ws))
		r.Get("/api/genie/spaces", handleGenieSpaces(ws))
	})
	return r
}
