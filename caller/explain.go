package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/caller/appclient"
)

// This file is the one place that turns an error into the troubleshooting list of the documentation page, made
// specific: which principal, which scopes are missing, which command grants CAN USE. Failed calls and doctor both
// use it.

// explain turns any error of a call to the app t into a failure.
func (s *session) explain(ctx context.Context, err error, t *appclient.Target) *failure {
	var f *failure
	var status *appclient.StatusError
	var network *appclient.NetworkError
	var tooLarge *appclient.TooLargeError
	switch {
	case errors.As(err, &f):
		return f
	case errors.As(err, &status):
		return s.statusFailure(ctx, status.Response, t)
	case errors.As(err, &network):
		return s.networkFailure(ctx, network.URL, network.Err)
	case errors.As(err, &tooLarge):
		return &failure{Code: exitServer, Summary: tooLarge.Error(),
			Checks: []string{"the app answers this path with less: a page of results, or a narrower query"}}
	}
	return asFailure(ctx, err)
}

// maxShownBody bounds how much of an app's own error body the failure text quotes.
const maxShownBody = 2000

// statusFailure explains a non-2xx answer.
func (s *session) statusFailure(ctx context.Context, resp *appclient.Response, t *appclient.Target) *failure {
	se := &appclient.StatusError{Response: resp}
	f := &failure{Status: resp.Status, Response: se.ErrorBody()}
	// Any other body is the app's own answer: shown as it came. Not a redirect's, which quotes the login URL's query.
	if f.Response == nil && len(resp.Body) > 0 && (resp.Status < 300 || resp.Status > 399) {
		f.Body = bodyJSON(resp.Body)
		f.bodyText = string(resp.Body)
	}
	c := s.creds
	who := fmt.Sprintf("%s (%s mode, auth type %s)", c.principal, c.mode, cmp.Or(c.authType(), "unknown"))
	switch {
	case resp.Status >= 300 && resp.Status < 400:
		f.Code = exitAuth
		f.Summary = fmt.Sprintf("not authenticated: the proxy sent you to the login page (%d to %s) for %s %s",
			resp.Status, redactURL(resp.Header.Get("Location")), resp.Method, resp.URL)
		f.Checks = append([]string{
			"the request carries an OAuth token the proxy accepts: U2M (`databricks auth login`) or M2M (a service principal); " +
				"personal access tokens and Azure Entra tokens get the login page",
			"the path is under /api/: the proxy accepts bearer tokens on /api/ routes only",
		}, s.tokenChecks(ctx, t)...)
	case resp.Status == http.StatusUnauthorized:
		f.Code = exitAuth
		f.Summary = fmt.Sprintf("401 Unauthorized from %s %s: the token of %s was not accepted", resp.Method, resp.URL, who)
		if resp.Refreshed {
			f.Summary += ", even after a refresh"
		}
		f.Checks = s.tokenChecks(ctx, t)
	case resp.Status == http.StatusForbidden:
		f.Code = exitPermission
		f.Summary = fmt.Sprintf("403 Forbidden from %s %s: %s may not use %s", resp.Method, resp.URL, who, appLabel(t))
		// Both items of the page apply; the one the answer points at goes first.
		f.Checks = []string{s.canUseCheck(ctx, t)}
		if line := s.scopes(ctx, t).checkLine(s, f.Response); line != "" {
			f.Checks = append(f.Checks, line)
			if f.Response != nil && strings.Contains(strings.ToLower(f.Response.Message), "scope") {
				f.Checks[0], f.Checks[1] = f.Checks[1], f.Checks[0]
			}
		}
	case resp.Status == http.StatusNotFound:
		f.Code = exitNotFound
		f.Summary = fmt.Sprintf("404 Not Found from %s %s", resp.Method, resp.URL)
		path := "the path"
		if u, err := url.Parse(resp.URL); err == nil {
			path = u.Path
		}
		f.Checks = []string{
			"the endpoint path exists in the app: " + path + " (the app's routes are under /api/)",
			fmt.Sprintf("the app id and workspace URL are right: %s is %s", appLabel(t), hostOf(resp.URL)),
		}
		if t != nil && t.App != nil {
			f.Checks = append(f.Checks, "the app is deployed and running: the Apps API says "+t.State())
		} else {
			f.Checks = append(f.Checks, "the app is deployed and running: `databricks apps get "+cmp.Or(t.NameOrEmpty(), "<app-name>")+"`")
		}
	default:
		f.Code = exitServer
		f.Summary = fmt.Sprintf("%d %s from %s %s", resp.Status, http.StatusText(resp.Status), resp.Method, resp.URL)
		if resp.Attempts > 1 {
			f.Summary += fmt.Sprintf(" (after %d attempts)", resp.Attempts)
		}
		if resp.Status == http.StatusGatewayTimeout {
			f.Checks = []string{"the app answers within 120 s: the Apps proxy gives up after that"}
		}
		if resp.Status == http.StatusBadGateway || resp.Status == http.StatusServiceUnavailable {
			f.Checks = []string{"the app is running and listening on DATABRICKS_APP_PORT: `databricks apps logs " + cmp.Or(t.NameOrEmpty(), "<app-name>") + "`"}
		}
	}
	return f
}

