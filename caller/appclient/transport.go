package appclient

import (
	"context"
	"errors"
	"io"
	"net/http"
)

// Transport is an http.RoundTripper that puts a bearer token from Creds on each request, as x/oauth2's Transport
// does, so a program keeps its own http.Client:
//
//	hc := &http.Client{Transport: &appclient.Transport{Creds: appclient.ConfigCredentials(appauth.FromApp())}}
//	resp, err := hc.Get(appURL + "/api/whoami")
//
// After a 401 it refreshes the token once and sends the request again, when the request's body can be sent again
// (none, or GetBody set, as http.NewRequest sets it for in-memory bodies). It never changes the request it is given.
// A Credentials error comes back as a *CredentialsError (inside http.Client's *url.Error).
type Transport struct {
	Creds Credentials
	Base  http.RoundTripper // nil means http.DefaultTransport
}

// CredentialsError is a request that was not sent because Creds could not put a token on it.
type CredentialsError struct{ Err error }

func (e *CredentialsError) Error() string { return e.Err.Error() }
func (e *CredentialsError) Unwrap() error { return e.Err }

func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.send(req, req.Body)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	// The token may have expired or been revoked since it was cached: get a new one, once per Client.Do.
	note, _ := req.Context().Value(refreshKey{}).(*refreshNote)
	if (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) || (note != nil && note.tried) {
		return resp, nil
	}
	if note != nil {
		note.tried = true
		note.onRefresh()
	}
	if t.Creds.Refresh() != nil {
		return resp, nil // no new token to get: the 401 stands
	}
	if note != nil {
		note.refreshed = true
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection can be reused
	resp.Body.Close()
	body := req.Body
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return t.send(req, body)
}

// send sends a copy of req with the bearer token and body, which it closes.
func (t *Transport) send(req *http.Request, body io.ReadCloser) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.Body = body
	if err := t.Creds.Authenticate(req.Context(), out); err != nil {
		if out.Body != nil {
			out.Body.Close()
		}
		return nil, &CredentialsError{Err: err}
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(out)
}

// refreshNote is how Client.Do hears, through the request's context, of the Transport's refresh: to refresh only
// once per call, retries included, and to say so.
type refreshNote struct {
	tried, refreshed bool
	onRefresh        func()
}

type refreshKey struct{}

func withRefreshNote(ctx context.Context, onRefresh func()) (context.Context, *refreshNote) {
	n := &refreshNote{onRefresh: onRefresh}
	return context.WithValue(ctx, refreshKey{}, n), n
}

// credentialsError is the Credentials' own error of a request that was not sent, if that is why.
func credentialsError(err error) (error, bool) {
	var ce *CredentialsError
	if errors.As(err, &ce) {
		return ce.Err, true
	}
	return nil, false
}
