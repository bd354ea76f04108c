package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/databricks/databricks-sdk-go/service/iam"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// The scope SCIM Me needs on the user's forwarded token.
const meScope = "iam.current-user:read"

// principal is the workspace's answer to SCIM Me, trimmed to what a caller wants to see.
type principal struct {
	ID          string   `json:"id"`
	UserName    string   `json:"user_name"`
	DisplayName string   `json:"display_name,omitempty"`
	Emails      []string `json:"emails,omitempty"`
}

// handleMe asks the workspace who the caller is twice, side by side: on behalf of the user, with the token the proxy
// forwarded (user authorization), and as the app's own service principal (app authorization).
func handleMe(logger *slog.Logger, ws *workspace) http.HandlerFunc {
	type response struct {
		OnBehalfOfUser      principal  `json:"on_behalf_of_user"`
		AppServicePrincipal *principal `json:"app_service_principal"`
		AppNote             string     `json:"app_service_principal_note,omitempty"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		id, _ := identity.FromContext(r.Context())
		if id.AccessToken.IsZero() {
			jsonhttp.WriteError(w, noUserToken(id))
			return
		}
		if ws.host == "" {
			jsonhttp.WriteError(w, &jsonhttp.Error{
				Status: http.StatusServiceUnavailable, Code: jsonhttp.CodeUnavailable,
				Message: "the app does not know its workspace: DATABRICKS_HOST is not set",
				Fix:     "run the app on Databricks, or under the emulator (go run ./emulator run -- go run ./app)",
			})
			return
		}

		// The two calls are independent; make them together so the caller waits for the slower, not the sum.
		appDone := make(chan struct{})
		var app *iam.User
		var appErr error
		go func() {
			defer close(appDone)
			app, appErr = ws.meAsApp(r.Context())
		}()
		user, userErr := ws.meAsUser(r.Context(), id.AccessToken.Reveal())
		<-appDone

		if userErr != nil {
			apiErr := workspaceError("on behalf of the user", userErr, id.AccessToken)
			logger.WarnContext(r.Context(), "scim me as user", "status", apiErr.Status, "error", apiErr.Message)
			jsonhttp.WriteError(w, apiErr)
			return
		}
		resp := response{OnBehalfOfUser: toPrincipal(user)}
		switch {
		case errors.Is(appErr, errNotConfigured):
			resp.AppNote = errNotConfigured.Error()
		case appErr != nil:
			apiErr := appCredentialsError(appErr)
			logger.WarnContext(r.Context(), "scim me as app", "status", apiErr.Status, "error", apiErr.Message)
			jsonhttp.WriteError(w, apiErr)
			return
		default:
			p := toPrincipal(app)
			resp.AppServicePrincipal = &p
		}
		jsonhttp.Write(w, http.StatusOK, resp)
	}
}

func noUserToken(id identity.Identity) *jsonhttp.Error {
	e := &jsonhttp.Error{
		Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
		Message: "user authorization is not enabled for this app: the proxy forwarded no " + identity.HeaderAccessToken,
		Fix: "add user authorization scopes to the app (at least " + meScope + "), for example: " +
			`databricks apps update <app-name> --json '{"user_api_scopes":["` + meScope + `","sql"]}'`,
	}
	if id.Kind == identity.KindServicePrincipal {
		e.Message = "the caller is a service principal: the proxy forwards a user access token for users only"
		e.Fix = "call /api/me as a user (U2M), or use the app's own identity for service principals"
	}
	return e
}

func toPrincipal(u *iam.User) principal {
	p := principal{ID: u.Id, UserName: u.UserName, DisplayName: u.DisplayName}
	for _, e := range u.Emails {
		p.Emails = append(p.Emails, e.Value)
	}
	return p
}

// appCredentialsError reports a failed call as the app's own service principal. It is always 502: whatever the
// workspace said, the caller's credentials are not at fault, and a 401 or 403 passed on would send the caller off to
// refresh a token that is fine.
func appCredentialsError(err error) *jsonhttp.Error {
	e := workspaceError("as the app's service principal", err, "")
	e.Status, e.Code = http.StatusBadGateway, jsonhttp.CodeBadGateway
	e.Fix = "the app's own credentials (DATABRICKS_CLIENT_ID, DATABRICKS_CLIENT_SECRET) or its service principal's " +
		"permissions are at fault, not the caller's: see the app's logs"
	return e
}

// workspaceError maps a failed workspace call to what the app answers: the workspace's own 401 and 403 pass through,
// other workspace answers become 502 with their status named, and an unreachable workspace is 502 (504 on timeout).
// The token is scrubbed from the message in case an error ever quotes it.
func workspaceError(as string, err error, token identity.Token) *jsonhttp.Error {
	scrub := func(s string) string {
		if !token.IsZero() {
			s = strings.ReplaceAll(s, token.Reveal(), "[REDACTED]")
		}
		return s
	}
	var apiErr *apierr.APIError
	switch {
	case errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusUnauthorized || apiErr.StatusCode == http.StatusForbidden):
		code := jsonhttp.CodeUnauthenticated
		fix := "the token may be expired or revoked: call again to get a fresh one from the proxy"
		if apiErr.StatusCode == http.StatusForbidden {
			code = jsonhttp.CodePermissionDenied
			fix = "the token lacks the scope this call needs (" + meScope + "): add it to the app's user authorization scopes"
		}
		return &jsonhttp.Error{Status: apiErr.StatusCode, Code: code,
			Message: fmt.Sprintf("the workspace refused SCIM Me %s: %s", as, scrub(apiErr.Message)), Fix: fix}
	case errors.As(err, &apiErr):
		return &jsonhttp.Error{Status: http.StatusBadGateway, Code: jsonhttp.CodeBadGateway,
			Message: fmt.Sprintf("the workspace answered SCIM Me %s with %d: %s", as, apiErr.StatusCode, scrub(apiErr.Message))}
	case errors.Is(err, context.DeadlineExceeded):
		return &jsonhttp.Error{Status: http.StatusGatewayTimeout, Code: jsonhttp.CodeGatewayTimeout,
			Message: "the workspace did not answer SCIM Me " + as + " in time"}
	default:
		return &jsonhttp.Error{Status: http.StatusBadGateway, Code: jsonhttp.CodeBadGateway,
			Message: fmt.Sprintf("could not reach the workspace for SCIM Me %s: %s", as, scrub(err.Error())),
			Fix:     "check DATABRICKS_HOST and that the workspace is reachable from the app"}
	}
}
