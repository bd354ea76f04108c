package appclient

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/databricks/databricks-sdk-go/client"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/service/apps"
)

// Target is the app a caller talks to: a base URL fixed by configuration and, when it was looked up by name, what
// the Apps API said about it.
type Target struct {
	Base *url.URL
	Name string    // the app's name, when known
	App  *apps.App // when resolved through the Apps API
}

// NameOrEmpty is the app's name, "" when it is not known or there is no target.
func (t *Target) NameOrEmpty() string {
	if t == nil {
		return ""
	}
	return t.Name
}

// State is the app's state as the Apps API said it ("RUNNING"), "" when it was not looked up.
func (t *Target) State() string {
	if t == nil || t.App == nil || t.App.AppStatus == nil {
		return ""
	}
	return string(t.App.AppStatus.State)
}

// ParseAppURL accepts an app's base URL: http(s), a host, no path beyond "/", no query.
func ParseAppURL(raw string) (*url.URL, error) {
	if !strings.Contains(raw, "://") {
		// 127.0.0.1:8000 or api-app-1.aws.databricksapps.com: url.Parse reads a scheme or a path there, not a host.
		host := strings.TrimSpace(raw)
		return nil, fmt.Errorf("%q has no scheme: give the whole URL, https://%s (or http://%s for an app or the "+
			"emulator on this machine)", raw, host, host)
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%q: %v", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%q: want https://<app-name>-<id>.<region>.databricksapps.com", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: give the app's base URL only; the path goes to `call`", raw)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// ErrBadAppName is a --app that cannot be an app's name.
var ErrBadAppName = errors.New("not an app name (lowercase letters, digits and dashes)")

// AppNotRunningError is an app the Apps API knows but that is not RUNNING.
type AppNotRunningError struct {
	Name, State, Message string
}

func (e *AppNotRunningError) Error() string {
	state := e.State
	if state == "" {
		state = "in an unknown state"
	}
	return fmt.Sprintf("app %q is %s, not RUNNING: %s", e.Name, state, e.Message)
}

// Resolve looks the app name up with the Apps API of cfg's workspace (the SDK's service/apps, with cfg's
// credentials) and checks that it is running. A name the workspace does not know is the SDK's *apierr.APIError with
// status 404 (apierr.ErrNotFound).
func Resolve(ctx context.Context, cfg *config.Config, name string) (*Target, error) {
	if name == "" || strings.ContainsAny(name, "/?#%\\") || len(name) > 64 {
		return nil, fmt.Errorf("--app %q: %w", name, ErrBadAppName)
	}
	workspace, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	app, err := apps.NewApps(workspace).GetByName(ctx, name)
	if err != nil {
		return nil, err
	}
	t := &Target{Name: name, App: app}
	if t.State() != string(apps.ApplicationStateRunning) {
		var message string
		if app.AppStatus != nil {
			message = app.AppStatus.Message
		}
		return nil, &AppNotRunningError{Name: name, State: t.State(), Message: message}
	}
	if app.Url == "" {
		return nil, fmt.Errorf("the Apps API answered for %q without a url", name)
	}
	if t.Base, err = ParseAppURL(app.Url); err != nil {
		return nil, fmt.Errorf("the Apps API gave app %q an unusable url %q", name, app.Url)
	}
	return t, nil
}

// ErrBadPath explains why a path is refused.
var ErrBadPath = errors.New("the path must be an /api/ path on the app")

// APIURL joins a request path to the target's base URL. The path may come from a person or from an HTTP request,
// so it is checked strictly: only "/api/..." on the configured host, with no way to climb out of /api/ or name
// another host (no "//", "\", "..", encoded slashes or dots, schemes or user info).
func (t *Target) APIURL(p string) (string, error) {
	if len(p) > 2048 {
		return "", fmt.Errorf("%w: longer than 2048 bytes", ErrBadPath)
	}
	if !strings.HasPrefix(p, "/api/") {
		return "", fmt.Errorf("%w: %q does not start with /api/ (the Apps proxy accepts bearer tokens on /api/ routes only)", ErrBadPath, p)
	}
	for _, r := range p {
		if r < 0x21 || r == 0x7f || r == '\\' {
			return "", fmt.Errorf("%w: %q holds spaces, control characters or backslashes", ErrBadPath, p)
		}
	}
	rawPath, _, _ := strings.Cut(p, "?")
	if strings.Contains(rawPath, "//") || strings.Contains(p, "#") {
		return "", fmt.Errorf("%w: %q holds // or #", ErrBadPath, p)
	}
	lower := strings.ToLower(rawPath)
	for _, enc := range []string{"%2f", "%5c", "%2e", "%25", "%00"} {
		if strings.Contains(lower, enc) {
			return "", fmt.Errorf("%w: %q encodes a slash, backslash, dot, percent or NUL", ErrBadPath, p)
		}
	}
	u, err := url.Parse(p)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadPath, err)
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/api/") {
		return "", fmt.Errorf("%w: %q", ErrBadPath, p)
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return "", fmt.Errorf("%w: %q climbs out of /api/ with a dot segment", ErrBadPath, p)
		}
	}
	full := *t.Base
	full.Path, full.RawPath, full.RawQuery = u.Path, u.RawPath, u.RawQuery
	return full.String(), nil
}
