// Command callapp (this folder, caller/) calls a Databricks App's API with an OAuth bearer token, in each of the
// ways the documentation page "Connect to a Databricks app using token authentication" describes, and explains what
// went wrong when it fails. `make build` builds it as bin/callapp (not "caller": that is a bash builtin).
//
//	callapp --mode local --profile my-env --app api-app whoami
//	callapp --mode external --url https://api-app-123.aws.databricksapps.com call /api/echo --data '{"hi":1}'
//	callapp serve     # as a Databricks App itself (see caller/app.yaml), calling TARGET_APP
//
// The credentials are caller/appauth's (one *config.Config per mode, with an explicit auth type) and the requests
// caller/appclient's; this package is the command line on top: the commands' definitions (commands.go, cobra), one
// file per command (cmd_*.go), the output, and explain.go, the one place that turns an error into the page's
// troubleshooting list. Run `callapp help` for every command and flag.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/net/http/httpproxy"

	"github.com/databricks-sample/go-apps-api/caller/appclient"
)

// Exit codes. Scripts tell failures apart by them; docs/caller.md lists them.
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

// env is what a command runs with: its options, the process's surroundings, and the one transport (through the
// organisation proxy, if any) that every request of the run shares.
type env struct {
	opts      *options
	getenv    func(string) string
	stdin     io.Reader
	out       *output
	proxy     func(*url.URL) (*url.URL, error) // from HTTPS_PROXY/HTTP_PROXY/NO_PROXY as getenv sees them
	transport *http.Transport
}

// run is the whole program; main only wires it to the process. Everything it reads comes in as an argument, so
// tests run the real program in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	p, err := parseArgs(args, &terminalWriter{w: stdout})
	if err != nil {
		if errors.Is(err, errHelp) {
			return nil
		}
		fmt.Fprintf(&terminalWriter{w: stderr}, "callapp: %v\n\n%s", err, usageHint)
		return usageErrorf("%v", err)
	}
	opts := p.opts
	e := &env{opts: opts, getenv: getenv, stdin: stdin, out: newOutput(stdout, stderr, opts.json)}
	e.proxy = proxyFromEnv(getenv)
	e.transport = appclient.NewTransport(func(r *http.Request) (*url.URL, error) { return e.proxy(r.URL) })

	if p.name == "serve" {
		// serve runs until ctx ends; --timeout bounds each outgoing call instead. Its log is JSON lines.
		e.out = &output{stdout: io.Discard, stderr: &terminalWriter{w: stderr, json: true}, json: true}
		return p.run(ctx, e)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	runErr := p.run(ctx, e)
	if runErr == nil {
		return nil
	}
	f := asFailure(ctx, runErr)
	if !f.reported {
		e.out.failure(f)
	}
	return f
}

// proxyFromEnv is the organisation proxy for a URL, from HTTPS_PROXY/HTTP_PROXY/NO_PROXY as getenv sees them.
func proxyFromEnv(getenv func(string) string) func(*url.URL) (*url.URL, error) {
	return (&httpproxy.Config{
		HTTPProxy:  cmp.Or(getenv("HTTP_PROXY"), getenv("http_proxy")),
		HTTPSProxy: cmp.Or(getenv("HTTPS_PROXY"), getenv("https_proxy")),
		NoProxy:    cmp.Or(getenv("NO_PROXY"), getenv("no_proxy")),
	}).ProxyFunc()
}
