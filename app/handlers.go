package main

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

const (
	// maxEchoBody is the largest body POST /api/echo reads.
	maxEchoBody = 1 << 20
	// maxBodiesInFlight bounds the requests with a body the app works on at once (a few MiB each at most), and
	// bodySlotWait how long one over it waits for a slot before the 503. Each takes milliseconds: 2 s absorbs bursts.
	maxBodiesInFlight = 8
	bodySlotWait      = 2 * time.Second
)

func handleHealth(appName string) http.HandlerFunc {
	type response struct {
		Status  string `json:"status"`
		App     string `json:"app"`
		Version string `json:"version"`
	}
	body := response{Status: "ok", App: appName, Version: version}
	return func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.Write(w, http.StatusOK, body)
	}
}

// handleWhoAmI shows the caller the identity the proxy forwarded, and what the forwarded user token allows (its
// claims, never the token).
func handleWhoAmI() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, _ := identity.FromContext(r.Context())
		resp := identity.WhoAmI{Identity: id, AccessTokenForwarded: !id.AccessToken.IsZero()}
		switch {
		case id.AccessToken.IsZero() && id.Kind == identity.KindServicePrincipal:
			resp.AccessTokenNote = "no user access token: the proxy forwards one for users only, never for service principals"
		case id.AccessToken.IsZero():
			resp.AccessTokenNote = "no user access token: user authorization is not enabled for this app (add scopes to it)"
		default:
			claims, err := identity.DecodeClaims(id.AccessToken.Reveal())
			if err != nil {
				resp.AccessTokenNote = "a user access token was forwarded, but it is not a JWT, so it has no claims to show"
			} else {
				resp.AccessTokenClaims = &claims
			}
		}
		jsonhttp.Write(w, http.StatusOK, resp)
	}
}

// handleEcho returns the JSON body it was given, with who sent it.
func handleEcho() http.HandlerFunc {
	type response struct {
		Received json.RawMessage   `json:"received"`
		Caller   identity.Identity `json:"caller"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var body json.RawMessage
		if apiErr := jsonhttp.Decode(w, r, maxEchoBody, &body); apiErr != nil {
			jsonhttp.WriteError(w, apiErr)
			return
		}
		id, _ := identity.FromContext(r.Context())
		jsonhttp.Write(w, http.StatusOK, response{Received: body, Caller: id})
	}
}

func handleNotFound() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.WriteError(w, &jsonhttp.Error{
			Status: http.StatusNotFound, Code: jsonhttp.CodeEndpointNotFound,
			Message: "no endpoint " + r.URL.Path, Fix: "GET /api/openapi.json lists the endpoints",
		})
	}
}

// handleMethodNotAllowed answers 405 with the Allow header RFC 9110 asks for, found by asking the router which
// methods match the path. Every GET route also answers HEAD (middleware.GetHead).
func handleMethodNotAllowed(routes chi.Routes) http.HandlerFunc {
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	return func(w http.ResponseWriter, r *http.Request) {
		for _, m := range methods {
			if routes.Match(chi.NewRouteContext(), m, r.URL.Path) {
				w.Header().Add("Allow", m)
				if m == http.MethodGet {
					w.Header().Add("Allow", http.MethodHead)
				}
			}
		}
		jsonhttp.WriteError(w, &jsonhttp.Error{
			Status: http.StatusMethodNotAllowed, Code: jsonhttp.CodeMethodNotAllowed,
			Message: r.Method + " is not allowed on " + r.URL.Path, Fix: "GET /api/openapi.json lists the methods",
		})
	}
}
