package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/databricks-sample/go-apps-api/caller/appclient"
)

// callCmd is `callapp call [METHOD] PATH [--data JSON|@file]`: one request to any app, its answer printed as it came.
type callCmd struct {
	data   string
	repeat int // send the request this many times and print a summary; 0 means once, with the answer
	method string
	path   string
}

func newCallCommand(p *parsed) *cobra.Command {
	c := &callCmd{}
	cmd := &cobra.Command{
		Use:   "call [METHOD] PATH [--data JSON|@file]",
		Short: "One request; the app's answer is printed as it came",
		Example: `  callapp --app api-app call /api/whoami
  callapp --app api-app call POST /api/echo --data '{"hello":"world"}'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.check(args, cmd.Flags().Changed("repeat")); err != nil {
				return err
			}
			p.choose(cmd, c, c.run)
			return nil
		},
	}
	cmd.Flags().StringVar(&c.data, "data", "", "request body: JSON, or @file")
	repeatFlag(cmd.Flags(), &c.repeat)
	targetFlags(cmd.Flags(), p.opts)
	return cmd
}

func (c *callCmd) check(args []string, repeatSet bool) error {
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
	return checkRepeat(c.repeat, repeatSet)
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
