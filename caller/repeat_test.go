package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// countingCLI is a databricks CLI that logs each invocation's arguments to a file and execs the emulator's CLI
// stand-in. The SDK takes a CLI smaller than 1 MiB for the legacy Python one, so the script is padded with a comment
// that sh never reads (exec replaces it first).
type countingCLI struct {
	path, log string
}

func newCountingCLI(t *testing.T, e *emulator) *countingCLI {
	t.Helper()
	dir := t.TempDir()
	c := &countingCLI{path: filepath.Join(dir, "databricks"), log: filepath.Join(dir, "invocations.log")}
	standIn := filepath.Join(filepath.Dir(e.state.ConfigFile), workspace.CLIFileName)
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> '%s'\nexec '%s' \"$@\"\n", c.log, standIn)
	script += strings.Repeat("# padding: the SDK wants a CLI of 1 MiB or more\n", (1<<20)/48+1)
	require.NoError(t, os.WriteFile(c.path, []byte(script), 0o700))
	return c
}

// invocations are the argument lists the CLI was run with, oldest first.
func (c *countingCLI) invocations(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(c.log)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestStressTokenReuse: 1,000 requests in a row in each mode, over one *config.Config, fetch a token once. What the
// workspace's token endpoint counts per mode:
//   - external: 1, the service principal's client-credentials grant.
//   - local: 2, both from the SDK's databricks-cli auth, which runs `databricks version`, then `auth token` once to
//     check the CLI works (and throws that token away), then once more for the token it caches; it passes
//     --force-refresh to CLIs from 0.296.0, so each run costs the CLI (here the stand-in) one token request.
//   - app: 1 for caller-app's service principal, behind the developer's local caller (2 more, as above).
func TestStressTokenReuse(t *testing.T) {
	t.Parallel()
	const n = 1000
	e := startEmulator(t, 0)
	startCallerApp(t, e)
	cli := newCountingCLI(t, e)
	local := e.env("DATABRICKS_CLI_PATH", cli.path)
	sdkCLIRuns := []string{"version", "auth token --profile emulator --force-refresh", "auth token --profile emulator --force-refresh"}

	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCLI    []string // the CLI's runs, each `auth token` one token request
		wantTokens int64    // the mode's own token requests: the CLI's runs excluded
	}{
		{"local", local, []string{"--mode", "local", "--profile", "emulator", "--app", "api-app", "whoami"}, sdkCLIRuns, 0},
		{"external", e.spEnv("external-service"), []string{"--mode", "external", "--app", "api-app", "whoami"}, nil, 1},
		{"app", local, []string{"--mode", "local", "--profile", "emulator", "--app", "caller-app", "call", "/api/call?path=/api/whoami"}, sdkCLIRuns, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokensBefore, cliBefore := e.ws.RequestCount(workspace.PathToken), len(cli.invocations(t))
			r := runCaller(t, tt.env, append(tt.args, "--repeat", fmt.Sprint(n), "--json", "--timeout", "50s")...)
			require.Equal(t, exitOK, r.code, r.String())
			var sum repeatSummary
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), r.stdout)
			assert.Equal(t, n, sum.Requests)
			assert.Equal(t, map[string]int{"200": n}, sum.Statuses)
			assert.Positive(t, sum.P50ms)
			assert.GreaterOrEqual(t, sum.P99ms, sum.P50ms)

			tokens := e.ws.RequestCount(workspace.PathToken) - tokensBefore
			runs := cli.invocations(t)[cliBefore:]
			cliTokens := int64(len(runs) - min(len(runs), 1)) // every run but `version`
			t.Logf("%s mode: %d requests, %d token endpoint requests (%d by the CLI stand-in), CLI runs %q, p50 %.3f ms, p99 %.3f ms",
				tt.name, n, tokens, cliTokens, runs, sum.P50ms, sum.P99ms)
			assert.Equal(t, len(tt.wantCLI), len(runs), "CLI runs: %q", runs)
			if len(tt.wantCLI) > 0 {
				assert.Equal(t, tt.wantCLI, runs)
			}
			assert.Equal(t, tt.wantTokens, tokens-cliTokens, "the mode's own token requests per %d calls", n)
		})
	}
}

func TestRepeatSummaryAndFirstFailure(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, 0)
	env, api := e.spEnv("external-service"), e.state.Apps["api-app"].URL

	tokens := e.ws.RequestCount(workspace.PathToken)
	r := runCaller(t, env, "--mode", "external", "--url", api, "--repeat", "5", "call", "/api/whoami")
	require.Equal(t, exitOK, r.code, r.String())
	assert.Regexp(t, `^5 requests GET `+regexp.QuoteMeta(api)+`/api/whoami: 5×200, p50 \d+\.\d{3} ms, p99 \d+\.\d{3} ms \(external mode, auth type oauth-m2m\)\n$`, r.stdout)
	assert.Equal(t, tokens+1, e.ws.RequestCount(workspace.PathToken), "one token for the five")

	r = runCaller(t, env, "--mode", "external", "--url", api, "--repeat", "5", "--json", "whoami")
	require.Equal(t, exitOK, r.code, r.String())
	var sum map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum))
	assert.Equal(t, float64(5), sum["requests"])
	assert.Equal(t, map[string]any{"200": float64(5)}, sum["statuses"])
	assert.Contains(t, sum, "p50_ms")
	assert.Contains(t, sum, "p99_ms")

	boom := e.inject(t, workspace.Fault{App: "api-app", Path: "/api/boom", Status: http.StatusInternalServerError})
	r = runCaller(t, env, "--mode", "external", "--url", api, "--repeat", "5", "--retries", "0", "call", "/api/boom")
	assert.Equal(t, exitServer, r.code)
	assert.Contains(t, r.stderr, "callapp: request 1 of 5: 500 Internal Server Error")
	assert.Equal(t, 1, boom.Hits(), "the first failure stops the run")
}
