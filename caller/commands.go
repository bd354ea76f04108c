package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// session is what call, whoami and doctor share: the mode's credentials, the client and the resolved target.
type session struct {
	creds  *credentials
	client *client
	target *target
}

func newSession(ctx context.Context, opts *options, getenv func(string) string, stdin io.Reader, out *output) (*session, error) {
	if opts.url == "" && opts.app == "" {
		return nil, usageErrorf("give the app: --url https://<app>.databricksapps.com or --app NAME")
	}
	creds, err := newCredentials(ctx, opts, getenv, stdin)
	if err != nil {
		return nil, err
	}
	s := &session{creds: creds, client: newClient(creds, opts, getenv, out)}
	if opts.url != "" {
		base, err := parseAppURL(opts.url)
		if err != nil {
			return nil, err
		}
		s.target = &target{base: base}
		return s, nil
	}
	lookup := s.client
	if creds.lookup != nil {
		lookup = newClient(creds.lookup, opts, getenv, out)
	}
	if s.target, err = resolveApp(ctx, lookup, opts.app); err != nil {
		return nil, err
	}
	return s, nil
}

// callResult is `call`'s --json output.
type callResult struct {
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Status   int             `json:"status"`
	Mode     Mode            `json:"mode"`
	AuthType string          `json:"auth_type"`
	Body     json.RawMessage `json:"body"`
}

// send validates the path, sends the request and turns any non-2xx answer into a failure.
func (s *session) send(ctx context.Context, method, path string, body []byte) (*response, error) {
	u, err := s.target.apiURL(path)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	resp, err := s.client.do(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if resp.status < 200 || resp.status > 299 {
		return nil, statusFailure(ctx, s.client, resp, s.target)
	}
	return resp, nil
}

func cmdCall(ctx context.Context, opts *options, getenv func(string) string, stdin io.Reader, out *output) error {
	method, path, body, err := opts.callRequest()
	if err != nil {
		return err
	}
	if body != nil && !json.Valid(body) {
		return usageErrorf("--data is not valid JSON")
	}
	s, err := newSession(ctx, opts, getenv, stdin, out)
	if err != nil {
		return err
	}
	if opts.repeat > 0 {
		return s.repeat(ctx, opts.repeat, method, path, body, out)
	}
	resp, err := s.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	out.notef("%s %s: %d %s (%s mode, auth type %s)", method, resp.url, resp.status, http.StatusText(resp.status),
		s.creds.mode, s.creds.authType())
	out.result(prettyBody(resp.body), callResult{Method: method, URL: resp.url, Status: resp.status,
		Mode: s.creds.mode, AuthType: s.creds.authType(), Body: bodyJSON(resp.body)})
	return nil
}

func cmdWhoAmI(ctx context.Context, opts *options, getenv func(string) string, stdin io.Reader, out *output) error {
	s, err := newSession(ctx, opts, getenv, stdin, out)
	if err != nil {
		return err
	}
	if opts.repeat > 0 {
		return s.repeat(ctx, opts.repeat, http.MethodGet, "/api/whoami", nil, out)
	}
	resp, err := s.send(ctx, http.MethodGet, "/api/whoami", nil)
	if err != nil {
		return err
	}
	var who identity.WhoAmI
	if err := json.Unmarshal(resp.body, &who); err != nil || who.User == "" {
		return &failure{Code: exitServer, Summary: fmt.Sprintf("GET %s did not answer with an identity: %s", resp.url, prettyBody(resp.body))}
	}
	out.result(describeWhoAmI(who, s.creds, resp.url), struct {
		identity.WhoAmI
		Mode     Mode   `json:"mode"`
		AuthType string `json:"auth_type"`
		URL      string `json:"url"`
	}{who, s.creds.mode, s.creds.authType(), resp.url})
	return nil
}

// describeWhoAmI is whoami's text: who the app saw, then how the caller got there.
func describeWhoAmI(who identity.WhoAmI, creds *credentials, u string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "The app saw you as %s (%s", oneLine(who.User), oneLine(string(who.Kind)))
	if who.Email != "" {
		fmt.Fprintf(&b, ", email %s", oneLine(who.Email))
	}
	if who.PreferredUsername != "" {
		fmt.Fprintf(&b, ", preferred username %s", oneLine(who.PreferredUsername))
	}
	b.WriteString(").\n")
	switch {
	case who.AccessTokenClaims != nil:
		fmt.Fprintf(&b, "Your forwarded token has scopes [%s]", oneLine(strings.Join(who.AccessTokenClaims.Scopes, " ")))
		if !who.AccessTokenClaims.ExpiresAt.IsZero() {
			fmt.Fprintf(&b, " and expires %s", who.AccessTokenClaims.ExpiresAt.Format(time.RFC3339))
		}
		b.WriteString(".\n")
	case who.AccessTokenForwarded:
		b.WriteString("The proxy forwarded your token to the app (user authorization is on).\n")
	default:
		b.WriteString("No token was forwarded to the app (user authorization is off for it, or you are a service principal).\n")
	}
	fmt.Fprintf(&b, "Called %s in %s mode as %s (auth type %s).\n", u, creds.mode, creds.principal, creds.authType())
	return b.String()
}

// cmdToken is the only command that prints a token, and only to stdout.
func cmdToken(ctx context.Context, opts *options, getenv func(string) string, stdin io.Reader, out *output) error {
	creds, err := newCredentials(ctx, opts, getenv, stdin)
	if err != nil {
		return err
	}
	tok, expiry, err := creds.token(ctx)
	if err != nil {
		return err
	}
	until := "it expires"
	if !expiry.IsZero() {
		until = expiry.Format(time.RFC3339)
	}
	fmt.Fprintf(out.stderr, "warning: the token below lets anyone holding it act as %s until %s. "+
		"Keep it out of logs, tickets and shell history.\n", creds.principal, until)
	if out.json {
		out.writeJSON(map[string]any{"access_token": tok.Reveal(), "token_type": "Bearer", "expiry": expiry,
			"mode": creds.mode, "auth_type": creds.authType()})
		return nil
	}
	fmt.Fprintln(out.stdout, tok.Reveal())
	return nil
}
