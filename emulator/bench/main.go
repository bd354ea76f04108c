// Command bench measures the figures the README's Performance section reports, all in one run on this machine, as
// ratios (these machines are shared and noisy: absolute numbers vary, ratios measured together hold):
//
//	make bench       # or: go run ./emulator/bench [--requests 20000] [--concurrency 32]
//
// It builds and packages the app, starts the emulated workspace in this process and the app as its own process
// with the platform's environment, then drives loopback load at it with a Go load generator.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The bench re-executes itself as the bare net/http server it compares the app with.
	if len(os.Args) > 1 && os.Args[1] == "bare-server" {
		if err := serveBare(ctx, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bare-server:", err)
			os.Exit(1)
		}
		return
	}

	var o options
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.IntVar(&o.requests, "requests", 20000, "requests per load run")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent keep-alive connections")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds of the middleware load, app and bare in turn (the median ratio is reported)")
	fs.IntVar(&o.startups, "startups", 5, "start-up runs of each kind (the median is reported)")
	fs.StringVar(&o.appBinary, "app-binary", "", "measure this app binary (built for this machine) instead of building ./app")
	_ = fs.Parse(os.Args[1:])
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

// serveBare is the bare net/http server the app is compared with: no routing, identity parsing, logging or recovery.
// It answers every request with the app's own /api/whoami answer from --body-file: replayed as bytes, or, with
// --encode, decoded once and encoded again per request as the app does, so that only the middleware differs.
func serveBare(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bare-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	bodyFile := fs.String("body-file", "", "the body to answer with")
	encode := fs.Bool("encode", false, "encode the body per request instead of replaying its bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		return err
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body)
	})
	if *encode {
		var v identity.WhoAmI
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		handler = func(w http.ResponseWriter, r *http.Request) { jsonhttp.Write(w, http.StatusOK, v) }
	}
	srv := &http.Server{Addr: *addr, Handler: handler}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}
