// Command bench measures the figures docs/performance.md reports, all in one run on this machine, as
// ratios of targets measured in the same interleaved rounds (these machines are shared and noisy: absolute numbers
// vary, ratios measured together hold):
//
//	make bench       # or: go run ./internal/bench [--rounds 7] [--duration 2s] [--concurrency 32]
//
// It builds and packages the app, starts the app, bare net/http servers, the emulator and a plain reverse proxy as
// processes of their own (and FastAPI on uvicorn, when installed), drives loopback load at each with wrk (Debian's
// package: make bench installs it as root), and reads each server's CPU time from /proc/PID/stat. It also times a
// query of the sample data through the proxy, the app and the emulated warehouse against the SQL engine alone.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The bench re-executes itself as the baselines it compares the app and the emulator's proxy with.
	if len(os.Args) > 1 {
		serve := map[string]func(context.Context, []string) error{"bare-server": serveBare, "plain-proxy": servePlainProxy}
		if f, ok := serve[os.Args[1]]; ok {
			if err := f(ctx, os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
				os.Exit(1)
			}
			return
		}
	}

	var o options
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "how long each load runs, in whole seconds")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent keep-alive connections")
	fs.IntVar(&o.rounds, "rounds", 7, "interleaved rounds of loads (medians and ranges are over them)")
	fs.IntVar(&o.startups, "startups", 5, "start-up runs of each kind")
	fs.StringVar(&o.appBinary, "app-binary", "", "measure this app binary (built for this machine) instead of building ./app")
	fs.StringVar(&o.emulatorBinary, "emulator-binary", "", "measure this emulator binary's proxy instead of building ./emulator")
	fs.StringVar(&o.python, "python", "", "the Python with FastAPI and uvicorn for the peer row (default: python3 on PATH, then /usr/bin/python3)")
	_ = fs.Parse(os.Args[1:])
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}
