package main

import (
	"io"
	"log/slog"
	"net/http"
	"path"
	"regexp"
	"strconv"

	"github.com/databricks/databricks-sdk-go/service/dashboards"
	"github.com/databricks/databricks-sdk-go/service/files"
	"github.com/databricks/databricks-sdk-go/service/sql"
	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// The data endpoints: what user authorization is for. Each reads as the user, with the token the proxy forwarded,
// so the workspace applies the user's own grants, row filters and column masks; /api/orders also reads as the app
// itself, side by side, to show the difference.

// ordersQuery reads a region's orders, newest first, and how many of them the principal may see. The table is Unity
// Catalog's samples.sales.orders, whose row filter shows a sales rep her own orders only and whose column mask hides
// customers' emails from all but the sales leads (see the emulator's model).
const ordersQuery = `SELECT order_id, order_date, sales_rep, customer, customer_email, product, amount,
  count(*) OVER () AS visible
FROM samples.sales.orders
WHERE region = :region
ORDER BY order_date DESC, order_id
LIMIT :limit`

// maxOrders bounds how many orders /api/orders returns.
const maxOrders = 100

var regionName = regexp.MustCompile(`^[A-Za-z]{1,16}$`)

// handleOrders runs ordersQuery on behalf of the user and as the app, side by side.
func handleOrders(logger *slog.Logger, ws *workspace) http.HandlerFunc {
	type side struct {
		Principal string               `json:"principal"`
		Visible   int                  `json:"visible"` // the region's orders this principal may see
		Rows      []map[string]*string `json:"rows"`
	}
	type response struct {
		Region              string `json:"region"`
		OnBehalfOfUser      *side  `json:"on_behalf_of_user"`
		UserNote            string `json:"on_behalf_of_user_note,omitempty"`
		AppServicePrincipal *side  `json:"app_service_principal"`
		AppNote             string `json:"app_service_principal_note,omitempty"`
	}
	toSide := func(principal string, q *queryResult) *side {
		s := &side{Principal: principal, Rows: q.Rows}
		s.Visible, _ = strconv.Atoi(q.first("visible"))
		for _, row := range s.Rows {
			delete(row, "visible")
		}
		return s
	}
	return func(w http.ResponseWriter, r *http.Request) {
		region := r.URL.Query().Get("region")
		if region == "" {
			region = "EMEA"
		}
		limit, apiErr := limitParam(r, 10, maxOrders)
		if apiErr == nil && !regionName.MatchString(region) {
			apiErr = badRequest("region must be a region's name, such as EMEA, AMER or APJ")
		}
		if apiErr != nil {
			jsonhttp.WriteError(w, apiErr)
			return
		}
		params := []sql.StatementParameterListItem{{Name: "region", Value: region},
			{Name: "limit", Value: strconv.Itoa(limit), Type: "INT"}}
		// A service principal calling gets the app's view alone: the proxy forwards tokens of users only.
		user, app, apiErr := ws.sideBySide(r, logger, true, func(c caller) (*queryResult, error) {
			return ws.query(r.Context(), c, ordersQuery, params...)
		})
		if apiErr != nil {
			jsonhttp.WriteError(w, apiErr)
			return
		}
		id, _ := identity.FromContext(r.Context())
		resp := response{Region: region, AppNote: app.note}
		if user != nil {
			resp.OnBehalfOfUser = toSide(id.Email, user)
		} else {
			resp.UserNote = "no user access token: the proxy forwards one for users only, so only the app's own view is shown"
		}
		if app.result != nil {
			resp.AppServicePrincipal = toSide(ws.clientID, app.result)
		}
		jsonhttp.Write(w, http.StatusOK, resp)
	}
}

// handleReports lists the files of the app's volume that the user may read.
func handleReports(ws *workspace) http.HandlerFunc {
	type report struct {
		Name         string `json:"name"`
		Size         int64  `json:"size"`
		LastModified int64  `json:"last_modified"` // ms since the epoch
	}
	type response struct {
		Volume  string   `json:"volume"`
		Reports []report `json:"reports"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		user, apiErr := ws.userFor(r, ws.reportsVolume == "", "REPORTS_VOLUME", "a uc_securable (VOLUME) resource with the key reports-volume")
		if apiErr != nil {
			jsonhttp.WriteError(w, apiErr)
			return
		}
		entries, err := files.NewFiles(user.client).ListDirectoryContentsAll(r.Context(),
			files.ListDirectoryContentsRequest{DirectoryPath: ws.reportsVolume})
		if err != nil {
			jsonhttp.WriteError(w, workspaceError(user.as, err, user.token))
			return
		}
		resp := response{Volume: ws.reportsVolume, Reports: []report{}}
		for _, e := range entries {
			if !e.IsDirectory {
				resp.Reports = append(resp.Reports, report{Name: e.Name, Size: e.FileSize, LastModified: e.LastModified})
			}
		}
		jsonhttp.Write(w, http.StatusOK, resp)
	}
}

// reportName is a file name in the volume: one path segment.
var reportName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// handleReport streams one file of the app's volume, read as the user.
func handleReport(ws *workspace) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "name")
		if !reportName.MatchString(name) {
			jsonhttp.WriteError(w, badRequest("a report's name is a file name, such as revenue-by-quarter.csv"))
			return
		}
		user, apiErr := ws.userFor(r, ws.reportsVolume == "", "REPORTS_VOLUME", "a uc_securable (VOLUME) resource with the key reports-volume")
		if apiErr != nil {
			jsonhttp.WriteError(w, apiErr)
			return
		}
		file, err := files.NewFiles(user.client).Download(r.Context(), files.DownloadRequest{FilePath: path.Join(ws.reportsVolume, name)})
		if err != nil {
			jsonhttp.WriteError(w, workspaceError(user.as, err, user.token))
			return
		}
		defer file.Contents.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		if file.ContentLength > 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(file.ContentLength, 10))
		}
		_, _ = io.Copy(w, file.Contents)
	}
}

// handleGenieSpaces lists the Genie spaces the user may use.
func handleGenieSpaces(ws *workspace) http.HandlerFunc {
	type space struct {
		ID          string `json:"id"`
		Title       string `json:"title"`
		Description string `json:"description,omitempty"`
	}
	type response struct {
		Spaces []space `json:"spaces"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		user, apiErr := ws.userFor(r, false, "", "")
		if apiErr != nil {
			jsonhttp.WriteError(w, apiErr)
			return
		}
		list, err := dashboards.NewGenie(user.client).ListSpaces(r.Context(), dashboards.GenieListSpacesRequest{})
		if err != nil {
			jsonhttp.WriteError(w, workspaceError(user.as, err, user.token))
			return
		}
		resp := response{Spaces: []space{}}
		for _, s := range list.Spaces {
			resp.Spaces = append(resp.Spaces, space{ID: s.SpaceId, Title: s.Title, Description: s.Description})
		}
		jsonhttp.Write(w, http.StatusOK, resp)
	}
}

// userFor is the caller for a call on behalf of the user of r, or the answer when there is none: no forwarded
// token, no workspace, or (missing) a resource the endpoint needs (env names the variable app.yaml sets from it).
func (ws *workspace) userFor(r *http.Request, missing bool, env, resource string) (caller, *jsonhttp.Error) {
	id, _ := identity.FromContext(r.Context())
	switch {
	case id.AccessToken.IsZero():
		return caller{}, noUserToken(id)
	case ws.host == "":
		return caller{}, workspaceUnknown()
	case missing:
		return caller{}, &jsonhttp.Error{Status: http.StatusServiceUnavailable, Code: jsonhttp.CodeUnavailable,
			Message: "the app does not know which resource to read: " + env + " is not set",
			Fix:     "give the app " + resource + ": app.yaml reads " + env + " from it with valueFrom"}
	}
	c, err := ws.asUser(id.AccessToken)
	if err != nil {
		return caller{}, workspaceError(c.as, err, id.AccessToken)
	}
	return c, nil
}

func workspaceUnknown() *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusServiceUnavailable, Code: jsonhttp.CodeUnavailable,
		Message: "the app does not know its workspace: DATABRICKS_HOST is not set",
		Fix:     "run the app on Databricks, or under the emulator (go run ./emulator run -- go run ./app)"}
}

func badRequest(msg string) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter, Message: msg}
}

// limitParam reads ?limit= from 1 to most, def when absent.
func limitParam(r *http.Request, def, most int) (int, *jsonhttp.Error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, badRequest("limit must be a number from 1 to " + strconv.Itoa(most))
	}
	return n, nil
}
