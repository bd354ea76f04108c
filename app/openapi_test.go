package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The OpenAPI document and the router describe the same routes: a route added to one must be added to the other.
func TestOpenAPIMatchesRouter(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(openAPIDocument, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."))

	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	var routed []string
	router := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), "api-app", newWorkspace(settings{}, nil)).(chi.Routes)
	require.NoError(t, chi.Walk(router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routed = append(routed, method+" "+route)
		return nil
	}))
	sort.Strings(documented)
	sort.Strings(routed)
	assert.Equal(t, routed, documented)
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	status, body := call(t, "GET", app.URL+"/api/openapi.json", nil, "")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "paths")
}
