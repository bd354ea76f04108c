// Command emulator is a local, offline Databricks workspace and Databricks Apps reverse proxy, for running and
// testing apps and their callers with no workspace and no internet.
//
//	go run ./emulator                        # serve the workspace and one proxy per app; print their URLs
//	go run ./emulator run -- ./bin/api-app   # also start the app with the platform's environment
//	go run ./emulator idp-token --state F --issuer ci --subject S   # a token of an emulated identity provider
//	go run ./emulator --help
//
// The principal model (users, service principals, apps, CAN_USE) is emulator/workspace/default.yaml unless
// --config replaces it. When this binary runs under the name databricks it is the CLI stand-in instead (see
// emulator/databrickscli): the emulator installs a copy of itself under that name next to the profile it writes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		stop()
		os.Exit(1)
	}
}
