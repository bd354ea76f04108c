package main

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"

	"github.com/databricks/databricks-sdk-go/config"
)

// What the caller plugs into the SDK's Configs: the loaders that decide where a Config may read its settings from,
// and the transport of the SDK's own requests to the workspace.

// noDebugHeaders runs after the other loaders: debug_headers (DATABRICKS_DEBUG_HEADERS, or a profile) makes the SDK's
// debug log print Authorization headers, the M2M secret included. The caller never prints a credential.
type noDebugHeaders struct{}

func (noDebugHeaders) Name() string { return "no-debug-headers" }

func (noDebugHeaders) Configure(cfg *config.Config) error {
	cfg.DebugHeaders = false
	return nil
}

// envLoader is the SDK's environment loader reading through getenv, so tests can run the program in-process.
type envLoader func(string) string

func (envLoader) Name() string { return "environment" }

func (getenv envLoader) Configure(cfg *config.Config) error {
	for _, attr := range config.ConfigAttributes {
		if !attr.IsZero(cfg) {
			continue
		}
		for _, name := range attr.EnvVars {
			if v := getenv(name); v != "" {
				if err := attr.SetS(cfg, v); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				cfg.SetAttrSource(&attr, config.Source{Type: config.SourceEnv, Name: name})
				break
			}
		}
	}
	return nil
}

// configFilePath is DATABRICKS_CONFIG_FILE, else ~/.databrickscfg (from HOME as getenv sees it).
func configFilePath(getenv func(string) string) string {
	if p := getenv("DATABRICKS_CONFIG_FILE"); p != "" {
		return p
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".databrickscfg")
	}
	return ""
}

// workspaceTransport sends the SDK's requests to the workspace (over the run's one transport) and remembers the last one that got no answer (until
// one does), so that a failed token fetch can say the workspace was unreachable and which it was (scheme://host).
type workspaceTransport struct {
	base  http.RoundTripper
	proxy func(*url.URL) (*url.URL, error)

	mu   sync.Mutex
	host string
	err  error
}

func (t *workspaceTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err == nil:
		t.host, t.err = "", nil
	case req.Context().Err() == nil: // not our own cancellation
		t.host, t.err = req.URL.Scheme+"://"+req.URL.Host, err
	}
	return resp, err
}

func (t *workspaceTransport) lastError() (host string, err error) {
	if t == nil {
		return "", nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.host, t.err
}

// unreachable is the network failure (exit 6) of requests to the workspace whose last one got no answer, naming the
// workspace and why; nil when it answered. what is what the requests were for ("login to …"), hostSource where the
// workspace URL came from, for a person to fix it; timedOut adds that it was still failing at --timeout.
func (t *workspaceTransport) unreachable(what, hostSource string, timedOut bool) *failure {
	host, netErr := t.lastError()
	if netErr == nil {
		return nil
	}
	f := &failure{Code: exitNetwork}
	switch {
	case isRefused(netErr):
		f.Summary = fmt.Sprintf("%s: nothing is listening at the workspace %s (connection refused)", what, host)
	case isDNS(netErr):
		f.Summary = fmt.Sprintf("%s: cannot resolve the workspace %s: %v", what, host, netErr)
	default:
		f.Summary = fmt.Sprintf("%s: cannot reach the workspace %s: %v", what, host, netErr)
	}
	if timedOut {
		f.Summary += ", still failing at --timeout"
	}
	proxy := "no proxy is used for the workspace: if your organisation requires one, set HTTPS_PROXY (and NO_PROXY)"
	if u, perr := url.Parse(host); perr == nil {
		if p, perr := t.proxy(u); perr == nil && p != nil {
			proxy = "the organisation proxy " + p.Redacted() + " (HTTPS_PROXY) lets " + u.Host + " through"
		}
	}
	f.Checks = []string{
		"the workspace URL is right: " + host + " (" + hostSource + ")",
		"the workspace is up and your network allows outbound HTTPS to it: `curl -sI " + host + "/oidc/.well-known/oauth-authorization-server`",
		proxy,
	}
	return f
}
