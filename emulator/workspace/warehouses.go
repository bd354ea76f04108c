package workspace

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/service/sql"
	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// PathWarehouses is the SQL Warehouses API.
const PathWarehouses = "/api/2.0/sql/warehouses"

// DefaultWarehouseTransition is how long a warehouse stays STARTING or STOPPING: long enough that the SDK's waiters
// and the CLI poll it, short for a laptop. A serverless warehouse takes seconds.
const DefaultWarehouseTransition = 2 * time.Second

// warehouses are the workspace's SQL warehouses and their states. A warehouse starts when asked to, or when a
// statement arrives while it is stopped; it goes through STARTING and STOPPING for a while, as on the platform.
type warehouses struct {
	host       string // the workspace's host, for the connection details
	transition time.Duration

	mu    sync.Mutex // guards each warehouse's state and the timers
	byID  map[string]*warehouse
	order []string
	// changed is closed and replaced whenever a state changes, so statements waiting for a start wake up.
	changed chan struct{}
	closed  bool
	// saveNeeded tells the workspace a warehouse's state or permissions changed: it keeps them (persist.go).
	saveNeeded func()
}

type warehouse struct {
	id, name, creator string
	state             sql.State
	timer             *time.Timer // the end of a STARTING or STOPPING
	acl               *objectACL
}

func newWarehouses(cfg Config, signedIn, host string, transition time.Duration, saveNeeded func()) *warehouses {
	ws := &warehouses{host: strings.TrimPrefix(host, "http://"), transition: transition, byID: map[string]*warehouse{},
		changed: make(chan struct{}), saveNeeded: saveNeeded}
	for _, m := range cfg.Warehouses {
		wh := &warehouse{id: m.ID, name: m.Name, creator: signedIn, state: sql.StateRunning,
			acl: newObjectACL("warehouses", warehouseLevels, cfg, signedIn,
				map[string]CanUse{PermissionCanUse: m.CanUse, PermissionCanManage: m.CanManage}, saveNeeded)}
		if m.Stopped {
			wh.state = sql.StateStopped
		}
		ws.byID[m.ID] = wh
		ws.order = append(ws.order, m.ID)
	}
	return ws
}

// ids lists the warehouses' ids, the model's order.
func (ws *warehouses) ids() []string {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return slices.Clone(ws.order)
}

// get finds a warehouse by id.
func (ws *warehouses) get(id string) *warehouse {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.byID[id]
}

func (ws *warehouses) acl(id string) *objectACL {
	if wh := ws.get(id); wh != nil {
		return wh.acl
	}
	return nil
}

// start begins starting a stopped warehouse; a warehouse that is running or starting is left alone, and one that is
// stopping starts again once stopped.
func (ws *warehouses) start(wh *warehouse) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed || wh.state == sql.StateRunning || wh.state == sql.StateStarting {
		return
	}
	ws.setLocked(wh, sql.StateStarting, sql.StateRunning)
}

// stop begins stopping a running or starting warehouse.
func (ws *warehouses) stop(wh *warehouse) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed || wh.state == sql.StateStopped || wh.state == sql.StateStopping {
		return
	}
	ws.setLocked(wh, sql.StateStopping, sql.StateStopped)
}

// setLocked moves the warehouse to a transitional state and, after the transition, to its end.
func (ws *warehouses) setLocked(wh *warehouse, now, then sql.State) {
	if wh.timer != nil {
		wh.timer.Stop()
	}
	wh.state = now
	ws.notifyLocked()
	wh.timer = time.AfterFunc(ws.transition, func() {
		ws.mu.Lock()
		defer ws.mu.Unlock()
		if wh.state == now {
			wh.state, wh.timer = then, nil
			ws.notifyLocked()
		}
	})
}

func (ws *warehouses) notifyLocked() {
	close(ws.changed)
	ws.changed = make(chan struct{})
	ws.saveNeeded()
}

// running reports whether the warehouse runs and, if not, a channel closed at its next change of state.
func (ws *warehouses) running(wh *warehouse) (bool, <-chan struct{}) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return wh.state == sql.StateRunning, ws.changed
}

// close stops the timers: no warehouse changes state any more.
func (ws *warehouses) close() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.closed = true
	for _, wh := range ws.byID {
		if wh.timer != nil {
			wh.timer.Stop()
		}
	}
}

