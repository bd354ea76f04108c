package main

import (
	"log/slog"
	"net/http"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// principal is who the workspace says a call ran as.
type principal struct {
	UserName string `json:"user_name"`
}

// handleMe asks the workspace who the caller is, twice, side by side: on behalf of the user, with the token the
// proxy forwarded (user authorization), and as the app's own service principal (app authorization). It asks the SQL
// warehouse (SELECT current_user()), which the scope sql allows, so the app needs no scope the documentation page
// does not name.
func handleMe(logger *slog.Logger, ws *workspace) http.HandlerFunc {
	type response struct {
		OnBehalfOfUser      principal  `json:"on_behalf_of_user"`
		AppServicePrincipal *principal `json:"app_service_principal"`
		AppNote             string     `json:"app_service_principal_note,omitempty"`
	}
	const whoAmI = "SELECT current_user() AS user_name"
	return func(w http.ResponseWriter, r *http.Request) {
		user, appSide, apiErr := ws.sideBySide(r, logger, false, func(c caller) (*queryResult, error) {
			return ws.query(r.Context(), c, whoAmI)
		})
		if apiErr != nil {
			jsonhttp.WriteError(w, apiErr)
			return
		}
		resp := response{OnBehalfOfUser: principal{UserName: user.first("user_name")}}
		if appSide.note != "" {
			resp.AppNote = appSide.note
		} else {
			resp.AppServicePrincipal = &principal{UserName: appSide.result.first("user_name")}
		}
		jsonhttp.Write(w, http.StatusOK, resp)
	}
}

// noUserToken is the answer of an endpoint that works on behalf of the user when the proxy forwarded no token.
func noUserToken(id identity.Identity) *jsonhttp.Error {
	e := &jsonhttp.Error{
		Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
		Message: "user authorization is not enabled for this app: the proxy forwarded no " + identity.HeaderAccessToken,
		Fix: "add user authorization scopes to the app, for example: " +
			`databricks apps update <app-name> --json '{"user_api_scopes":["sql","file.files","dashboards.genie"]}'`,
	}
	if id.Kind == identity.KindServicePrincipal {
		e.Message = "the caller is a service principal: the proxy forwards a user access token for users only"
		e.Fix = "call this endpoint as a user (U2M), or use the app's own identity for service principals"
	}
	return e
}