// tokenChecks are the page's 401 items: the token is valid, the profile is set up, the token has not expired, it
// carries the scopes the app needs.
func (s *session) tokenChecks(ctx context.Context, t *appclient.Target) []string {
	c := s.creds
	var checks []string
	switch c.mode {
	case ModeLocal, ModeAuto:
		p := cmp.Or(c.profile, "DEFAULT")
		checks = append(checks,
			"the token is valid: `databricks auth token --profile "+p+"` prints one",
			"the profile is set up: "+c.loginHint)
	default:
		checks = append(checks, "the token is valid: "+c.loginHint)
	}
	claims, ok := s.tokenClaims(ctx)
	if fix := federationFix(claims.Issuer, c.hostOrEmpty()); ok && fix != "" {
		// The likeliest cause by far: put it first.
		checks = append([]string{"the token is a Databricks OAuth token: it is NOT, it was issued by " + oneLine(claims.Issuer) +
			", not by the workspace; " + fix}, checks...)
	}
	switch {
	case !ok:
		checks = append(checks, "the token has not expired (it is not a JWT, so the caller cannot tell)")
	case !claims.ExpiresAt.IsZero() && claims.ExpiresAt.Before(time.Now()):
		checks = append(checks, fmt.Sprintf("the token has not expired: it EXPIRED at %s; log in again: %s",
			claims.ExpiresAt.Format(time.RFC3339), c.loginHint))
	case !claims.ExpiresAt.IsZero():
		checks = append(checks, "the token has not expired: ok, it is valid until "+claims.ExpiresAt.Format(time.RFC3339))
	}
	if line := s.scopes(ctx, t).checkLine(s, nil); line != "" {
		checks = append(checks, line)
	}
	return checks
}

// scopeReport compares the token's scopes with the app's user authorization scopes (user_api_scopes, known when
// the app was looked up with --app). It is the one scope check: doctor prints it as a line, failures as an item.
type scopeReport struct {
	servicePrincipal bool // user authorization scopes apply to users' tokens only
	readable         bool // the token is a JWT, so its scopes are known
	have, need       []string
	missing          []string // need minus have; all-apis is not taken to cover them (the page warns it may not)
}

func (s *session) scopes(ctx context.Context, t *appclient.Target) scopeReport {
	r := scopeReport{servicePrincipal: s.creds.servicePrincipalID() != ""}
	if r.servicePrincipal {
		return r
	}
	if t != nil && t.App != nil {
		r.need = t.App.UserApiScopes
	}
	claims, ok := s.tokenClaims(ctx)
	r.readable, r.have, r.missing = ok, claims.Scopes, r.need
	if ok {
		r.missing = nil
		for _, sc := range r.need {
			if !slices.Contains(claims.Scopes, sc) {
				r.missing = append(r.missing, sc)
			}
		}
	}
	return r
}

