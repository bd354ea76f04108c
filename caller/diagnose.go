package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// This file turns a failed call into the troubleshooting list of the documentation page, made specific: which
// principal, which scopes are missing, which command grants CAN USE.

// statusFailure explains a non-2xx answer.
func statusFailure(ctx context.Context, c *client, resp *response, t *target) *failure {
	f := &failure{Status: resp.status, Response: appErrorBody(resp.body)}
	who := fmt.Sprintf("%s (%s mode, auth type %s)", c.creds.principal, c.creds.mode, orDefault(c.creds.authType(), "unknown"))
	switch {
	case resp.status >= 300 && resp.status < 400:
		f.Code = exitAuth
		f.Summary = fmt.Sprintf("not authenticated: the proxy sent you to the login page (%d to %s) for %s %s",
			resp.status, redactURL(resp.header.Get("Location")), resp.method, resp.url)
		f.Checks = append([]string{
			"the request carries an OAuth token the proxy accepts: U2M (`databricks auth login`) or M2M (a service principal); " +
				"personal access tokens and Azure Entra tokens get the login page",
			"the path is under /api/: the proxy accepts bearer tokens on /api/ routes only",
		}, tokenChecks(ctx, c, t)...)
	case resp.status == http.StatusUnauthorized:
		f.Code = exitAuth
		f.Summary = fmt.Sprintf("401 Unauthorized from %s %s: the token of %s was not accepted", resp.method, resp.url, who)
		if resp.refreshed {
			f.Summary += ", even after a refresh"
		}
		f.Checks = tokenChecks(ctx, c, t)
	case resp.status == http.StatusForbidden:
		f.Code = exitPermission
		f.Summary = fmt.Sprintf("403 Forbidden from %s %s: %s may not use %s", resp.method, resp.url, who, appLabel(t))
		// Both items of the page apply; the one the answer points at goes first.
		f.Checks = []string{canUseCheck(ctx, c, t)}
		if s := scopeCheck(ctx, c, t, f.Response); s != "" {
			f.Checks = append(f.Checks, s)
			if f.Response != nil && strings.Contains(strings.ToLower(f.Response.Message), "scope") {
				f.Checks[0], f.Checks[1] = f.Checks[1], f.Checks[0]
			}
		}
	case resp.status == http.StatusNotFound:
		f.Code = exitNotFound
		f.Summary = fmt.Sprintf("404 Not Found from %s %s", resp.method, resp.url)
		path := "the path"
		if u, err := url.Parse(resp.url); err == nil {
			path = u.Path
		}
		f.Checks = []string{
			"the endpoint path exists in the app: " + path + " (the app's routes are under /api/)",
			fmt.Sprintf("the app id and workspace URL are right: %s is %s", appLabel(t), hostOf(resp.url)),
		}
		if t != nil && t.app != nil {
			f.Checks = append(f.Checks, "the app is deployed and running: the Apps API says "+t.app.AppStatus.State)
		} else {
			f.Checks = append(f.Checks, "the app is deployed and running: `databricks apps get "+orDefault(t.nameOrEmpty(), "<app-name>")+"`")
		}
	default:
		f.Code = exitServer
		f.Summary = fmt.Sprintf("%d %s from %s %s", resp.status, http.StatusText(resp.status), resp.method, resp.url)
		if resp.attempts > 1 {
			f.Summary += fmt.Sprintf(" (after %d attempts)", resp.attempts)
		}
		if resp.status == http.StatusGatewayTimeout {
			f.Checks = []string{"the app answers within 120 s: the Apps proxy gives up after that"}
		}
		if resp.status == http.StatusBadGateway || resp.status == http.StatusServiceUnavailable {
			f.Checks = []string{"the app is running and listening on DATABRICKS_APP_PORT: `databricks apps logs " + orDefault(t.nameOrEmpty(), "<app-name>") + "`"}
		}
	}
	return f
}

