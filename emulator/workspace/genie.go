package workspace

import (
	"fmt"
	"net/http"

	"github.com/databricks/databricks-sdk-go/service/dashboards"
	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// PathGenieSpaces is the Genie API's spaces.
const PathGenieSpaces = "/api/2.0/genie/spaces"

// genieSpaces are the model's Genie spaces and who may use them. Listing and reading spaces works as on the
// platform; conversations need a language model, which an offline emulator does not fake: every conversation
// endpoint answers 501 naming itself.
type genieSpaces struct {
	order []*genieSpace
	byID  map[string]*genieSpace
}

type genieSpace struct {
	id, title, description, warehouse string
	acl                               *objectACL
}

func newGenieSpaces(cfg Config, signedIn string, changed func()) *genieSpaces {
	g := &genieSpaces{byID: map[string]*genieSpace{}}
	for _, m := range cfg.GenieSpaces {
		s := &genieSpace{id: m.ID, title: m.Title, description: m.Description, warehouse: m.Warehouse,
			acl: newObjectACL("genie", genieLevels, cfg, signedIn,
				map[string]CanUse{"CAN_RUN": m.CanRun, PermissionCanManage: m.CanManage}, changed)}
		g.order = append(g.order, s)
		g.byID[m.ID] = s
	}
	return g
}

func (g *genieSpaces) acl(id string) *objectACL {
	if s, ok := g.byID[id]; ok {
		return s.acl
	}
	return nil
}

// routes is the Genie API. Every route needs the dashboards.genie scope (routes.go).
func (g *genieSpaces) routes(r chi.Router) {
	r.Get(PathGenieSpaces, func(rw http.ResponseWriter, r *http.Request) {
		p := authFrom(r.Context()).principal
		resp := dashboards.GenieListSpacesResponse{Spaces: []dashboards.GenieSpace{}}
		for _, s := range g.order {
			if s.acl.has(p, "CAN_VIEW") {
				resp.Spaces = append(resp.Spaces, s.wire())
			}
		}
		jsonhttp.Write(rw, http.StatusOK, resp)
	})
	r.Get(PathGenieSpaces+"/{id}", func(rw http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		s, ok := g.byID[id]
		if !ok || !s.acl.has(authFrom(r.Context()).principal, "CAN_VIEW") {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
				Message: fmt.Sprintf("Genie space %s does not exist, or you may not view it.", id)})
			return
		}
		jsonhttp.Write(rw, http.StatusOK, s.wire())
	})
	notEmulated := func(rw http.ResponseWriter, r *http.Request) {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotImplemented, Code: "NOT_IMPLEMENTED",
			Message: fmt.Sprintf("%s %s is not emulated: Genie's conversations need a language model, which the offline "+
				"emulator does not fake. Listing and reading spaces works.", r.Method, r.URL.Path),
			Fix: "run the conversation against a real workspace (docs/data.md)"})
	}
	r.Post(PathGenieSpaces, notEmulated) // spaces come from the model
	r.HandleFunc(PathGenieSpaces+"/{id}/*", notEmulated)
	r.HandleFunc("/api/2.0/genie/*", notEmulated)
	objectPermissionRoutes(r, "genie", g.acl)
}

func (s *genieSpace) wire() dashboards.GenieSpace {
	return dashboards.GenieSpace{SpaceId: s.id, Title: s.title, Description: s.description, WarehouseId: s.warehouse}
}
