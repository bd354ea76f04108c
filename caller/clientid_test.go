package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestShownClientID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"7b0d3c52-5e1a-4f0e-9c1d-2a6b8e4f1001": "7b0d3c52-5e1a-4f0e-9c1d-2a6b8e4f1001", // a Databricks client id
		"7B0D3C52-5E1A-4F0E-9C1D-2A6B8E4F1001": "7B0D3C52-5E1A-4F0E-9C1D-2A6B8E4F1001",
		"dose0123456789abcdef0123456789abcdef": "dose…", // an OAuth secret
		"7b0d3c52-5e1a-4f0e-9c1d-2a6b8e4f100":  "7b0d…",
		"7b0d3c52x5e1a-4f0e-9c1d-2a6b8e4f1001": "7b0d…",
		"7b0d3c52-5e1a-4f0e-9c1d-2a6b8e4f100g": "7b0d…",
		"abc":                                  "a…",
		"":                                     "",
	} {
		assert.Equal(t, want, shownClientID(in), in)
	}
}

// A client id and secret given the wrong way round once printed the secret ("service principal dose…"): the caller
// prints a client id whole only when it looks like one, and only its first characters otherwise, SDK errors included.
func TestSwappedClientIDAndSecretNeverPrintTheSecret(t *testing.T) {
	t.Parallel()
	const secret = "dose0123456789abcdef0123456789abcdef"
	e := startEmulator(t, 0)
	host, api := e.state.WorkspaceHost, e.state.Apps["api-app"].URL
	clientID := e.state.ServicePrincipals["external-service"].ClientID // given as the secret
	tests := []struct {
		name  string
		env   map[string]string
		stdin string
		args  []string
	}{
		{"external mode, env", map[string]string{"DATABRICKS_HOST": host, "DATABRICKS_CLIENT_ID": secret,
			"DATABRICKS_CLIENT_SECRET": clientID}, "", []string{"--mode", "external"}},
		{"external mode, flag and stdin", map[string]string{"DATABRICKS_HOST": host}, clientID + "\n",
			[]string{"--mode", "external", "--client-id", secret, "--client-secret-stdin"}},
		{"app mode", map[string]string{"DATABRICKS_HOST": host, "DATABRICKS_CLIENT_ID": secret,
			"DATABRICKS_CLIENT_SECRET": clientID}, "", []string{"--mode", "app"}},
		{"auto mode", map[string]string{"DATABRICKS_HOST": host, "DATABRICKS_CLIENT_ID": secret,
			"DATABRICKS_CLIENT_SECRET": clientID}, "", []string{"--mode", "auto"}},
		// The SDK's own errors name the configuration ("Config: host=…, client_id=…"): a host without OAuth.
		{"external mode, SDK error", map[string]string{"DATABRICKS_HOST": api, "DATABRICKS_CLIENT_ID": secret,
			"DATABRICKS_CLIENT_SECRET": clientID}, "", []string{"--mode", "external"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, command := range [][]string{{"whoami"}, {"whoami", "--json"}, {"doctor"}, {"doctor", "--json"}, {"token"}, {"call", "/api/health"}} {
				args := append(append(append([]string{}, tt.args...), "--url", api), command...)
				r := runCallerStdin(t, tt.env, tt.stdin, args...)
				assert.NotEqual(t, exitOK, r.code, "the swapped credentials get no token")
				for _, out := range []string{r.stdout, r.stderr} {
					assert.NotContains(t, out, secret)
					assert.NotContains(t, out, secret[4:12])
				}
				if tt.name != "auto mode" {
					assert.Contains(t, r.stdout+r.stderr, "dose…", "%s: the client id is named by its first characters", strings.Join(command, " "))
				}
			}
		})
	}
}