// tokenChecks are the page's 401 items: the token is valid, the profile is set up, the token has not expired, it
// carries the scopes the app needs.
func tokenChecks(ctx context.Context, c *client, t *target) []string {
	var checks []string
	switch c.creds.mode {
	case ModeLocal, ModeAuto:
		p := orDefault(c.creds.profile, "DEFAULT")
		checks = append(checks,
			"the token is valid: `databricks auth token --profile "+p+"` prints one",
			"the profile is set up: "+c.creds.loginHint)
	default:
		checks = append(checks, "the token is valid: "+c.creds.loginHint)
	}
	claims, ok := tokenClaims(ctx, c)
	switch {
	case !ok:
		checks = append(checks, "the token has not expired (it is not a JWT, so the caller cannot tell)")
	case !claims.ExpiresAt.IsZero() && claims.ExpiresAt.Before(time.Now()):
		checks = append(checks, fmt.Sprintf("the token has not expired: it EXPIRED at %s; log in again: %s",
			claims.ExpiresAt.Format(time.RFC3339), c.creds.loginHint))
	case !claims.ExpiresAt.IsZero():
		checks = append(checks, "the token has not expired: ok, it is valid until "+claims.ExpiresAt.Format(time.RFC3339))
	}
	if s := scopeCheck(ctx, c, t, nil); s != "" {
		checks = append(checks, s)
	}
	return checks
}

// scopeCheck compares the token's scopes with the app's user_api_scopes (when the app was read) and with the
// scopes an error message names. User authorization scopes apply to users' tokens only: for a service principal
// there is nothing to check.
func scopeCheck(ctx context.Context, c *client, t *target, body *jsonhttp.Error) string {
	if c.creds.servicePrincipalID() != "" {
		return ""
	}
	claims, ok := tokenClaims(ctx, c)
	var need []string
	if t != nil && t.app != nil {
		need = t.app.UserAPIScopes
	}
	have := "unknown scopes (not a JWT)"
	if ok {
		have = "scopes [" + strings.Join(claims.Scopes, " ") + "]"
	}
	missing := need
	if ok {
		missing = missingScopes(claims.Scopes, need)
	}
	fix := "get a token with them: " + loginCommand(c.creds.profile, orDefault(c.creds.hostOrEmpty(), "https://<workspace-url>"), orScopes(need))
	if len(need) == 0 {
		fix += " (the example scopes of the page: use the app's, from `databricks apps get <app-name>`)"
	}
	switch {
	case len(need) > 0 && len(missing) > 0:
		return fmt.Sprintf("the token carries the OAuth scopes the app needs: it has %s, the app's user authorization needs [%s], missing [%s]; %s",
			have, strings.Join(need, " "), strings.Join(missing, " "), fix)
	case len(need) > 0:
		return fmt.Sprintf("the token carries the OAuth scopes the app needs: ok, it has %s for [%s]", have, strings.Join(need, " "))
	case body != nil && strings.Contains(strings.ToLower(body.Message), "scope"):
		return fmt.Sprintf("the token carries the OAuth scopes the app needs: the answer says some are missing; it has %s; %s", have, fix)
	default:
		return fmt.Sprintf("the token carries the OAuth scopes the app needs: it has %s; the CLI and SDK ask for all-apis only, "+
			"which may not be enough for an app with user authorization (pass --app NAME to compare with its scopes)", have)
	}
}

func orScopes(s []string) []string {
	if len(s) == 0 {
		return []string{"sql", "file.files", "dashboards.genie"}
	}
	return s
}

