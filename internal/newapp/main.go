// Command newapp starts a Databricks App of your own from this sample's app/: a new Go module, with its own module
// path and app name, that builds, passes its own tests, and runs under the emulator under its own name.
//
//	make new-app NAME=my-app DIR=../my-app [MODULE=example.com/my-app]
//	go run ./internal/newapp --name my-app [--module example.com/my-app] [--emulator PATH] DIR
//
// It copies app/ (code, tests, the OpenAPI document, the page), rewrites the sample's import paths to the new
// module's, names the app, writes go.mod (the sample's versions, tidied), app.yaml, a Makefile, a bundle and a
// README, and builds the result. gonew (golang.org/x/tools/cmd/gonew) does not fit: it copies a whole module from
// the module proxy, and the app is one folder of this module.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "new-app:", err)
		os.Exit(1)
	}
}

const usage = `newapp: start a Databricks App of your own from this sample's app/.

Usage:
  make new-app NAME=my-app DIR=../my-app [MODULE=example.com/my-app]
  go run ./internal/newapp --name NAME [--module PATH] [--emulator PATH] DIR

DIR must not exist, or be empty. The new module builds and tests on its own; its make dev runs it under this
sample's emulator as NAME.

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("newapp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var o options
	fs.StringVar(&o.name, "name", "", "the app's name on the platform: 2 to 30 lower case letters, digits and dashes")
	fs.StringVar(&o.module, "module", "", "the new Go module's path (default example.com/NAME)")
	fs.StringVar(&o.emulator, "emulator", "", "the emulator binary the new Makefile's dev target runs (default: bin/emulator of this checkout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want one folder to create, after the flags")
	}
	o.dir = fs.Arg(0)
	if o.module == "" {
		o.module = "example.com/" + o.name
	}
	sample, err := sampleRoot()
	if err != nil {
		return err
	}
	o.sample = sample
	if o.emulator == "" {
		o.emulator = filepath.Join(sample, "bin", "emulator")
	}
	if err := create(ctx, o, stderr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, `Created %s: module %s, app %s.
Next:
  cd %s
  make test     # vet, gofmt, the app's tests with the race detector
  make dev      # the app under the emulator as %s; prints its URL and the CLI profile
`, o.dir, o.module, o.name, o.dir, o.name)
	return nil
}

// sampleRoot is the folder of this sample's go.mod, found from the working folder (make new-app runs at the root).
func sampleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "app", "routes.go")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it from this sample's checkout (the folder with go.mod and app/)")
		}
		dir = parent
	}
}