// routes is the SQL Warehouses API. Listing shows the warehouses the caller may view; reading one takes CAN_VIEW,
// starting it CAN_USE (as on the platform, using a warehouse includes starting it) and stopping it CAN_MANAGE.
// Creating, editing and deleting warehouses is not emulated: the model holds them.
func (ws *warehouses) routes(r chi.Router) {
	r.Get(PathWarehouses, func(rw http.ResponseWriter, r *http.Request) {
		p := authFrom(r.Context()).principal
		resp := sql.ListWarehousesResponse{Warehouses: []sql.EndpointInfo{}}
		ws.mu.Lock()
		for _, id := range ws.order {
			if wh := ws.byID[id]; wh.acl.has(p, "CAN_VIEW") {
				resp.Warehouses = append(resp.Warehouses, ws.infoLocked(wh))
			}
		}
		ws.mu.Unlock()
		jsonhttp.Write(rw, http.StatusOK, resp)
	})
	r.Get(PathWarehouses+"/{id}", func(rw http.ResponseWriter, r *http.Request) {
		if wh, ok := ws.find(rw, r, "CAN_VIEW"); ok {
			ws.mu.Lock()
			info := ws.infoLocked(wh)
			ws.mu.Unlock()
			jsonhttp.Write(rw, http.StatusOK, info)
		}
	})
	r.Post(PathWarehouses+"/{id}/start", func(rw http.ResponseWriter, r *http.Request) {
		if wh, ok := ws.find(rw, r, PermissionCanUse); ok {
			ws.start(wh)
			jsonhttp.Write(rw, http.StatusOK, struct{}{})
		}
	})
	r.Post(PathWarehouses+"/{id}/stop", func(rw http.ResponseWriter, r *http.Request) {
		if wh, ok := ws.find(rw, r, PermissionCanManage); ok {
			ws.stop(wh)
			jsonhttp.Write(rw, http.StatusOK, struct{}{})
		}
	})
	objectPermissionRoutes(r, "warehouses", ws.acl)
}

// find reads the warehouse in the path, answering 404 for an unknown one (or one the caller may not even view) and
// 403 when the caller lacks level.
func (ws *warehouses) find(rw http.ResponseWriter, r *http.Request, level string) (*warehouse, bool) {
	id := chi.URLParam(r, "id")
	wh := ws.get(id)
	p := authFrom(r.Context()).principal
	if wh == nil || !wh.acl.has(p, "CAN_VIEW") {
		jsonhttp.WriteError(rw, warehouseNotFound(id))
		return nil, false
	}
	if !wh.acl.has(p, level) {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
			Message: fmt.Sprintf("User %s does not have %s permission on warehouse %s.", p.UserName, level, id),
			Fix:     "a manager of the warehouse grants it: databricks warehouses update-permissions " + id})
		return nil, false
	}
	return wh, true
}

func warehouseNotFound(id string) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
		Message: fmt.Sprintf("Warehouse %s does not exist.", id), Fix: "list the warehouses you may use: databricks warehouses list"}
}

// infoLocked is the warehouse as the API reports it. Callers hold ws.mu.
func (ws *warehouses) infoLocked(wh *warehouse) sql.EndpointInfo {
	host, port, _ := strings.Cut(ws.host, ":")
	return sql.EndpointInfo{Id: wh.id, Name: wh.name, State: wh.state, CreatorName: wh.creator,
		ClusterSize: "2X-Small", AutoStopMins: 10, EnableServerlessCompute: true, WarehouseType: sql.EndpointInfoWarehouseTypePro,
		MinNumClusters: 1, MaxNumClusters: 1, NumClusters: map[bool]int{true: 1}[wh.state == sql.StateRunning],
		Health:          &sql.EndpointHealth{Status: sql.StatusHealthy},
		OdbcParams:      &sql.OdbcParams{Hostname: host, Path: "/sql/1.0/warehouses/" + wh.id, Port: portNumber(port), Protocol: "http"},
		JdbcUrl:         "jdbc:databricks://" + ws.host + "/default;transportMode=http;httpPath=/sql/1.0/warehouses/" + wh.id,
		ForceSendFields: []string{"NumClusters"}}
}

func portNumber(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