// missingScopes is need minus have. all-apis is not taken to cover user-authorization scopes: the page warns that it
// may not be enough.
func missingScopes(have, need []string) []string {
	var missing []string
	for _, s := range need {
		if !slices.Contains(have, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

func tokenClaims(ctx context.Context, c *client) (identity.TokenClaims, bool) {
	tok, _, err := c.creds.token(ctx)
	if err != nil {
		return identity.TokenClaims{}, false
	}
	claims, err := identity.DecodeClaims(tok.Reveal())
	return claims, err == nil
}

// canUseCheck names the principal and the command that grants it CAN USE on the app.
func canUseCheck(ctx context.Context, c *client, t *target) string {
	kind, name := principalName(ctx, c)
	app := orDefault(t.nameOrEmpty(), "<app-name>")
	acl, _ := json.Marshal(map[string]any{"access_control_list": []map[string]string{{kind: name, "permission_level": "CAN_USE"}}})
	return fmt.Sprintf("%s has CAN USE on %s: an app manager grants it with `databricks apps update-permissions %s --json '%s'`",
		name, appLabel(t), app, acl)
}

// principalName is how an access control list names the caller: user_name for a user, service_principal_name (the
// application id) for a service principal. It asks SCIM Me when the configuration alone does not say.
func principalName(ctx context.Context, c *client) (kind, name string) {
	if id := c.creds.servicePrincipalID(); id != "" {
		return "service_principal_name", shownClientID(id)
	}
	host, err := c.creds.workspaceHost(ctx)
	if err != nil {
		return "user_name", "<your user name>"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+"/api/2.0/preview/scim/v2/Me", nil)
	if err != nil {
		return "user_name", "<your user name>"
	}
	if err := c.creds.authenticate(ctx, req); err != nil {
		return "user_name", "<your user name>"
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "user_name", "<your user name>"
	}
	defer resp.Body.Close()
	var me struct {
		UserName      string `json:"userName"`
		ApplicationID string `json:"applicationId"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&me) != nil || me.UserName == "" {
		return "user_name", "<your user name>"
	}
	if me.ApplicationID != "" || !strings.Contains(me.UserName, "@") {
		return "service_principal_name", orDefault(me.ApplicationID, me.UserName)
	}
	return "user_name", me.UserName
}

// networkFailure explains a request that got no answer: the page's network items, plus what failed.
func networkFailure(ctx context.Context, c *client, u string, err error) *failure {
	host := hostOf(u)
	f := &failure{Code: exitNetwork}
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		f.Summary = fmt.Sprintf("timed out calling %s (--timeout)", u)
	case isDNS(err):
		f.Summary = fmt.Sprintf("cannot resolve %s: %v", host, err)
	case isRefused(err):
		f.Summary = fmt.Sprintf("nothing is listening at %s (connection refused)", host)
	case errors.As(err, &certErr) || errors.As(err, &unknownAuthority) || errors.As(err, &recordErr):
		f.Summary = fmt.Sprintf("TLS with %s failed: %v", host, err)
	default:
		f.Summary = fmt.Sprintf("cannot reach %s: %v", host, err)
	}
	f.Checks = []string{
		"your network allows outbound HTTPS to " + host,
		"*.databricksapps.com (and the workspace) resolve and are reachable from here: `curl -sI " + u + "`",
		proxyCheck(c, u),
	}
	return f
}

// proxyCheck says whether an organisation proxy is configured for u.
func proxyCheck(c *client, u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "an organisation proxy, if you must use one, is set in HTTPS_PROXY"
	}
	proxy, err := c.proxy(pu)
	switch {
	case err != nil:
		return "the proxy settings are valid: " + err.Error()
	case proxy != nil:
		return "the organisation proxy " + proxy.Redacted() + " (HTTPS_PROXY) lets this host through"
	default:
		return "no proxy is used for this host: if your organisation requires one, set HTTPS_PROXY (and NO_PROXY)"
	}
}

func appLabel(t *target) string {
	if n := t.nameOrEmpty(); n != "" {
		return "app " + n
	}
	if t != nil && t.base != nil {
		return "the app at " + t.base.String()
	}
	return "the app"
}

// redactURL drops the query of a login URL: it may carry state the caller has no reason to print.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return "(no Location)"
	}
	u.RawQuery = ""
	return u.String()
}
