package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// client sends the caller's requests: a bearer token on each, never a redirect followed, bounded retries of
// transient failures, and one token refresh after a 401.
type client struct {
	http    *http.Client
	creds   *credentials
	retries int
	maxBody int64 // the largest answer it reads; a larger one is a failure, never cut short
	out     *output
	// proxy is the organisation proxy for a URL, from HTTPS_PROXY/HTTP_PROXY/NO_PROXY; doctor reports it.
	proxy func(*url.URL) (*url.URL, error)
}

// maxBody bounds what the caller reads of an answer.
const maxBody = 10 << 20

func newClient(creds *credentials, opts *options, getenv func(string) string, out *output) *client {
	proxy := proxyFromEnv(getenv)
	return &client{
		http: &http.Client{
			Transport: newTransport(proxy),
			// A redirect from the Apps proxy is the login page: report it, never follow it (and never send the
			// token to wherever it points).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		creds:   creds,
		retries: opts.retries,
		maxBody: maxBody,
		out:     out,
		proxy:   proxy,
	}
}

// proxyFromEnv is the organisation proxy for a URL, from HTTPS_PROXY/HTTP_PROXY/NO_PROXY as getenv sees them.
func proxyFromEnv(getenv func(string) string) func(*url.URL) (*url.URL, error) {
	return (&httpproxy.Config{
		HTTPProxy:  firstNonEmpty(getenv("HTTP_PROXY"), getenv("http_proxy")),
		HTTPSProxy: firstNonEmpty(getenv("HTTPS_PROXY"), getenv("https_proxy")),
		NoProxy:    firstNonEmpty(getenv("NO_PROXY"), getenv("no_proxy")),
	}).ProxyFunc()
}

// newTransport is the standard transport through proxy: the client's for the app, the SDK's for the workspace.
func newTransport(proxy func(*url.URL) (*url.URL, error)) *http.Transport {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = func(r *http.Request) (*url.URL, error) { return proxy(r.URL) }
	return transport
}

// response is an answer read in full.
type response struct {
	method, url string
	status      int
	header      http.Header
	body        []byte
	attempts    int
	refreshed   bool // the token was refreshed after a 401
}

// do sends one request, retrying 429/502/503/504 and connection resets up to c.retries times with exponential
// backoff and jitter (or the server's Retry-After), and refreshing the token once after a 401. 502, 504 and resets
// are retried for idempotent methods only: the app may have acted on the request. It returns an error only when
// no answer came back; any HTTP status is a response.
func (c *client) do(ctx context.Context, method, u string, body []byte) (*response, error) {
	refreshed := false
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return nil, usageErrorf("%s %s: %v", method, u, err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		if err := c.creds.authenticate(ctx, req); err != nil {
			return nil, err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if attempt <= c.retries && idempotent(method) && isConnectionReset(err) && ctx.Err() == nil {
				if c.wait(ctx, attempt, "", fmt.Sprintf("connection reset (%v)", err)) {
					continue
				}
			}
			return nil, networkFailure(ctx, c, u, err)
		}
		if resp.ContentLength > c.maxBody {
			resp.Body.Close()
			return nil, c.tooLarge(method, u)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
		resp.Body.Close()
		if err != nil {
			if attempt <= c.retries && idempotent(method) && isConnectionReset(err) && ctx.Err() == nil {
				if c.wait(ctx, attempt, "", "connection reset while reading the answer") {
					continue
				}
			}
			return nil, networkFailure(ctx, c, u, err)
		}
		if int64(len(data)) > c.maxBody {
			return nil, c.tooLarge(method, u)
		}
		r := &response{method: method, url: u, status: resp.StatusCode, header: resp.Header, body: data,
			attempts: attempt, refreshed: refreshed}
		switch {
		case resp.StatusCode == http.StatusUnauthorized && !refreshed:
			// The token may have expired or been revoked since the SDK cached it: get a new one, once.
			refreshed = true
			c.out.notef("401 from %s: refreshing the token and retrying once", hostOf(u))
			if err := c.creds.refresh(); err != nil {
				return r, nil
			}
			attempt-- // the refresh retry does not use up a transient-failure retry
			continue
		case attempt <= c.retries && retryable(method, resp.StatusCode):
			if c.wait(ctx, attempt, resp.Header.Get("Retry-After"), oneLine(resp.Status)) {
				continue
			}
		}
		return r, nil
	}
}

// tooLarge is the failure for an answer over c.maxBody: reported, not cut short, so nobody takes part of an answer
// for all of it.
func (c *client) tooLarge(method, u string) *failure {
	return &failure{Code: exitServer,
		Summary: fmt.Sprintf("%s %s: the answer is larger than %d MiB, the most the caller reads", method, u, c.maxBody>>20),
		Checks:  []string{"the app answers this path with less: a page of results, or a narrower query"}}
}

// wait sleeps before retry number attempt and reports whether to go on: not when the wait would outlast ctx.
func (c *client) wait(ctx context.Context, attempt int, retryAfter, reason string) bool {
	d, ok := parseRetryAfter(retryAfter, time.Now())
	if !ok {
		d = backoff(attempt)
	}
	if deadline, has := ctx.Deadline(); has && time.Until(deadline) < d {
		return false
	}
	c.out.notef("%s: retry %d/%d in %s", reason, attempt, c.retries, d.Round(time.Millisecond))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff is 250 ms doubled per attempt, capped at 8 s, with "equal jitter": half fixed, half random, so that many
// callers retrying at once spread out.
func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(attempt-1, 5)
	d = min(d, 8*time.Second)
	return d/2 + rand.N(d/2+1)
}

// parseRetryAfter reads seconds or an HTTP date, capped at a minute.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
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

// isRefused reports a connection refused: nothing listens at the address.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// isDNS reports a failed name lookup.
func isDNS(err error) bool {
	var dns *net.DNSError
	return errors.As(err, &dns)
}