// fix names the two ways to a token with the app's scopes: the Databricks CLI's own login (v0.287.0 and later),
// whose profile local mode then uses, and `callapp login`, in-process.
func (r scopeReport) fix(s *session) string {
	scopes := r.need
	if len(scopes) == 0 {
		scopes = []string{"sql", "file.files", "dashboards.genie"}
	}
	host := cmp.Or(s.creds.hostOrEmpty(), "https://<workspace-url>")
	fix := fmt.Sprintf("`%s` (Databricks CLI v0.287.0 or later; local mode then uses it), or in-process `%s` (then add --scopes %s)",
		cliLoginCommand(s.creds.profile, host, scopes), loginCommand(s.creds.profile, host, scopes), strings.Join(scopes, ","))
	if len(r.need) == 0 {
		fix += " (the example scopes of the page: use the app's, from `databricks apps get <app-name>`)"
	}
	return fix
}

func (r scopeReport) haveText() string {
	if !r.readable {
		return "unknown scopes (not a JWT)"
	}
	return "scopes [" + strings.Join(r.have, " ") + "]"
}

// checkLine is the report as an item of a failure's checklist; "" for a service principal.
func (r scopeReport) checkLine(s *session, answer *jsonhttp.Error) string {
	const item = "the token carries the OAuth scopes the app needs: "
	switch {
	case r.servicePrincipal:
		return ""
	case len(r.need) > 0 && len(r.missing) > 0:
		return fmt.Sprintf(item+"it has %s, the app's user authorization needs [%s], missing [%s]; get a token with them: %s",
			r.haveText(), strings.Join(r.need, " "), strings.Join(r.missing, " "), r.fix(s))
	case len(r.need) > 0:
		return fmt.Sprintf(item+"ok, it has %s for [%s]", r.haveText(), strings.Join(r.need, " "))
	case answer != nil && strings.Contains(strings.ToLower(answer.Message), "scope"):
		return fmt.Sprintf(item+"the answer says some are missing; it has %s; get a token with them: %s", r.haveText(), r.fix(s))
	default:
		return fmt.Sprintf(item+"it has %s; a login without --scopes asks for all-apis only, "+
			"which may not be enough for an app with user authorization (pass --app NAME to compare with its scopes)", r.haveText())
	}
}

// doctorCheck is the report as doctor's scopes line.
func (r scopeReport) doctorCheck(s *session, t *appclient.Target) check {
	c := check{Name: "scopes", Status: "skip"}
	detail := fmt.Sprintf("the token has [%s]; the app needs [%s]", strings.Join(r.have, " "), strings.Join(r.need, " "))
	switch {
	case r.servicePrincipal:
		c.Detail = "a service principal: the app's user authorization scopes apply to users' tokens only"
	case t.App == nil:
		c.Detail = "the app's user_api_scopes are unknown without --app"
	case len(r.need) == 0:
		c.Status, c.Detail = "pass", "the app has no user authorization scopes"
	case !r.readable:
		c.Detail = "the token is not a JWT, so its scopes cannot be read"
	case len(r.missing) == 0:
		c.Status, c.Detail = "pass", detail
	case len(r.have) == 1 && r.have[0] == "all-apis":
		c.Status, c.Detail, c.Fix = "warn", detail+"; all-apis may not be enough for user authorization", []string{r.fix(s)}
	default:
		c.Status, c.code = "fail", exitPermission
		c.Detail, c.Fix = detail+"; missing ["+strings.Join(r.missing, " ")+"]", []string{r.fix(s)}
	}
	return c
}

func (s *session) tokenClaims(ctx context.Context) (identity.TokenClaims, bool) {
	tok, _, err := s.creds.token(ctx)
	if err != nil {
		return identity.TokenClaims{}, false
	}
	claims, err := identity.DecodeClaims(tok.Reveal())
	return claims, err == nil
}

