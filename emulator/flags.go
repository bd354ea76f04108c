package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

const usage = `Databricks Apps emulator: a local, offline Databricks workspace and Apps reverse proxy.

Usage:
  emulator [serve] [flags]                   serve the workspace and one proxy per app
  emulator run [flags] [--app NAME [--app-yaml FILE]]... [-- COMMAND...]
                                             also start apps with the platform's environment
  emulator idp-token --state FILE --issuer NAME --subject S [--audience A] [--lifetime D]
                                             print a token of one of the running emulator's identity
                                             providers (default audience: the account id; lifetime 1h)
  emulator --help

Flags (both commands):
  --config FILE            principal model, JSON or YAML (default: the embedded one, see the README)
  --state FILE             write the state JSON here once everything listens (owner-only; removed on exit)
  --profile-dir DIR        where to write .databrickscfg and the databricks CLI stand-in (default: a temp dir);
                           a new directory, or one holding none of your own .databrickscfg or databricks
  --data-dir DIR            where workspace files and deployments are kept (default: a temp dir removed on exit)
  --token-lifetime D       access token lifetime (default 1h; e.g. 30s to exercise refresh)
  --request-timeout D      how long the proxy waits for an app (default 120s), then answers 504
serve only:
  --upstream NAME=URL      forward app NAME to an app you started yourself (repeatable)
run only:
  --app NAME               the app to start (default: the first app of the model); repeat for several apps
  --app-yaml FILE          read command and env from this app.yaml, for the preceding --app
  --start-timeout D        how long an app may take to listen (default 2m)
  -- COMMAND...            the command of the last --app; $DATABRICKS_APP_PORT in it is replaced

The workspace also serves the Apps, Permissions and workspace files APIs: the real Databricks CLI logged in to it
can create apps, sync and deploy their code (which runs it as below), grant permissions and read the logs.

Apps get DATABRICKS_APP_NAME, DATABRICKS_APP_PORT, DATABRICKS_HOST, DATABRICKS_WORKSPACE_ID, their own service
principal's DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET, and a TMPDIR of their own, removed once they have
exited (the platform throws an app's container away). On SIGINT or SIGTERM the emulator sends each app
SIGTERM and kills it 15 s later, as the platform does.
`

// appLaunch is one app `run` starts.
type appLaunch struct {
	name    string
	appYAML string
	command []string
}

type options struct {
	command        string
	configFile     string
	stateFile      string
	profileDir     string
	dataDir        string
	tokenLifetime  time.Duration
	requestTimeout time.Duration
	startTimeout   time.Duration
	upstreams      map[string]string
	launches       []*appLaunch
}

func parseFlags(command string, args []string, stderr io.Writer) (options, error) {
	o := options{command: command, upstreams: map[string]string{}}
	fs := flag.NewFlagSet("emulator "+command, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage is ours; errors are returned
	fs.StringVar(&o.configFile, "config", "", "")
	fs.StringVar(&o.stateFile, "state", "", "")
	fs.StringVar(&o.profileDir, "profile-dir", "", "")
	fs.StringVar(&o.dataDir, "data-dir", "", "")
	fs.DurationVar(&o.tokenLifetime, "token-lifetime", workspace.DefaultTokenLifetime, "")
	fs.DurationVar(&o.requestTimeout, "request-timeout", workspace.DefaultRequestTimeout, "")
	if command == "serve" {
		fs.Func("upstream", "", func(v string) error {
			name, url, ok := strings.Cut(v, "=")
			if !ok || name == "" || url == "" {
				return fmt.Errorf("want NAME=URL, got %q", v)
			}
			o.upstreams[name] = url
			return nil
		})
	} else {
		fs.DurationVar(&o.startTimeout, "start-timeout", 2*time.Minute, "")
		fs.Func("app", "", func(v string) error {
			o.launches = append(o.launches, &appLaunch{name: v})
			return nil
		})
		fs.Func("app-yaml", "", func(v string) error {
			if len(o.launches) == 0 {
				o.launches = append(o.launches, &appLaunch{})
			}
			last := o.launches[len(o.launches)-1]
			if last.appYAML != "" {
				return errors.New("one --app-yaml per --app")
			}
			last.appYAML = v
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("%w (see --help)", err)
	}
	rest := fs.Args()
	if command == "serve" && len(rest) > 0 {
		return o, fmt.Errorf("serve takes no arguments, got %q; to start an app use: emulator run -- COMMAND", rest)
	}
	if command == "run" {
		if len(o.launches) == 0 {
			o.launches = append(o.launches, &appLaunch{})
		}
		last := o.launches[len(o.launches)-1]
		last.command = rest
		for _, l := range o.launches {
			if len(l.command) == 0 && l.appYAML == "" {
				return o, fmt.Errorf("app %s: give its command after -- or its app.yaml with --app-yaml", appLabel(l.name))
			}
		}
	}
	if o.tokenLifetime < time.Second {
		return o, fmt.Errorf("--token-lifetime %s: want at least 1s", o.tokenLifetime)
	}
	if o.requestTimeout <= 0 {
		return o, fmt.Errorf("--request-timeout %s: want a positive duration", o.requestTimeout)
	}
	return o, nil
}

// appLabel names an --app in messages; an empty name is the model's first app.
func appLabel(name string) string {
	if name == "" {
		return "(default)"
	}
	return name
}
