package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// newTokenCommand is `callapp token`: the only command that prints a token, and only to stdout.
func newTokenCommand(p *parsed) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "token",
		Short:   "Print the bearer token (for curl); nothing else prints it",
		Example: `  curl -H "Authorization: Bearer $(callapp --profile my-env token)" https://…/api/whoami`,
		Args:    noArgs,
		RunE:    p.chooses(nil, runToken),
	}
	targetFlags(cmd.Flags(), p.opts)
	return cmd
}

func runToken(ctx context.Context, e *env) error {
	creds, err := newCredentials(ctx, e)
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
	out := e.out
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
