// Command demo shows every way of calling a Databricks App with a bearer token, end to end, on one machine:
//
//	make demo        # or: go run ./internal/demo
//
// It builds the app, the caller and the emulator, starts the emulated workspace with the API app and the caller-app
// under it (exactly as `go run ./emulator run` does), then runs the caller through each path of the documentation
// page "Connect to a Databricks app using token authentication" and prints one table of what the app saw. It exits
// non-zero if any row differs from what is expected, and removes every process and file it made, on failure and on
// Ctrl-C too.
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
	if err := run(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		stop()
		os.Exit(1)
	}
}
