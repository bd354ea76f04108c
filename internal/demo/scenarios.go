package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// scenario is one row of the demo: how the caller gets its token, and what the app must see.
type scenario struct {
	path string // the documentation page's scenario
	how  string // how the token was obtained
	play func(ctx context.Context, e *emulator) row
}

// row is what one scenario showed.
type row struct {
	path, how, user, email, status string
	detail                         string // a line under the table: the scopes seen, or the fix for a refusal
	problem                        string // empty when the row is as expected
}

// scenarios are the three paths of the documentation page "Connect to a Databricks app using token
// authentication", its custom-scope variant, and the two refusals its troubleshooting list starts with.
func scenarios(s workspace.State) []scenario {
	wsID := s.WorkspaceID
	user := func(name string) string { return identity.FormatUser(s.Users[name].ID, wsID) }
	sp := func(name string) string { return identity.FormatUser(s.ServicePrincipals[name].ID, wsID) }
	m2m := func(name string) []string {
		p := s.ServicePrincipals[name]
		return []string{"DATABRICKS_HOST=" + s.WorkspaceHost, "DATABRICKS_CLIENT_ID=" + p.ClientID,
			"DATABRICKS_CLIENT_SECRET=" + p.ClientSecret}
	}
	return []scenario{
		{"local", "CLI profile (U2M)", func(ctx context.Context, e *emulator) row {
			res := e.caller(ctx, e.profileEnv(), "--mode", "local", "--profile", s.Profile, "--app", "api-app", "whoami")
			return expectIdentity(res, user("dev@example.com"), "dev@example.com")
		}},
		{"local+scopes", "login --scopes", func(ctx context.Context, e *emulator) row {
			if err := e.login(ctx, customScopes); err != nil {
				return row{status: "—", problem: err.Error()}
			}
			res := e.caller(ctx, e.profileEnv(), "--mode", "local", "--profile", s.Profile, "--scopes", customScopes,
				"--app", "api-app", "whoami")
			r := expectIdentity(res, user("dev@example.com"), "dev@example.com")
			if claims := res.json.AccessTokenClaims; claims != nil {
				r.detail = "forwarded token's scopes: " + strings.Join(claims.Scopes, " ")
				if !sameScopes(claims.Scopes, strings.Split(customScopes, ",")) && r.problem == "" {
					r.problem = "the forwarded token has scopes " + strings.Join(claims.Scopes, " ")
				}
			} else if r.problem == "" {
				r.problem = "no forwarded user token"
			}
			return r
		}},
		{"external", "SP secret (M2M)", func(ctx context.Context, e *emulator) row {
			res := e.caller(ctx, m2m("external-service"), "--mode", "external", "--app", "api-app", "whoami")
			return expectIdentity(res, sp("external-service"), "")
		}},
		{"app-to-app", "caller-app's SP", func(ctx context.Context, e *emulator) row {
			res := e.caller(ctx, e.profileEnv(), "--mode", "local", "--profile", s.Profile,
				"--url", s.Apps["caller-app"].URL, "call", "/api/call?path=/api/whoami")
			// caller-app answers with what the API app saw when caller-app called it.
			var body struct {
				Status   int               `json:"status"`
				Response identity.WhoAmI   `json:"response"`
				Caller   map[string]string `json:"caller_identity"`
			}
			if res.err == nil && res.exitCode == 0 {
				if err := json.Unmarshal(res.json.Body, &body); err != nil {
					res.err = fmt.Errorf("caller-app's answer: %w", err)
				}
			}
			res.json.WhoAmI, res.json.Status = body.Response, body.Status
			r := expectIdentity(res, sp("caller-app"), "")
			r.detail = "caller-app called api-app as " + body.Caller["principal"]
			return r
		}},
		{"no CAN USE", "SP, no CAN USE", func(ctx context.Context, e *emulator) row {
			res := e.caller(ctx, m2m("no-access-service"), "--mode", "external", "--app", "api-app", "whoami")
			return expectRefusal(res, 403, 4, fixFromChecklist)
		}},
		{"granted", "same SP, granted", func(ctx context.Context, e *emulator) row {
			// The fix the row above printed, applied as the signed-in user, who manages the app: the same call
			// passes at once, with no restart.
			if err := e.grantCanUse(ctx, "api-app", s.ServicePrincipals["no-access-service"].ClientID); err != nil {
				return row{status: "—", problem: "grant CAN USE: " + err.Error()}
			}
			res := e.caller(ctx, m2m("no-access-service"), "--mode", "external", "--app", "api-app", "whoami")
			r := expectIdentity(res, sp("no-access-service"), "")
			r.detail = "dev@example.com, who has CAN MANAGE, granted no-access-service CAN USE through the " +
				"Permissions API (databricks apps update-permissions); the same call then passed"
			return r
		}},
		{"IdP token", "CI's JWT, as is", func(ctx context.Context, e *emulator) row {
			// The page's rule: an identity provider's token cannot call an app; Databricks does not exchange it.
			token, err := e.ciToken(ctx)
			if err != nil {
				return row{status: "—", problem: err.Error()}
			}
			env := []string{"DATABRICKS_HOST=" + s.WorkspaceHost, "DATABRICKS_TOKEN=" + token}
			res := e.caller(ctx, env, "--mode", "auto", "--url", s.Apps["api-app"].URL, "whoami")
			return expectRefusal(res, 401, 3, fixFromChecklist)
		}},
		{"federated", "CI's JWT exchanged", func(ctx context.Context, e *emulator) row {
			token, err := e.ciToken(ctx)
			if err != nil {
				return row{status: "—", problem: err.Error()}
			}
			file := filepath.Join(e.home, "ci-token.jwt") // where a CI job finds its provider's token
			if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
				return row{status: "—", problem: err.Error()}
			}
			env := []string{"DATABRICKS_HOST=" + s.WorkspaceHost,
				"DATABRICKS_CLIENT_ID=" + s.ServicePrincipals["federated-service"].ClientID}
			res := e.caller(ctx, env, "--mode", "federated", "--oidc-token-file", file, "--app", "api-app", "whoami")
			r := expectIdentity(res, sp("federated-service"), "")
			r.detail = "the CI provider's token for repo:acme/api on main was exchanged (token federation) " +
				"for a Databricks token of federated-service, whose federation policy trusts it; no secret"
			return r
		}},
		{"bad token", "garbage bearer", func(ctx context.Context, e *emulator) row {
			// In auto mode a DATABRICKS_TOKEN is sent as it is: here, a token the proxy cannot parse.
			env := []string{"DATABRICKS_HOST=" + s.WorkspaceHost, "DATABRICKS_TOKEN=not-a-real-token"}
			res := e.caller(ctx, env, "--mode", "auto", "--url", s.Apps["api-app"].URL, "whoami")
			return expectRefusal(res, 401, 3, fixFromProxy)
		}},
	}
}

