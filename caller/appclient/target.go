package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// target is the app the caller talks to: a base URL fixed by configuration, and what the Apps API said about it.
type target struct {
	base *url.URL
	name string   // the app's name, when known
	app  *appInfo // when resolved through the Apps API
}

// nameOrEmpty is the app's name, "" when it is not known or there is no target yet.
func (t *target) nameOrEmpty() string {
	if t == nil {
		return ""
	}
	return t.name
}

// appInfo is the part of GET /api/2.0/apps/{name} the caller uses.
type appInfo struct {
	Name                     string   `json:"name"`
	URL                      string   `json:"url"`
	ServicePrincipalClientID string   `json:"service_principal_client_id"`
	ServicePrincipalID       int64    `json:"service_principal_id"`
	UserAPIScopes            []string `json:"user_api_scopes"`
	AppStatus                struct {
		State   string `json:"state"`
		Message string `json:"message"`
	} `json:"app_status"`
}

// parseAppURL accepts the app's base URL: http(s), a host, no path beyond "/", no query.
func parseAppURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, usageErrorf("--url %q: %v", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return nil, usageErrorf("--url %q: want https://<app-name>-<id>.<region>.databricksapps.com", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, usageErrorf("--url %q: give the app's base URL only; the path goes to `call`", raw)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// resolveApp reads the app from the Apps API with the caller's own credentials and checks it is running.
func resolveApp(ctx context.Context, c *client, name string) (*target, error) {
	if name == "" || strings.ContainsAny(name, "/?#%\\") || len(name) > 64 {
		return nil, usageErrorf("--app %q is not an app name (lowercase letters, digits and dashes)", name)
	}
	host, err := c.creds.workspaceHost(ctx)
	if err != nil {
		return nil, err
	}
	u := host + "/api/2.0/apps/" + url.PathEscape(name)
	resp, err := c.do(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusOK {
		f := statusFailure(ctx, c, resp, &target{name: name})
		if resp.status == http.StatusNotFound {
			f.Summary = fmt.Sprintf("app %q does not exist in workspace %s (or %s cannot see it)", name, host, c.creds.principal)
			f.Checks = []string{
				"the app name and the workspace URL are right: `databricks apps list` in that workspace",
				"the app is deployed: `databricks apps get " + name + "`",
			}
		} else {
			f.Summary = "looking up app " + name + ": " + f.Summary
		}
		return nil, f
	}
	var info appInfo
	if err := json.Unmarshal(resp.body, &info); err != nil || info.URL == "" {
		return nil, &failure{Code: exitServer, Summary: fmt.Sprintf("the Apps API answered for %q without a url", name)}
	}
	if info.AppStatus.State != "RUNNING" {
		return nil, &failure{Code: exitNotFound,
			Summary: fmt.Sprintf("app %q is %s, not RUNNING: %s", name, orDefault(info.AppStatus.State, "in an unknown state"), info.AppStatus.Message),
			Checks:  []string{"the app is deployed and running: `databricks apps start " + name + "`, then `databricks apps deploy " + name + "`"}}
	}
	base, err := parseAppURL(info.URL)
	if err != nil {
		return nil, &failure{Code: exitServer, Summary: fmt.Sprintf("the Apps API gave app %q an unusable url %q", name, info.URL)}
	}
	return &target{base: base, name: name, app: &info}, nil
}

// errBadPath explains why a path is refused.
var errBadPath = errors.New("the path must be an /api/ path on the app")

// apiURL joins a request path to the target's base URL. The path comes from a person or, in serve, from an HTTP
// request, so it is checked strictly: only "/api/..." on the configured host, with no way to climb out of /api/ or
// name another host (no "//", "\", "..", encoded slashes or dots, schemes or user info).
func (t *target) apiURL(p string) (string, error) {
	if len(p) > 2048 {
		return "", fmt.Errorf("%w: longer than 2048 bytes", errBadPath)
	}
	if !strings.HasPrefix(p, "/api/") {
		return "", fmt.Errorf("%w: %q does not start with /api/ (the Apps proxy accepts bearer tokens on /api/ routes only)", errBadPath, p)
	}
	for _, r := range p {
		if r < 0x21 || r == 0x7f || r == '\\' {
			return "", fmt.Errorf("%w: %q holds spaces, control characters or backslashes", errBadPath, p)
		}
	}
	rawPath, _, _ := strings.Cut(p, "?")
	if strings.Contains(rawPath, "//") || strings.Contains(p, "#") {
		return "", fmt.Errorf("%w: %q holds // or #", errBadPath, p)
	}
	lower := strings.ToLower(rawPath)
	for _, enc := range []string{"%2f", "%5c", "%2e", "%25", "%00"} {
		if strings.Contains(lower, enc) {
			return "", fmt.Errorf("%w: %q encodes a slash, backslash, dot, percent or NUL", errBadPath, p)
		}
	}
	u, err := url.Parse(p)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errBadPath, err)
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/api/") {
		return "", fmt.Errorf("%w: %q", errBadPath, p)
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return "", fmt.Errorf("%w: %q climbs out with . or ..", errBadPath, p)
		}
	}
	full := *t.base
	full.Path, full.RawPath, full.RawQuery = u.Path, u.RawPath, u.RawQuery
	return full.String(), nil
}

// appErrorBody parses the shared error shape from a body, when it is one.
func appErrorBody(body []byte) *jsonhttp.Error {
	var e jsonhttp.Error
	if json.Unmarshal(body, &e) != nil || (e.Code == "" && e.Message == "") {
		return nil
	}
	return &e
}
