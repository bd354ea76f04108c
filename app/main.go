// Command app is a Databricks App that exposes a JSON API, written to be copied.
//
// It serves /api/ endpoints behind the Databricks Apps reverse proxy, shows callers who they arrived as (from the
// X-Forwarded-* headers the proxy sets) and calls the workspace on behalf of the user with databricks-sdk-go.
//
// Run it on a laptop behind the emulator, which plays the proxy and the workspace:
//
//	go run ./emulator run -- go run ./app
//
// or alone (then only /api/health answers without forwarded headers):
//
//	go run ./app               # listens on 127.0.0.1:8000
//	DATABRICKS_APP_PORT=8000 ./app  # as on the platform: 0.0.0.0:8000
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
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
}
