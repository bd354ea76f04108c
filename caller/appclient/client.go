// Package appclient calls a Databricks App's API through its Apps proxy: a bearer token on each request, one token
// refresh after a 401, bounded retries of transient failures, never a redirect followed, and a bound on the size of
// an answer. It also looks an app up by name through the workspace's Apps API (the SDK's service/apps).
//
// Two ways in. Transport is an http.RoundTripper that adds and refreshes the bearer, as x/oauth2's does, for a program
// that keeps its own http.Client. Client is that transport plus retries, the size bound and typed errors
// (*StatusError with the answer and its Databricks error body, *NetworkError, *TooLargeError); it prints nothing and
// decides nothing for a person: the program on top explains them.
//
//	hc := &http.Client{Transport: &appclient.Transport{Creds: appclient.ConfigCredentials(appauth.FromApp())}}
//	c := appclient.New(appclient.ConfigCredentials(appauth.External(host, clientID, clientSecret)))
//	resp, err := c.Do(ctx, http.MethodGet, appURL+"/api/whoami", nil)
package appclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/databricks/databricks-sdk-go/config"
)

// Credentials put a bearer token on a request, and drop it for a new one after a 401.
type Credentials interface {
	Authenticate(ctx context.Context, req *http.Request) error
	// Refresh makes the next Authenticate use a new token. An error means there is none to get: the 401 stands.
	Refresh() error
}

// ConfigCredentials are the credentials of one *config.Config (from caller/appauth, say). The SDK refreshes its
// token before it expires; Refresh cannot force it, so a 401 is reported rather than retried.
func ConfigCredentials(cfg *config.Config) Credentials { return configCredentials{cfg} }

type configCredentials struct{ cfg *config.Config }

func (c configCredentials) Authenticate(_ context.Context, req *http.Request) error {
	return c.cfg.Authenticate(req)
}

func (configCredentials) Refresh() error {
	return errors.New("a config.Config refreshes its token by itself")
}

// DefaultMaxBody bounds what a Client reads of an answer: 10 MiB.
const DefaultMaxBody = 10 << 20

// Client sends requests to apps. Its fields may be changed before the first request.
type Client struct {
	// HTTP sends the requests: its Transport puts the bearer token on (a *Transport), and it follows no redirect.
	HTTP    *http.Client
	Retries int   // retries of 429/503, and of 502/504 and connection resets for idempotent methods
	MaxBody int64 // the largest answer read; a larger one is a *TooLargeError, never cut short
	// OnRetry, when set, hears of each retry before its wait, and of the refresh after a 401 (attempt 0).
	OnRetry func(Retry)
}

// Retry is one retry a Client is about to make.
type Retry struct {
	Attempt int           // 1 for the first retry; 0 for the one refresh after a 401
	Of      int           // the retry budget
	Wait    time.Duration // before the retry
	Reason  string        // "503 Service Unavailable", "connection reset (…)", "401 from host: refreshing the token"
}

// New is a Client with creds, three retries and DefaultMaxBody, over the standard transport.
func New(creds Credentials) *Client {
	base := NewTransport(http.ProxyFromEnvironment)
	return &Client{HTTP: NewHTTPClient(&Transport{Creds: creds, Base: base}), Retries: 3, MaxBody: DefaultMaxBody}
}

// NewHTTPClient is an http.Client over transport that never follows a redirect: from the Apps proxy a redirect is
// the login page, and following it would send the token wherever it points.
func NewHTTPClient(transport http.RoundTripper) *http.Client {
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// NewTransport is the standard transport through proxy (an organisation proxy per request URL).
func NewTransport(proxy func(*http.Request) (*url.URL, error)) *http.Transport {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = proxy
	return transport
}

// Response is an answer read in full.
type Response struct {
	Method, URL string
	Status      int
	Header      http.Header
	Body        []byte
	Attempts    int
	Refreshed   bool // the token was refreshed after a 401
}

// Do sends one request, retrying 429/502/503/504 and connection resets up to c.Retries times with exponential
// backoff and jitter (or the server's Retry-After); its Transport refreshes the token once after a 401. 502, 504 and
// resets are retried for idempotent methods only: the app may have acted on the request. A 2xx answer is a
// Response; any other status is the Response and a *StatusError; no answer is a *NetworkError or the credentials'
// error.
func (c *Client) Do(ctx context.Context, method, u string, body []byte) (*Response, error) {
	ctx, note := withRefreshNote(ctx, func() {
		c.notify(Retry{Of: c.Retries, Reason: "401 from " + hostOf(u) + ": refreshing the token and retrying once"})
	})
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, u, err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		resp, err := c.HTTP.Do(req)
		if credsErr, ok := credentialsError(err); ok {
			return nil, credsErr
		}
		if err != nil {
			if c.retryReset(ctx, method, attempt, err, fmt.Sprintf("connection reset (%v)", err)) {
				continue
			}
			return nil, &NetworkError{Method: method, URL: u, Err: err}
		}
		if resp.ContentLength > c.MaxBody {
			resp.Body.Close()
			return nil, &TooLargeError{Method: method, URL: u, Limit: c.MaxBody}
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, c.MaxBody+1))
		resp.Body.Close()
		if err != nil {
			if c.retryReset(ctx, method, attempt, err, "connection reset while reading the answer") {
				continue
			}
			return nil, &NetworkError{Method: method, URL: u, Err: err}
		}
		if int64(len(data)) > c.MaxBody {
			return nil, &TooLargeError{Method: method, URL: u, Limit: c.MaxBody}
		}
		r := &Response{Method: method, URL: u, Status: resp.StatusCode, Header: resp.Header, Body: data,
			Attempts: attempt, Refreshed: note.refreshed}
		if attempt <= c.Retries && retryable(method, resp.StatusCode) &&
			c.wait(ctx, attempt, resp.Header.Get("Retry-After"), resp.Status) {
			continue
		}
		if r.Status < 200 || r.Status > 299 {
			return r, &StatusError{Response: r}
		}
		return r, nil
	}
}

func (c *Client) retryReset(ctx context.Context, method string, attempt int, err error, reason string) bool {
	return attempt <= c.Retries && idempotent(method) && isConnectionReset(err) && ctx.Err() == nil &&
		c.wait(ctx, attempt, "", reason)
}

func (c *Client) notify(r Retry) {
	if c.OnRetry != nil {
		c.OnRetry(r)
	}
}

// wait sleeps before retry number attempt and reports whether to go on: not when the wait would outlast ctx.
func (c *Client) wait(ctx context.Context, attempt int, retryAfter, reason string) bool {
	d, ok := ParseRetryAfter(retryAfter, time.Now())
	if !ok {
		d = Backoff(attempt)
	}
	if deadline, has := ctx.Deadline(); has && time.Until(deadline) < d {
		return false
	}
	c.notify(Retry{Attempt: attempt, Of: c.Retries, Wait: d, Reason: reason})
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Backoff is 250 ms doubled per attempt, capped at 8 s, with "equal jitter": half fixed, half random, so that many
// callers retrying at once spread out.
func Backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(attempt-1, 5)
	d = min(d, 8*time.Second)
	return d/2 + rand.N(d/2+1)
}

// ParseRetryAfter reads seconds or an HTTP date, capped at a minute.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(d, time.Minute), true
}

func retryable(method string, status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true // the server says it did not process the request
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return idempotent(method)
	}
	return false
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

func isConnectionReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) ||
		(errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled))
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return u
}