// expectIdentity checks that the app answered 200 and saw this X-Forwarded-User and email.
func expectIdentity(res callerResult, wantUser, wantEmail string) row {
	r := row{user: orDash(res.json.User), email: orDash(res.json.Email), status: strconv.Itoa(res.json.Status)}
	if res.json.Status == 0 && res.exitCode == 0 && res.err == nil {
		r.status = "200" // whoami prints the app's body, whose status is implied by success
	}
	switch {
	case res.err != nil:
		r.status, r.problem = "—", res.err.Error()
	case res.exitCode != 0:
		r.status = strconv.Itoa(res.json.Status)
		r.problem = fmt.Sprintf("the caller failed (exit %d)", res.exitCode)
		if res.json.Response != nil {
			r.detail = "fix: " + res.json.Response.Fix
		}
	case r.status != "200":
		r.problem = "status " + r.status
	case res.json.User != wantUser:
		r.problem = fmt.Sprintf("the app saw %q, want %q", res.json.User, wantUser)
	case res.json.Email != wantEmail:
		r.problem = fmt.Sprintf("the app saw email %q, want %q", res.json.Email, wantEmail)
	}
	return r
}

// Where a refusal's fix comes from: the proxy's own answer, or the caller's checklist (which knows the principal and
// so can give the exact command).
const (
	fixFromProxy = iota
	fixFromChecklist
)

// expectRefusal checks that the proxy refused with this status, and that the caller explained it with this exit
// code and a fix.
func expectRefusal(res callerResult, wantStatus, wantExit, fixFrom int) row {
	r := row{user: "—", email: "—", status: strconv.Itoa(res.json.Status)}
	switch {
	case res.err != nil:
		r.status, r.problem = "—", res.err.Error()
	case res.json.Status != wantStatus || res.exitCode != wantExit:
		r.problem = fmt.Sprintf("status %d exit %d, want %d exit %d", res.json.Status, res.exitCode, wantStatus, wantExit)
	}
	switch {
	case fixFrom == fixFromChecklist && len(res.json.Checklist) > 0:
		r.detail = "fix: " + res.json.Checklist[0]
	case fixFrom == fixFromProxy && res.json.Response != nil && res.json.Response.Fix != "":
		r.detail = "fix: " + res.json.Response.Fix
	}
	if r.detail == "" && r.problem == "" {
		r.problem = "the caller gave no fix"
	}
	return r
}

func sameScopes(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// printTable writes the rows as a table narrow enough for an 80-column terminal, then each row's detail, wrapped.
func printTable(w io.Writer, rows []row) {
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = []string{r.path, r.how, r.user, r.email, r.status}
	}
	printRows(w, "What the app saw, for each way of getting a token:",
		[]string{"PATH", "TOKEN FROM", "X-FORWARDED-USER", "EMAIL", "STATUS"}, cells,
		func(i int) (string, string, string) { return rows[i].path, rows[i].detail, rows[i].problem })
}

// printRows writes a titled table whose last column gets each row's verdict (ok, or FAIL with a problem), then the
// rows' details and problems, wrapped. about gives row i's name, detail and problem.
func printRows(w io.Writer, title string, header []string, cells [][]string, about func(i int) (name, detail, problem string)) {
	fmt.Fprintln(w, title)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for i, c := range cells {
		mark := "ok"
		if _, _, problem := about(i); problem != "" {
			mark = "FAIL"
		}
		fmt.Fprintln(tw, strings.Join(c, "\t")+" "+mark)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for i := range cells {
		name, detail, problem := about(i)
		if detail != "" {
			fmt.Fprint(w, wrap(name+": "+detail, 78, "    "))
		}
		if problem != "" {
			fmt.Fprint(w, wrap(name+": UNEXPECTED: "+problem, 78, "    "))
		}
	}
}

// wrap breaks text into lines of at most width runes on spaces, indenting the continuation lines.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	line := 0
	for i, word := range strings.Fields(text) {
		n := len([]rune(word))
		if i > 0 && line+1+n > width {
			b.WriteString("\n" + indent)
			line = len(indent)
		} else if i > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(word)
		line += n
	}
	b.WriteByte('\n')
	return b.String()
}
