package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The command line comes from cobra's definitions: what each command parses to, and its help and completion.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	unset := func(string) string { return "" }
	o, err := parseFlags("run", []string{"--fresh", "--app", "caller-app", "--app-yaml", "caller/app.yaml", "--app", "api-app",
		"--start-timeout", "5s", "--verbose", "go", "run", "./app", "--port", "$DATABRICKS_APP_PORT"}, unset, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "run", o.command)
	assert.Equal(t, 5*time.Second, o.startTimeout)
	assert.True(t, o.verbose)
	require.Len(t, o.launches, 2)
	assert.Equal(t, appLaunch{name: "caller-app", appYAML: "caller/app.yaml"}, *o.launches[0])
	assert.Equal(t, appLaunch{name: "api-app", command: []string{"go", "run", "./app", "--port", "$DATABRICKS_APP_PORT"}},
		*o.launches[1], "the command starts at the first argument that is not a flag, -- or not")

	o, err = parseFlags("serve", []string{"--upstream", "api-app=http://127.0.0.1:9", "--upstream", "b=http://x",
		"--state", "/tmp/s.json", "--token-lifetime", "30s", "--fresh"}, unset, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"api-app": "http://127.0.0.1:9", "b": "http://x"}, o.upstreams)
	assert.Equal(t, "/tmp/s.json", o.stateFile)
	assert.Equal(t, 30*time.Second, o.tokenLifetime)

	for args, want := range map[string][]string{
		"run --help":       {"--app NAME", "--app-yaml FILE", "--start-timeout", "--data-dir DIR", "$DATABRICKS_APP_PORT"},
		"--help":           {"idp-token", "run", "serve", "--upstream NAME=URL", "--config FILE", "--verbose"},
		"idp-token --help": {"--issuer", "--subject", "--audience", "--lifetime"},
		"completion bash":  {"bash completion"},
	} {
		var out strings.Builder
		var chosen *options
		root := newRootCommand(unset, &chosen)
		root.SetArgs(strings.Fields(args))
		root.SetOut(&out)
		require.NoError(t, root.Execute(), args)
		assert.Nil(t, chosen, "%s serves nothing", args)
		for _, w := range want {
			assert.Contains(t, out.String(), w, args)
		}
	}
	_, err = parseFlags("run", []string{"--app-yaml", "a.yaml", "--app-yaml", "b.yaml"}, unset, io.Discard)
	assert.ErrorContains(t, err, "one --app-yaml per --app")
}

// parseFlags is what the command line of command (serve or run) chose, as run reads it.
func parseFlags(command string, args []string, getenv func(string) string, stdout io.Writer) (options, error) {
	o, err := execute(context.Background(), append([]string{command}, args...), getenv, stdout, io.Discard)
	if err != nil {
		return options{}, err
	}
	if o == nil {
		return options{}, errors.New("the command line chose neither serve nor run")
	}
	return *o, nil
}
