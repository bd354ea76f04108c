package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/client"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/service/sql"

	"github.com/databricks-sample/go-apps-api/app/sdkconfig"
	"github.com/databricks-sample/go-apps-api/emulator/browser"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// The data rows: what user authorization buys. The same endpoint, /api/orders, read as two users and as the app
// shows the table's row filter and column mask at work; then the two refusals a data app meets first.

// ordersPath is the endpoint the rows call: EMEA's orders, as many as there are.
const ordersPath = "/api/orders?region=EMEA&limit=100"

// dataRow is what one data scenario showed.
type dataRow struct {
	path, how string
	as        string // whose view: the user's, or the app's
	seen      string // how many of EMEA's orders
	emails    string // visible or masked
	status    string
	detail    string
	problem   string
}

type dataScenario struct {
	path, how string
	play      func(ctx context.Context, e *emulator) dataRow
}

// orders is /api/orders' answer.
type orders struct {
	User *ordersSide `json:"on_behalf_of_user"`
	App  *ordersSide `json:"app_service_principal"`
}

type ordersSide struct {
	Principal string              `json:"principal"`
	Visible   int                 `json:"visible"`
	Rows      []map[string]string `json:"rows"`
}

// emails says whether a view's customer emails came masked.
func (s *ordersSide) emails() string {
	if len(s.Rows) == 0 {
		return "—"
	}
	if strings.HasPrefix(s.Rows[0]["customer_email"], "***@") {
		return "masked"
	}
	return "visible"
}

// dataScenarios are the rows of the data table.
func dataScenarios(s workspace.State) []dataScenario {
	var region int // EMEA's orders, as the lead sees them all: set by the first row
	seen := func(side *ordersSide) string { return fmt.Sprintf("%d of %d", side.Visible, region) }
	return []dataScenario{
		{"lead", "dev's CLI profile", func(ctx context.Context, e *emulator) dataRow {
			res := e.caller(ctx, e.profileEnv(), "--mode", "local", "--profile", s.Profile, "--scopes", customScopes,
				"--app", "api-app", "call", ordersPath)
			o, r := readOrders(res)
			if r.problem != "" {
				return r
			}
			region = o.User.Visible
			r.as, r.seen, r.emails = o.User.Principal, seen(o.User), o.User.emails()
			r.detail = fmt.Sprintf("dev, a sales lead, sees every order and the customers' emails; the app's own "+
				"view, beside it in the same answer: %s orders, emails %s", seen(o.App), o.App.emails())
			if o.User.emails() != "visible" || o.App.emails() != "masked" {
				r.problem = "the column mask did not apply as the model says"
			}
			return r
		}},
		{"rep", "ana's browser", func(ctx context.Context, e *emulator) dataRow {
			o, r := e.ordersInBrowser(ctx, "ana@example.com")
			if r.problem != "" {
				return r
			}
			r.as, r.seen, r.emails = o.User.Principal, seen(o.User), o.User.emails()
			r.detail = "ana, a sales rep, signed in to the app in her browser: the row filter shows her own orders " +
				"only, and the mask hides the emails"
			if o.User.Visible == 0 || o.User.Visible >= region || o.User.emails() != "masked" {
				r.problem = "ana's view is not her own orders, masked"
			}
			return r
		}},
		{"app itself", "SP secret (M2M)", func(ctx context.Context, e *emulator) dataRow {
			p := s.ServicePrincipals["external-service"]
			env := []string{"DATABRICKS_HOST=" + s.WorkspaceHost, "DATABRICKS_CLIENT_ID=" + p.ClientID,
				"DATABRICKS_CLIENT_SECRET=" + p.ClientSecret}
			res := e.caller(ctx, env, "--mode", "external", "--app", "api-app", "call", ordersPath)
			o, r := readOrders(res)
			if r.problem != "" {
				return r
			}
			if o.User != nil || o.App == nil {
				r.problem = "a service principal's call got a user's view"
				return r
			}
			r.as, r.seen, r.emails = "api-app's SP", seen(o.App), o.App.emails()
			r.detail = "external-service called: the proxy forwards no token for a service principal, so the app " +
				"answers with its own view, which its group sales-reporting grants"
			return r
		}},
		{"no sql scope", "login without sql", func(ctx context.Context, e *emulator) dataRow {
			const scopes = "file.files,dashboards.genie"
			if err := e.login(ctx, scopes); err != nil {
				return dataRow{status: "—", problem: err.Error()}
			}
			res := e.caller(ctx, e.profileEnv(), "--mode", "local", "--profile", s.Profile, "--scopes", scopes,
				"--app", "api-app", "call", ordersPath)
			r := dataRow{as: "—", seen: "—", emails: "—", status: strconv.Itoa(res.json.Status)}
			switch {
			case res.err != nil:
				r.problem = res.err.Error()
			case res.json.Status != http.StatusForbidden:
				r.problem = fmt.Sprintf("status %d, want 403", res.json.Status)
			case len(res.json.Checklist) > 0:
				r.detail = "fix: " + res.json.Checklist[0]
			default:
				r.problem = "the caller gave no fix"
			}
			return r
		}},
		{"no SELECT", "SP runs the SQL", func(ctx context.Context, e *emulator) dataRow {
			// no-access-service runs the app's query on the warehouse itself: Unity Catalog refuses it.
			p := s.ServicePrincipals["no-access-service"]
			c, err := client.New(&config.Config{Host: s.WorkspaceHost, AuthType: "oauth-m2m", ClientID: p.ClientID,
				ClientSecret: p.ClientSecret, Loaders: []config.Loader{sdkconfig.ExplicitOnly{}}, RetryTimeoutSeconds: 10})
			if err != nil {
				return dataRow{status: "—", problem: err.Error()}
			}
			res, err := sql.NewStatementExecution(c).ExecuteStatement(ctx, sql.ExecuteStatementRequest{
				WarehouseId: s.Warehouses[0], Statement: "SELECT count(*) FROM samples.sales.orders", WaitTimeout: "30s"})
			r := dataRow{as: "—", seen: "—", emails: "—"}
			switch {
			case err != nil:
				r.status, r.problem = "—", err.Error()
			case res.Status.State != sql.StatementStateFailed || res.Status.Error == nil ||
				!strings.Contains(res.Status.Error.Message, "INSUFFICIENT_PERMISSIONS"):
				r.status, r.problem = string(res.Status.State), "the statement was not refused"
			default:
				r.status = "FAILED"
				msg := strings.ReplaceAll(res.Status.Error.Message, "\n", " ")
				r.detail = "no-access-service ran the app's query on the warehouse itself: " + msg + " fix: an owner grants it: databricks grants update table samples.sales.orders " +
					`--json '{"changes":[{"principal":"` + p.ClientID + `","add":["SELECT"]}]}'`
			}
			return r
		}},
	}
}

