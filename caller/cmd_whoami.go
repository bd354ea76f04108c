package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// whoamiCmd is `callapp whoami`: GET /api/whoami, explained when the answer is this project's identity shape and
// printed as it came from any other app.
type whoamiCmd struct {
	repeat int
}

func newWhoAmICommand(p *parsed) *cobra.Command {
	c := &whoamiCmd{}
	cmd := &cobra.Command{
		Use:     "whoami",
		Short:   "GET /api/whoami: who the app saw you as (any other answer as it came)",
		Example: "  callapp --mode local --profile my-env --app api-app whoami",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkRepeat(c.repeat, cmd.Flags().Changed("repeat")); err != nil {
				return err
			}
			p.choose(cmd, c, c.run)
			return nil
		},
	}
	repeatFlag(cmd.Flags(), &c.repeat)
	targetFlags(cmd.Flags(), p.opts)
	return cmd
}

func (c *whoamiCmd) run(ctx context.Context, e *env) error {
	s, err := newSession(ctx, e)
	if err != nil {
		return err
	}
	if err := s.resolveTarget(ctx); err != nil {
		return err
	}
	if c.repeat > 0 {
		return s.repeat(ctx, c.repeat, http.MethodGet, "/api/whoami", nil)
	}
	resp, err := s.send(ctx, http.MethodGet, "/api/whoami", nil)
	if err != nil {
		return s.explain(ctx, err, s.target)
	}
	who, fields, ok := parseWhoAmI(resp.Body)
	if !ok {
		// Not this project's app: what it answered is all there is to say, unchanged.
		s.printAnswer(resp)
		return nil
	}
	// --json: the app's own fields as it sent them, and how the caller got there.
	for k, v := range map[string]string{"mode": string(s.creds.mode), "auth_type": s.creds.authType(), "url": resp.URL} {
		fields[k], _ = json.Marshal(v)
	}
	e.out.result(describeWhoAmI(who, s.creds, resp.URL), fields)
	return nil
}

// parseWhoAmI recognises this project's GET /api/whoami answer (app/identity.WhoAmI): a JSON object with the fields
// that shape always has. Another app's {"user": …} is not taken for it.
func parseWhoAmI(body []byte) (identity.WhoAmI, map[string]json.RawMessage, bool) {
	var fields map[string]json.RawMessage
	var who identity.WhoAmI
	if json.Unmarshal(body, &fields) != nil || json.Unmarshal(body, &who) != nil || who.User == "" {
		return who, nil, false
	}
	for _, k := range []string{"user", "user_format", "kind", "access_token_forwarded"} {
		if _, ok := fields[k]; !ok {
			return who, nil, false
		}
	}
	for _, k := range []string{"mode", "auth_type", "url"} {
		if _, clash := fields[k]; clash {
			return who, nil, false
		}
	}
	return who, fields, true
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
