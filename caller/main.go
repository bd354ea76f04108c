// Command caller calls a Databricks App's API with an OAuth bearer token, in each of the ways the documentation page
// "Connect to a Databricks app using token authentication" describes, and explains what went wrong when it fails.
//
//	go run ./caller --mode local --profile my-env --app api-app whoami
//	go run ./caller --mode external --url https://api-app-123.aws.databricksapps.com call /api/echo --data '{"hi":1}'
//	go run ./caller serve     # as a Databricks App itself (see caller/app.yaml), calling TARGET_APP
//
// Modes pick the credentials, one *config.Config each, with an explicit auth type:
// local (a Databricks CLI profile, or a token cached by `caller login`), external (a service principal's client id
// and secret), app (the service principal a Databricks App runs as) and auto (the SDK's default chain).
// Run `caller help` for every command and flag; the README's "The caller" section has examples and exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes. Scripts tell failures apart by them; the README lists them.
const (
	exitOK         = 0
	exitFailure    = 1 // anything not listed below
	exitUsage      = 2 // bad command line, or the mode's configuration is incomplete
	exitAuth       = 3 // 401, a redirect to the login page, or no token could be obtained
	exitPermission = 4 // 403
	exitNotFound   = 5 // 404, an unknown app, or an app that is not running
	exitNetwork    = 6 // DNS, TCP, TLS, proxy or timeout
	exitServer     = 7 // 5xx or any other unexpected answer, after retries
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	os.Exit(exitCode(err))
}

// exitCode maps run's error to the process's exit status: a *failure carries its own.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var f *failure
	if errors.As(err, &f) {
		return f.Code
	}
	return exitFailure
}

// run is the whole program; main only wires it to the process. Everything it reads comes in as an argument, so
// tests run the real program in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	opts, err := parseArgs(args)
	if err != nil {
		if errors.Is(err, errHelp) {
			printUsage(stdout)
			return nil
		}
		fmt.Fprintf(stderr, "caller: %v\n\n%s", err, usageHint)
		return usageErrorf("%v", err)
	}
	out := newOutput(stdout, stderr, opts.json)

	if opts.command == "serve" {
		// serve runs until ctx ends; --timeout bounds each outgoing call instead.
		return serve(ctx, opts, getenv, &terminalWriter{w: stderr, json: true}) // its log is JSON lines
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()

	var runErr error
	switch opts.command {
	case "call":
		runErr = cmdCall(ctx, opts, getenv, stdin, out)
	case "whoami":
		runErr = cmdWhoAmI(ctx, opts, getenv, stdin, out)
	case "token":
		runErr = cmdToken(ctx, opts, getenv, stdin, out)
	case "login":
		runErr = cmdLogin(ctx, opts, getenv, out)
	case "doctor":
		runErr = cmdDoctor(ctx, opts, getenv, stdin, out)
	}
	if runErr == nil {
		return nil
	}
	f := asFailure(ctx, runErr)
	if !f.reported {
		out.failure(f)
	}
	return f
}