// canUseCheck names the principal and the command that grants it CAN USE on the app.
func (s *session) canUseCheck(ctx context.Context, t *appclient.Target) string {
	kind, name := s.principalName(ctx)
	app := cmp.Or(t.NameOrEmpty(), "<app-name>")
	acl, _ := json.Marshal(map[string]any{"access_control_list": []map[string]string{{kind: name, "permission_level": "CAN_USE"}}})
	return fmt.Sprintf("%s has CAN USE on %s: an app manager grants it with `databricks apps update-permissions %s --json '%s'`",
		name, appLabel(t), app, acl)
}

// principalName is how an access control list names the caller: user_name for a user, service_principal_name (the
// application id) for a service principal. It asks SCIM Me when the configuration alone does not say.
func (s *session) principalName(ctx context.Context) (kind, name string) {
	if id := s.creds.servicePrincipalID(); id != "" {
		return "service_principal_name", shownClientID(id)
	}
	unknown := func() (string, string) { return "user_name", "<your user name>" }
	host, err := s.creds.workspaceHost(ctx)
	if err != nil {
		return unknown()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+"/api/2.0/preview/scim/v2/Me", nil)
	if err != nil {
		return unknown()
	}
	resp, err := s.client.HTTP.Do(req) // its Transport puts the token on
	if err != nil {
		return unknown()
	}
	defer resp.Body.Close()
	var me struct {
		UserName      string `json:"userName"`
		ApplicationID string `json:"applicationId"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&me) != nil || me.UserName == "" {
		return unknown()
	}
	if me.ApplicationID != "" || !strings.Contains(me.UserName, "@") {
		return "service_principal_name", cmp.Or(me.ApplicationID, me.UserName)
	}
	return "user_name", me.UserName
}

// networkFailure explains a request to u that got no answer: the page's network items, plus what failed.
func (s *session) networkFailure(ctx context.Context, u string, err error) *failure {
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
		s.proxyCheck(u),
	}
	return f
}

// proxyCheck says whether an organisation proxy is configured for u.
func (s *session) proxyCheck(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "an organisation proxy, if you must use one, is set in HTTPS_PROXY"
	}
	proxy, err := s.env.proxy(pu)
	switch {
	case err != nil:
		return "the proxy settings are valid: " + err.Error()
	case proxy != nil:
		return "the organisation proxy " + proxy.Redacted() + " (HTTPS_PROXY) lets this host through"
	default:
		return "no proxy is used for this host: if your organisation requires one, set HTTPS_PROXY (and NO_PROXY)"
	}
}

func appLabel(t *appclient.Target) string {
	if n := t.NameOrEmpty(); n != "" {
		return "app " + n
	}
	if t != nil && t.Base != nil {
		return "the app at " + t.Base.String()
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

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return u
}

// isRefused reports a connection refused: nothing listens at the address.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// isDNS reports a failed name lookup.
func isDNS(err error) bool {
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// federationFix says how to turn a token the workspace did not issue (an identity provider's: GitHub Actions,
// Entra ID, …) into one it did, or "" for a token of the workspace: Databricks does not exchange tokens on the server
// side, so the client exchanges it first (token federation). A workspace's tokens are issued by <host>/oidc.
func federationFix(issuer, host string) string {
	if issuer == "" {
		return ""
	}
	if host != "" && strings.TrimSuffix(issuer, "/") == strings.TrimSuffix(host, "/")+"/oidc" {
		return ""
	}
	if host == "" && strings.HasSuffix(strings.TrimSuffix(issuer, "/"), "/oidc") {
		return ""
	}
	return "exchange the identity provider's token for a Databricks OAuth token first (token federation: " +
		"grant_type=urn:ietf:params:oauth:grant-type:token-exchange at " + cmp.Or(host, "https://<workspace-url>") +
		"/oidc/v1/token, with a federation policy that trusts the issuer): " +
		"`callapp --mode federated --oidc-token-file <file with the token> --client-id <service principal>`"
}
