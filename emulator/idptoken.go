package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// idpToken is `emulator idp-token`: it has one of the running emulator's identity providers mint a token and
// prints it, as a CI provider hands a job its OIDC token. Exchanging it is the caller's business (token
// federation), so this command never talks to the workspace's token endpoint.
func idpToken(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("emulator idp-token", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage is ours; errors are returned
	stateFile := fs.String("state", "", "")
	issuer := fs.String("issuer", "", "")
	subject := fs.String("subject", "", "")
	audience := fs.String("audience", "", "")
	lifetime := fs.Duration("lifetime", workspace.DefaultIdentityTokenLifetime, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w (see --help)", err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("idp-token takes no arguments, got %q", fs.Args())
	case *stateFile == "" || *issuer == "" || *subject == "":
		return errors.New("idp-token needs --state FILE (of a running emulator), --issuer NAME and --subject S")
	case *lifetime < time.Second || *lifetime > workspace.MaxIdentityTokenLifetime:
		return fmt.Errorf("--lifetime %s: want 1s to %s", *lifetime, workspace.MaxIdentityTokenLifetime)
	}
	state, err := workspace.ReadState(*stateFile)
	if err != nil {
		return err
	}
	idp, ok := state.IdentityProviders[*issuer]
	if !ok {
		names := make([]string, 0, len(state.IdentityProviders))
		for name := range state.IdentityProviders {
			names = append(names, name)
		}
		slices.Sort(names)
		return fmt.Errorf("--issuer %s: the emulator's identity providers are %s", *issuer, strings.Join(names, ", "))
	}
	token, err := workspace.MintIdentityToken(ctx, idp.TokenEndpoint, *subject, *audience, *lifetime)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}
