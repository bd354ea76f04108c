package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/databricks/databricks-sdk-go/apierr"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/caller/appclient"
)

// session is what call, whoami, doctor and serve share: the mode's credentials, the client that calls with them and
// the app it calls.
type session struct {
	env    *env
	creds  *credentials
	client *appclient.Client
	target *appclient.Target
}

// newSession prepares the credentials and the clients; nothing talks to the network yet.
func newSession(ctx context.Context, e *env) (*session, error) {
	creds, err := newCredentials(ctx, e)
	if err != nil {
		return nil, err
	}
	return &session{env: e, creds: creds, client: newClient(e, creds)}, nil
}

// newClient is an app client over the run's transport, whose retries the person running the command hears of.
func newClient(e *env, creds appclient.Credentials) *appclient.Client {
	return &appclient.Client{
		HTTP:    appclient.NewHTTPClient(&appclient.Transport{Creds: creds, Base: e.transport}),
		Retries: e.opts.retries,
		MaxBody: appclient.DefaultMaxBody,
		OnRetry: func(r appclient.Retry) {
			if r.Attempt == 0 {
				e.out.notef("%s", r.Reason)
				return
			}
			e.out.notef("%s: retry %d/%d in %s", oneLine(r.Reason), r.Attempt, r.Of, r.Wait.Round(1e6))
		},
	}
}

// resolveTarget sets the session's app from --url or --app.
func (s *session) resolveTarget(ctx context.Context) error {
	opts := s.env.opts
	switch {
	case opts.url != "":
		base, err := parseAppURL(opts.url)
		if err != nil {
			return err
		}
		s.target = &appclient.Target{Base: base}
		return nil
	case opts.app != "":
		t, err := s.resolveApp(ctx, opts.app)
		s.target = t
		return err
	}
	return usageErrorf("give the app: --url https://<app>.databricksapps.com or --app NAME")
}

// resolveApp looks the app up with the Apps API and explains a failure as the lookup's. With --scopes in local mode
// it asks with the profile's own token (creds.lookup): one holding only an app's scopes may not call the Apps API.
func (s *session) resolveApp(ctx context.Context, name string) (*appclient.Target, error) {
	lookupCreds := cmp.Or(s.creds.lookup, s.creds)
	host, err := lookupCreds.workspaceHost(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := lookupCreds.current()
	if err != nil {
		return nil, err
	}
	t, err := appclient.Resolve(ctx, cfg, name)
	var apiErr *apierr.APIError
	var notRunning *appclient.AppNotRunningError
	var f *failure
	lookupURL := host + "/api/2.0/apps/" + name
	switch {
	case err == nil:
		return t, nil
	case errors.Is(err, appclient.ErrBadAppName):
		return nil, usageErrorf("%v", err)
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound:
		return nil, &failure{Code: exitNotFound, Status: apiErr.StatusCode,
			Response: &jsonhttp.Error{Code: apiErr.ErrorCode, Message: apiErr.Message},
			Summary:  fmt.Sprintf("app %q does not exist in workspace %s (or %s cannot see it)", name, host, lookupCreds.principal),
			Checks: []string{
				"the app name and the workspace URL are right: `databricks apps list` in that workspace",
				"the app is deployed: `databricks apps get " + name + "`",
			}}
	case errors.As(err, &apiErr):
		body, _ := json.Marshal(jsonhttp.Error{Code: apiErr.ErrorCode, Message: apiErr.Message})
		f := s.statusFailure(ctx, &appclient.Response{Method: http.MethodGet, URL: lookupURL, Status: apiErr.StatusCode,
			Header: http.Header{}, Body: body}, &appclient.Target{Name: name})
		f.Summary = "looking up app " + name + ": " + f.Summary
		return nil, f
	case errors.As(err, &notRunning):
		return nil, &failure{Code: exitNotFound, Summary: notRunning.Error(),
			Checks: []string{"the app is deployed and running: `databricks apps start " + name + "`, then `databricks apps deploy " + name + "`"}}
	case errors.As(err, &f):
		return nil, f
	case errors.As(err, new(*url.Error)), errors.As(err, new(*net.OpError)), errors.Is(err, context.DeadlineExceeded):
		return nil, s.networkFailure(ctx, lookupURL, err)
	default:
		return nil, &failure{Code: exitServer, Summary: fmt.Sprintf("looking up app %s: %v", name, err)}
	}
}

// parseAppURL is appclient.ParseAppURL for --url and TARGET_APP_URL: a usage failure when it is not an app's URL.
func parseAppURL(raw string) (*url.URL, error) {
	u, err := appclient.ParseAppURL(raw)
	if err != nil {
		return nil, usageErrorf("--url %v", err)
	}
	return u, nil
}

// send validates the path and sends the request to the session's app.
func (s *session) send(ctx context.Context, method, path string, body []byte) (*appclient.Response, error) {
	u, err := s.target.APIURL(path)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return s.client.Do(ctx, method, u, body)
}
