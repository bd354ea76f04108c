package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// check is one line of doctor's report.
type check struct {
	Name   string   `json:"name"`
	Status string   `json:"status"` // pass, fail, warn or skip
	Detail string   `json:"detail"`
	Fix    []string `json:"fix,omitempty"`
	code   int      // the exit code a failure maps to
}

// cmdDoctor runs the page's troubleshooting list as checks, in the order a request meets them: configuration, token,
// app, scopes, network, then the app's own answers.
func cmdDoctor(ctx context.Context, opts *options, getenv func(string) string, stdin io.Reader, out *output) error {
	var checks []check
	add := func(c check) { checks = append(checks, c) }
	fail := func(name string, err error) {
		f := asFailure(ctx, err)
		add(check{Name: name, Status: "fail", Detail: f.Summary, Fix: f.Checks, code: f.Code})
	}
	defer func() { printDoctor(out, checks) }()

	creds, err := newCredentials(ctx, opts, getenv, stdin)
	if err != nil {
		fail("config", err)
		return doctorResult(checks)
	}
	add(check{Name: "config", Status: "pass", Detail: fmt.Sprintf("%s mode, %s", creds.mode, creds.principal)})
	c := newClient(creds, opts, getenv, &output{stdout: io.Discard, stderr: io.Discard})

	tok, _, err := creds.token(ctx)
	if err != nil {
		fail("token", err)
		return doctorResult(checks)
	}
	add(check{Name: "token", Status: "pass", Detail: fmt.Sprintf("got an OAuth token (auth type %s) for %s", creds.authType(), creds.hostOrEmpty())})

	claims, claimsErr := identity.DecodeClaims(tok.Reveal())
	switch {
	case claimsErr != nil:
		add(check{Name: "expiry", Status: "skip", Detail: "the token is not a JWT, so its expiry cannot be read"})
	case !claims.ExpiresAt.IsZero() && claims.ExpiresAt.Before(time.Now()):
		add(check{Name: "expiry", Status: "fail", code: exitAuth, Detail: "the token expired at " + claims.ExpiresAt.Format(time.RFC3339),
			Fix: []string{creds.loginHint}})
	default:
		add(check{Name: "expiry", Status: "pass", Detail: "valid until " + claims.ExpiresAt.Format(time.RFC3339)})
	}

	var t *target
	switch {
	case opts.app != "":
		lookup := c
		if creds.lookup != nil {
			lookup = newClient(creds.lookup, opts, getenv, out)
		}
		if t, err = resolveApp(ctx, lookup, opts.app); err != nil {
			fail("app", err)
			return doctorResult(checks)
		}
		add(check{Name: "app", Status: "pass", Detail: fmt.Sprintf("%s is RUNNING at %s", t.name, t.base)})
	case opts.url != "":
		base, err := parseAppURL(opts.url)
		if err != nil {
			fail("app", err)
			return doctorResult(checks)
		}
		t = &target{base: base}
		add(check{Name: "app", Status: "skip", Detail: "--url given: the Apps API is not asked (use --app NAME to check the app's state and scopes)"})
	default:
		fail("app", usageErrorf("give the app: --url https://<app>.databricksapps.com or --app NAME"))
		return doctorResult(checks)
	}

	switch {
	case creds.servicePrincipalID() != "":
		add(check{Name: "scopes", Status: "skip", Detail: "a service principal: the app's user authorization scopes apply to users' tokens only"})
	case t.app == nil:
		add(check{Name: "scopes", Status: "skip", Detail: "the app's user_api_scopes are unknown without --app"})
	case len(t.app.UserAPIScopes) == 0:
		add(check{Name: "scopes", Status: "pass", Detail: "the app has no user authorization scopes"})
	case claimsErr != nil:
		add(check{Name: "scopes", Status: "skip", Detail: "the token is not a JWT, so its scopes cannot be read"})
	default:
		missing := missingScopes(claims.Scopes, t.app.UserAPIScopes)
		detail := fmt.Sprintf("the token has [%s]; the app needs [%s]", strings.Join(claims.Scopes, " "), strings.Join(t.app.UserAPIScopes, " "))
		switch {
		case len(missing) == 0:
			add(check{Name: "scopes", Status: "pass", Detail: detail})
		case len(claims.Scopes) == 1 && claims.Scopes[0] == "all-apis":
			add(check{Name: "scopes", Status: "warn", Detail: detail + "; all-apis may not be enough for user authorization",
				Fix: []string{loginCommand(creds.profile, creds.hostOrEmpty(), t.app.UserAPIScopes)}})
		default:
			add(check{Name: "scopes", Status: "fail", code: exitPermission, Detail: detail + "; missing [" + strings.Join(missing, " ") + "]",
				Fix: []string{loginCommand(creds.profile, creds.hostOrEmpty(), t.app.UserAPIScopes)}})
		}
	}

	if !networkChecks(ctx, c, t, add) {
		return doctorResult(checks)
	}

	for _, path := range []string{"/api/health", "/api/whoami"} {
		name := strings.TrimPrefix(path, "/api/")
		u, _ := t.apiURL(path)
		resp, err := c.do(ctx, http.MethodGet, u, nil)
		if err != nil {
			fail(name, err)
			return doctorResult(checks)
		}
		if resp.status != http.StatusOK {
			f := statusFailure(ctx, c, resp, t)
			add(check{Name: name, Status: "fail", Detail: f.Summary, Fix: f.Checks, code: f.Code})
			return doctorResult(checks)
		}
		detail := fmt.Sprintf("GET %s: 200", path)
		var who identity.WhoAmI
		if path == "/api/whoami" && json.Unmarshal(resp.body, &who) == nil && who.User != "" {
			detail = fmt.Sprintf("the app saw you as %s (%s)", who.User, who.Kind)
		}
		add(check{Name: name, Status: "pass", Detail: detail})
	}
	return doctorResult(checks)
}