// readOrders decodes a caller `call` of /api/orders.
func readOrders(res callerResult) (orders, dataRow) {
	r := dataRow{status: strconv.Itoa(res.json.Status)}
	var o orders
	switch {
	case res.err != nil:
		r.status, r.problem = "—", res.err.Error()
	case res.exitCode != 0 || res.json.Status != http.StatusOK:
		r.problem = fmt.Sprintf("the caller failed (exit %d, status %d)", res.exitCode, res.json.Status)
	default:
		if err := json.Unmarshal(res.json.Body, &o); err != nil || (o.User == nil && o.App == nil) {
			r.problem = fmt.Sprintf("the app's answer is not /api/orders': %s", res.json.Body)
		}
	}
	return o, r
}

// ordersInBrowser signs in to api-app as a user, as a browser would (the emulator's login page, then consent),
// and reads /api/orders with the session the proxy sets.
func (e *emulator) ordersInBrowser(ctx context.Context, user string) (orders, dataRow) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Transport: &http.Transport{Proxy: nil}}
	app := e.state.Apps["api-app"].URL
	r := dataRow{status: "—"}
	resp, err := browser.SignIn(ctx, client, app+"/", user)
	if err == nil {
		resp.Body.Close()
		resp, err = client.Get(app + ordersPath)
	}
	if err != nil {
		r.problem = err.Error()
		return orders{}, r
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r.status = strconv.Itoa(resp.StatusCode)
	var o orders
	switch {
	case err != nil:
		r.problem = err.Error()
	case resp.StatusCode != http.StatusOK:
		r.problem = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
	default:
		if err := json.Unmarshal(body, &o); err != nil || o.User == nil {
			r.problem = fmt.Sprintf("the app's answer is not /api/orders': %s", body)
		}
	}
	return o, r
}

// printDataTable writes the data rows as the identity table is written, then each row's detail.
func printDataTable(w io.Writer, rows []dataRow) {
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = []string{r.path, r.how, r.as, r.seen, r.emails, r.status}
	}
	printRows(w, "What the data looked like, read through the app (samples.sales.orders, EMEA):",
		[]string{"PATH", "TOKEN FROM", "READ AS", "ORDERS", "EMAILS", "STATUS"}, cells,
		func(i int) (string, string, string) { return rows[i].path, rows[i].detail, rows[i].problem })
}
