package main

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes every route NewServer serves; TestOpenAPIMatchesRouter keeps the two in step.
//
//go:embed openapi.json
var openAPIDocument []byte

func handleOpenAPI() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDocument)
	}
}