// networkChecks resolves and dials the app's host (or the organisation proxy, when HTTPS_PROXY applies), as curl
// would, and does the TLS handshake for https.
func networkChecks(ctx context.Context, c *client, t *target, add func(check)) bool {
	host, port := t.base.Hostname(), t.base.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[t.base.Scheme]
	}
	via := ""
	if proxy, err := c.proxy(t.base); err == nil && proxy != nil {
		via = " (through the proxy " + proxy.Redacted() + ")"
		host, port = proxy.Hostname(), orDefault(proxy.Port(), "3128")
	}
	netFix := func(err error) []string {
		return networkFailure(ctx, c, t.base.String(), err).Checks
	}
	dnsCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(dnsCtx, host)
	if err != nil {
		add(check{Name: "dns", Status: "fail", code: exitNetwork, Detail: fmt.Sprintf("cannot resolve %s: %v", host, err), Fix: netFix(err)})
		return false
	}
	add(check{Name: "dns", Status: "pass", Detail: fmt.Sprintf("%s resolves to %s%s", host, strings.Join(addrs, ", "), via)})

	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		add(check{Name: "tcp", Status: "fail", code: exitNetwork, Detail: fmt.Sprintf("cannot connect to %s:%s: %v", host, port, err), Fix: netFix(err)})
		return false
	}
	defer conn.Close()
	if t.base.Scheme != "https" || via != "" {
		add(check{Name: "tcp", Status: "pass", Detail: fmt.Sprintf("connected to %s:%s%s", host, port, via)})
		return true
	}
	tlsConn := tls.Client(conn, &tls.Config{ServerName: host})
	hsCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := tlsConn.HandshakeContext(hsCtx); err != nil {
		add(check{Name: "tls", Status: "fail", code: exitNetwork, Detail: fmt.Sprintf("TLS with %s failed: %v", host, err), Fix: netFix(err)})
		return false
	}
	add(check{Name: "tls", Status: "pass", Detail: fmt.Sprintf("TLS with %s:%s is good", host, port)})
	return true
}

// doctorResult fails with the exit code of the first failed check.
func doctorResult(checks []check) error {
	for _, c := range checks {
		if c.Status == "fail" {
			return &failure{Code: c.code, Summary: fmt.Sprintf("doctor: %s failed", c.Name), reported: true}
		}
	}
	return nil
}

func printDoctor(out *output, checks []check) {
	ok := doctorResult(checks) == nil
	if out.json {
		out.writeJSON(struct {
			OK     bool    `json:"ok"`
			Checks []check `json:"checks"`
		}{ok, checks})
		return
	}
	for _, c := range checks {
		fmt.Fprintf(out.stdout, "%-4s  %-7s %s\n", strings.ToUpper(c.Status), c.Name, c.Detail)
		for _, f := range c.Fix {
			fmt.Fprintf(out.stdout, "              fix: %s\n", f)
		}
	}
}
