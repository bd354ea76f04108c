package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/caller/appclient"
)

// newDoctorCommand is `callapp doctor`: the page's troubleshooting list as checks, in the order a request meets
// them: configuration, token, app, scopes, network, then the app's own answers. A failed check is explained as a
// failed call is (explain.go).
func newDoctorCommand(p *parsed) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "doctor",
		Short:   "Run the troubleshooting checklist, one line per check",
		Long:    "doctor runs the troubleshooting checklist, one line per check, and exits with the code of the first failed one.",
		Example: "  callapp --profile my-env --app api-app doctor",
		Args:    noArgs,
		RunE:    p.chooses(nil, runDoctor),
	}
	targetFlags(cmd.Flags(), p.opts)
	return cmd
}

// check is one line of doctor's report.
type check struct {
	Name   string   `json:"name"`
	Status string   `json:"status"` // pass, fail, warn or skip
	Detail string   `json:"detail"`
	Fix    []string `json:"fix,omitempty"`
	code   int      // the exit code a failure maps to
}

func runDoctor(ctx context.Context, e *env) error {
	var checks []check
	add := func(c check) { checks = append(checks, c) }
	failed := func(name string, f *failure) error {
		add(check{Name: name, Status: "fail", Detail: f.Summary, Fix: f.Checks, code: f.Code})
		return doctorResult(checks)
	}
	defer func() { printDoctor(e.out, checks) }()
	// Its own retries and refreshes are not news: the report says what came of them.
	quiet := *e
	quiet.out = &output{stdout: discard{}, stderr: discard{}}

	s, err := newSession(ctx, &quiet)
	if err != nil {
		return failed("config", asFailure(ctx, err))
	}
	creds := s.creds
	add(check{Name: "config", Status: "pass", Detail: fmt.Sprintf("%s mode, %s", creds.mode, creds.principal)})

	tok, _, err := creds.token(ctx)
	if err != nil {
		return failed("token", s.explain(ctx, err, nil))
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
	if claimsErr == nil {
		if fix := federationFix(claims.Issuer, creds.hostOrEmpty()); fix != "" {
			add(check{Name: "issuer", Status: "fail", code: exitAuth,
				Detail: "the token was issued by " + oneLine(claims.Issuer) + ", not by the workspace: an app takes Databricks OAuth tokens only",
				Fix:    []string{fix}})
		} else {
			add(check{Name: "issuer", Status: "pass", Detail: "issued by the workspace"})
		}
	}

	if err := s.resolveTarget(ctx); err != nil {
		return failed("app", s.explain(ctx, err, nil))
	}
	t := s.target
	if t.App != nil {
		add(check{Name: "app", Status: "pass", Detail: fmt.Sprintf("%s is RUNNING at %s", t.Name, t.Base)})
	} else {
		add(check{Name: "app", Status: "skip", Detail: "--url given: the Apps API is not asked (use --app NAME to check the app's state and scopes)"})
	}
	add(s.scopes(ctx, t).doctorCheck(s, t))

	if !s.networkChecks(ctx, add) {
		return doctorResult(checks)
	}
	for _, path := range []string{"/api/health", "/api/whoami"} {
		name := strings.TrimPrefix(path, "/api/")
		resp, err := s.send(ctx, http.MethodGet, path, nil)
		if err != nil {
			return failed(name, s.explain(ctx, err, t))
		}
		detail := fmt.Sprintf("GET %s: %d", path, resp.Status)
		if who, _, ok := parseWhoAmI(resp.Body); path == "/api/whoami" && ok {
			detail = fmt.Sprintf("the app saw you as %s (%s)", who.User, who.Kind)
		}
		add(check{Name: name, Status: "pass", Detail: detail})
	}
	return doctorResult(checks)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// networkChecks resolves and dials the app's host (or the organisation proxy, when HTTPS_PROXY applies), as curl
// would, and does the TLS handshake for https.
func (s *session) networkChecks(ctx context.Context, add func(check)) bool {
	base := s.target.Base
	host, port := base.Hostname(), base.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[base.Scheme]
	}
	via := ""
	if proxy, err := s.env.proxy(base); err == nil && proxy != nil {
		via = " (through the proxy " + proxy.Redacted() + ")"
		host, port = proxy.Hostname(), cmp.Or(proxy.Port(), "3128")
	}
	netFix := func(err error) []string {
		return s.explain(ctx, &appclient.NetworkError{Method: http.MethodGet, URL: base.String(), Err: err}, s.target).Checks
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
	if base.Scheme != "https" || via != "" {
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
