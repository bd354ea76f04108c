package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// newIdpTokenCommand is `emulator idp-token`: it has one of the running emulator's identity providers mint a token
// and prints it, as a CI provider hands a job its OIDC token. Exchanging it is the caller's business (token
// federation), so this command never talks to the workspace's token endpoint.
func newIdpTokenCommand() *cobra.Command {
	var stateFile, issuer, subject, audience string
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:     "idp-token --state FILE --issuer NAME --subject S [--audience A] [--lifetime D]",
		Short:   "Print a token of one of the running emulator's identity providers",
		Example: "  emulator idp-token --state /tmp/emu.json --issuer ci --subject repo:acme/api:ref:refs/heads/main",
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) > 0:
				return fmt.Errorf("idp-token takes no arguments, got %q", args)
			case stateFile == "" || issuer == "" || subject == "":
				return errors.New("idp-token needs --state FILE (of a running emulator), --issuer NAME and --subject S")
			case lifetime < time.Second || lifetime > workspace.MaxIdentityTokenLifetime:
				return fmt.Errorf("--lifetime %s: want 1s to %s", lifetime, workspace.MaxIdentityTokenLifetime)
			}
			return idpToken(cmd.Context(), stateFile, issuer, subject, audience, lifetime, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&stateFile, "state", "", "the state `FILE` of a running emulator")
	fs.StringVar(&issuer, "issuer", "", "the identity provider, by its name in the model (ci in the default one)")
	fs.StringVar(&subject, "subject", "", "the token's subject")
	fs.StringVar(&audience, "audience", "", "the token's audience (default: the account id)")
	fs.DurationVar(&lifetime, "lifetime", workspace.DefaultIdentityTokenLifetime, "the token's lifetime")
	return cmd
}

// idpToken has the identity provider issuer of the emulator whose state is in stateFile mint a token, and prints it.
func idpToken(ctx context.Context, stateFile, issuer, subject, audience string, lifetime time.Duration, stdout io.Writer) error {
	state, err := workspace.ReadState(stateFile)
	if err != nil {
		return err
	}
	idp, ok := state.IdentityProviders[issuer]
	if !ok {
		names := make([]string, 0, len(state.IdentityProviders))
		for name := range state.IdentityProviders {
			names = append(names, name)
		}
		slices.Sort(names)
		return fmt.Errorf("--issuer %s: the emulator's identity providers are %s", issuer, strings.Join(names, ", "))
	}
	token, err := workspace.MintIdentityToken(ctx, idp.TokenEndpoint, subject, audience, lifetime)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}
