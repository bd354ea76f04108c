package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/databricks/databricks-sdk-go/apierr"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// loginWithScopes is how a user gets a token with the app's scopes, for the fixes below.
const loginWithScopes = "databricks auth login --profile <profile> --scopes sql,file.files,dashboards.genie"

var (
	// missingScope reads the scope out of the workspace's "Provided OAuth token does not have required scopes: X".
	missingScope = regexp.MustCompile(`required scopes?: ([A-Za-z0-9._:-]+)`)
	// missingPrivilege reads Unity Catalog's "User does not have SELECT on Table 'samples.sales.orders'."
	missingPrivilege = regexp.MustCompile(`does not have ([A-Z_ ]+?) on (\w+) '([^']+)'`)
)

// workspaceError maps a failed workspace call made as someone (as) to what the app answers, always with a fix:
// a refusal passes through with the workspace's status (401, 403, 404) and says what would lift it (the scope to add
// and log in with, the grant to ask for); a statement the warehouse ran and failed is 400 if the statement is at
// fault and 403 if a privilege is missing; anything else is 502 (504 on a timeout). The token is scrubbed from every
// message in case one ever quotes it.
func workspaceError(as string, err error, token identity.Token) *jsonhttp.Error {
	scrub := func(s string) string {
		if !token.IsZero() {
			s = strings.ReplaceAll(s, token.Reveal(), "[REDACTED]")
		}
		return s
	}
	var apiErr *apierr.APIError
	var stmtErr *statementError
	switch {
	case errors.Is(err, errNoWarehouse):
		return &jsonhttp.Error{Status: http.StatusServiceUnavailable, Code: jsonhttp.CodeUnavailable, Message: err.Error(),
			Fix: "give the app a sql_warehouse resource with the key sql-warehouse: app.yaml reads WAREHOUSE_ID from it"}
	case errors.As(err, &stmtErr):
		return statementFailure(as, stmtErr, scrub)
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusForbidden:
		e := &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
			Message: fmt.Sprintf("the workspace refused the call %s: %s", as, scrub(apiErr.Message)),
			Fix:     "a permission is missing: see the message, and ask an owner of the object to grant it"}
		if m := missingScope.FindStringSubmatch(apiErr.Message); m != nil {
			e.Fix = fmt.Sprintf("the user's token lacks the scope %s: add it to the app's user authorization scopes, "+
				"and log in with it: %s", m[1], loginWithScopes)
		}
		return e
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized:
		return &jsonhttp.Error{Status: http.StatusUnauthorized, Code: jsonhttp.CodeUnauthenticated,
			Message: fmt.Sprintf("the workspace refused the call %s: %s", as, scrub(apiErr.Message)),
			Fix:     "the token may be expired or revoked: call again to get a fresh one from the proxy"}
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound:
		return &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
			Message: fmt.Sprintf("the workspace found nothing %s: %s", as, scrub(apiErr.Message)),
			Fix:     "check the name; an object you may not see is not found either"}
	case errors.As(err, &apiErr):
		return &jsonhttp.Error{Status: http.StatusBadGateway, Code: jsonhttp.CodeBadGateway,
			Message: fmt.Sprintf("the workspace answered the call %s with %d: %s", as, apiErr.StatusCode, scrub(apiErr.Message))}
	case errors.Is(err, context.DeadlineExceeded):
		return &jsonhttp.Error{Status: http.StatusGatewayTimeout, Code: jsonhttp.CodeGatewayTimeout,
			Message: "the workspace did not answer the call " + as + " in time"}
	default:
		return &jsonhttp.Error{Status: http.StatusBadGateway, Code: jsonhttp.CodeBadGateway,
			Message: fmt.Sprintf("could not reach the workspace for the call %s: %s", as, scrub(err.Error())),
			Fix:     "check DATABRICKS_HOST and that the workspace is reachable from the app"}
	}
}

// statementFailure explains a statement that did not succeed.
func statementFailure(as string, e *statementError, scrub func(string) string) *jsonhttp.Error {
	msg := fmt.Sprintf("the SQL statement run %s %s: %s", as, strings.ToLower(string(e.state)), scrub(e.message))
	if m := missingPrivilege.FindStringSubmatch(e.message); m != nil && strings.Contains(e.message, "INSUFFICIENT_PERMISSIONS") {
		privilege, kind, object := m[1], strings.ToUpper(m[2]), m[3]
		return &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied, Message: msg,
			Fix: fmt.Sprintf("an owner of %s grants it: GRANT %s ON %s %s TO `<principal>`, or databricks grants update %s %s "+
				`--json '{"changes":[{"principal":"<principal>","add":["%s"]}]}'`, object, privilege, kind, object,
				strings.ToLower(kind), object, strings.ReplaceAll(privilege, " ", "_"))}
	}
	return &jsonhttp.Error{Status: http.StatusBadGateway, Code: jsonhttp.CodeBadGateway, Message: msg,
		Fix: "the app's statement failed on the warehouse: see the app's logs"}
}

// appCredentialsError reports a failed call as the app's own service principal. It is always 502: whatever the
// workspace said, the caller's credentials are not at fault, and a 401 or 403 passed on would send the caller off to
// refresh a token that is fine.
func appCredentialsError(err error) *jsonhttp.Error {
	e := workspaceError("as the app's service principal", err, "")
	e.Status, e.Code = http.StatusBadGateway, jsonhttp.CodeBadGateway
	e.Fix = "the app's own credentials (DATABRICKS_CLIENT_ID, DATABRICKS_CLIENT_SECRET), resources or its service " +
		"principal's permissions are at fault, not the caller's: see the app's logs. " + e.Fix
	return e
}
