package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/databricks-sample/go-apps-api/caller/appclient"
)

// callCmd is `caller call [METHOD] PATH [--data JSON|@file]`: one request to any app, its answer printed as it came.
type callCmd struct {
	data   string
	repeat int // send the request this many times and print a summary; 0 means once, with the answer
	method string
	path   string
}

func (c *callCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.data, "data", "", "request body for call: JSON, or @file")
	fs.IntVar(&c.repeat, "repeat", 0, "call, whoami: send the request N times in a row over one token, print count, statuses and p50/p99 latency")
}

func (c *callCmd) check(_ *options, args []string, set map[string]bool) error {
	if len(args) < 1 || len(args) > 2 {
		return errors.New("call takes [METHOD] PATH, for example `call GET /api/whoami`")
	}
	c.path, c.method = args[len(args)-1], http.MethodGet
	if c.data != "" {
		c.method = http.MethodPost
	}
	if len(args) == 2 {
		c.method = strings.ToUpper(args[0])
		if !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead}, c.method) {
			return fmt.Errorf("unsupported method %q", args[0])
		}
	}
	return checkRepeat(c.repeat, set)
}

// callResult is `call`'s --json output; Body is the app's answer as it came (JSON, or a JSON string).
type callResult struct {
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Status   int             `json:"status"`
	Mode     Mode            `json:"mode"`
	AuthType string          `json:"auth_type"`
	Body     json.RawMessage `json:"body"`
}

func (c *callCmd) run(ctx context.Context, e *env) error {
	var body []byte
	if c.data != "" {
		body = []byte(c.data)
		if name, ok := strings.CutPrefix(c.data, "@"); ok {
			var err error
			if body, err = os.ReadFile(name); err != nil {
				return usageErrorf("--data %s: %v", c.data, err)
			}
		}
		if !json.Valid(body) {
			return usageErrorf("--data is not valid JSON")
		}
	}
	s, err := newSession(ctx, e)
	if err != nil {
		return err
	}
	if err := s.resolveTarget(ctx); err != nil {
		return err
	}
	if c.repeat > 0 {
		return s.repeat(ctx, c.repeat, c.method, c.path, body)
	}
	resp, err := s.send(ctx, c.method, c.path, body)
	if err != nil {
		return s.explain(ctx, err, s.target)
	}
	s.printAnswer(resp)
	return nil
}

// printAnswer prints an app's answer as it came (JSON indented, nothing else changed), and with --json inside
// call's envelope.
func (s *session) printAnswer(resp *appclient.Response) {
	out := s.env.out
	out.notef("%s %s: %d %s (%s mode, auth type %s)", resp.Method, resp.URL, resp.Status, http.StatusText(resp.Status),
		s.creds.mode, s.creds.authType())
	out.result(prettyBody(resp.Body), callResult{Method: resp.Method, URL: resp.URL, Status: resp.Status,
		Mode: s.creds.mode, AuthType: s.creds.authType(), Body: bodyJSON(resp.Body)})
}
