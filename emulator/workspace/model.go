package workspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// appManager holds the workspace's apps and runs them: the Apps API (apps_api.go), deployments (deployments.go), the
// compute lifecycle (lifecycle.go), the processes serving the apps (instances.go), their proxies (proxy.go) and logs
// (logs.go). What a deployment installs, and the sandbox its app runs in, are its builder's (build.go,
// isolation.go); the Permissions API over its apps' settings is appPermissions (permissions_api.go).
//
// mu guards the records: byName, order, the records' mutable fields (see appRecord), loopbackFallback, closing and
// savedApps. Lock order: while holding mu, the apps take the locks of the parts they call into (the directory's,
// the data services', a proxy's, the sessions', the ports'), never the other way round: none of those calls back into
// the apps while holding its own lock. The sign-in (proxyAt, proxies) and the token endpoint (appAsksScope) take mu
// holding no lock of theirs.
type appManager struct {
	cfg      Config // the model: the workspace's id, the apps it starts with
	url      string // the workspace's, which apps are given as DATABRICKS_HOST
	dataDir  string // deployments' snapshots are under it, and the saved paths relative to it (persist.go)
	logger   *slog.Logger
	dir      *directory
	auth     *authServer
	sessions *sessions
	settings *workspaceSettings
	files    *workspaceFiles
	data     *dataServices
	faults   *faults
	// changed tells the store that the apps changed (persist.go); stateChanged also rewrites the state file, and
	// is called holding no lock.
	changed      func(part string)
	stateChanged func()
	// serve serves a proxy's listener until the workspace closes.
	serve func(ln net.Listener, h http.Handler) *http.Server

	ctx   context.Context // ends when Close starts: background deployments stop
	tasks *sync.WaitGroup // background deployments and starts, which Close waits for

	timeout      time.Duration // how long a proxy waits for an app's response headers
	logKeepalive time.Duration
	ports        *portReservations                                               // the apps' ports (ports.go)
	startWait    func(ctx context.Context) (context.Context, context.CancelFunc) // Options.startWait
	stopGrace    time.Duration
	computeDelay time.Duration
	computeHold  chan struct{}
	appStdout    *lockedWriter
	appStderr    *lockedWriter
	build        *builder // installs deployments and knows the apps' sandbox (build.go, isolation.go)

	mu     sync.Mutex
	byName map[string]*appRecord
	order  []string // creation order, for listing
	// loopbackFallback is set once an app address could not be listened on: every proxy then takes 127.0.0.1.
	loopbackFallback bool
	closing          bool       // no instance attaches once Close has begun
	savedApps        []savedApp // the saved apps, until Start has restored them
}

// appSettings is what the Apps and Permissions APIs change about an app. A value is never modified once published:
// a change publishes a new one, so every proxy request reads one consistent version without a lock, and a grant or
// a scope change applies from the next request on.
type appSettings struct {
	name             string
	description      string
	servicePrincipal ServicePrincipal
	userAPIScopes    []string
	resources        []apps.AppResource
	acl              []aclEntry
}

// aclEntry is one principal's permission on an app. Exactly one of the names is set; a service principal is named
// by its application id, as the Permissions API names it.
type aclEntry struct {
	userName             string
	groupName            string
	servicePrincipalName string
	level                string
}

// grants reports whether the entry gives p at least level. The users group holds every user and service principal.
func (e aclEntry) grants(p principal, level string) bool {
	if level == PermissionCanManage && e.level != PermissionCanManage {
		return false
	}
	return e.matches(p)
}

// matches reports whether the entry names p, or a group p is in.
func (e aclEntry) matches(p principal) bool {
	switch {
	case e.groupName != "":
		return p.memberOf(e.groupName)
	case e.userName != "":
		return p.Kind == identity.KindUser && e.userName == p.UserName
	default:
		return p.Kind == identity.KindServicePrincipal && e.servicePrincipalName == p.UserName
	}
}

// has reports whether p holds level (CAN_USE or CAN_MANAGE) on the app; CAN_MANAGE includes CAN_USE.
func (s *appSettings) has(p principal, level string) bool {
	return slices.ContainsFunc(s.acl, func(e aclEntry) bool { return e.grants(p, level) })
}

// with returns a copy of s changed by f, for publishing.
func (s *appSettings) with(f func(*appSettings)) *appSettings {
	c := *s
	c.userAPIScopes = slices.Clone(s.userAPIScopes)
	c.resources = slices.Clone(s.resources)
	c.acl = slices.Clone(s.acl)
	f(&c)
	return &c
}

// appRecord is one app of the workspace. settings is published atomically (see appSettings); the other fields are
// guarded by appManager.mu.
type appRecord struct {
	proxy *appProxy

	id                    string
	createTime            time.Time
	updateTime            time.Time
	creator, updater      string
	computeState          apps.ComputeState
	deployments           []*deployment // oldest first
	active, pending       *deployment
	defaultSourceCodePath string
	lastUpdate            *apps.AppUpdate
	instance              *Instance // the process serving the app, when the workspace started it
	crash                 appCrash  // why the last instance stopped on its own, until the next start
	generation            uint64    // counts starts and stops, so a slow start never attaches after a later one
	computeGen            uint64    // counts compute transitions, so a late one never undoes a later apps start or stop
	starting              bool      // the app is being started again (apps start, a restart): not yet listening
	runLaunch             *Launch   // what `emulator run` started it with, until a deployment replaces it
	fromModel             bool      // one of the model's apps, rather than one created through the Apps API
	deleted               bool      // the app was deleted: nothing may start or attach for it any more
}

func (r *appRecord) settings() *appSettings { return r.proxy.settings.Load() }

// appCrash says why an app's last instance stopped or never started: message for anyone who may read the app, and
// detail after it for its managers (the error, which may quote its command line or output).
type appCrash struct{ message, detail string }

// aclFromConfig turns the model's can_use and can_manage lists into Permissions API entries; an empty can_manage
// means the signed-in user.
func aclFromConfig(a App, cfg Config, signedIn string) []aclEntry {
	var acl []aclEntry
	// A principal has one level on an app, as in the Permissions API: CAN_MANAGE, listed first, wins.
	put := func(e aclEntry) {
		if !slices.ContainsFunc(acl, e.samePrincipal) {
			acl = append(acl, e)
		}
	}
	add := func(list CanUse, level string) {
		for _, u := range list.Users {
			put(aclEntry{userName: u, level: level})
		}
		for _, name := range list.ServicePrincipals {
			sp, _ := cfg.ServicePrincipal(name) // Validate guarantees it exists
			put(aclEntry{servicePrincipalName: sp.ApplicationID, level: level})
		}
		for _, g := range list.Groups {
			put(aclEntry{groupName: g, level: level})
		}
	}
	manage := a.CanManage
	if len(manage.Users)+len(manage.ServicePrincipals)+len(manage.Groups) == 0 {
		manage = CanUse{Users: []string{signedIn}}
	}
	add(manage, PermissionCanManage)
	add(a.CanUse, PermissionCanUse)
	return acl
}

// addModelApps registers the model's apps, each with its proxy, and grants their app resources. An app an earlier run
// of a lasting workspace saved comes back as it was then: on the same port, with its permissions and deployments.
func (m *appManager) addModelApps(cfg Config) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, app := range cfg.Apps {
		sp, _ := cfg.ServicePrincipal(app.ServicePrincipal) // Validate guarantees it exists
		settings := &appSettings{name: app.Name, description: app.Description, servicePrincipal: sp,
			userAPIScopes: slices.Clone(app.UserAPIScopes), acl: aclFromConfig(app, cfg, m.dir.signedIn.UserName)}
		for _, r := range app.Resources {
			settings.resources = append(settings.resources, wireResource(r))
		}
		saved, wasSaved := m.savedApp(app.Name)
		port, host := app.Port, ""
		if wasSaved && (port == 0 || port == saved.Port) {
			port, host = saved.Port, saved.Host
		}
		rec, err := m.addAppOnPortLocked(settings, host, port, app.Port == 0, m.dir.signedIn.UserName, apps.ComputeStateActive)
		if err != nil {
			return err
		}
		rec.fromModel = true
		if wasSaved && saved.ServicePrincipal == sp.ApplicationID {
			m.restoreAppLocked(rec, saved)
		}
		if app.Upstream != "" {
			if err := rec.proxy.setUpstream(app.Upstream); err != nil {
				return err
			}
		}
	}
	for _, name := range m.order {
		m.grantResourcesLocked(m.byName[name].settings())
	}
	return nil
}

// restoreApps adds back the apps an earlier run saved that are not the model's (created through the Apps API), and
// runs again the active deployment of every app whose compute was active.
func (m *appManager) restoreApps() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, saved := range m.savedApps {
		if _, ok := m.byName[saved.Name]; ok {
			continue
		}
		sp, ok := m.dir.servicePrincipal(saved.ServicePrincipal)
		if !ok || saved.FromModel {
			m.logger.Warn("a saved app is not restored: the model no longer has it or its service principal",
				"app", saved.Name)
			continue
		}
		rec, err := m.addAppOnPortLocked(&appSettings{name: saved.Name, servicePrincipal: sp}, saved.Host, saved.Port, true,
			saved.Creator, saved.Compute)
		if err != nil {
			m.logger.Error("restore a saved app", "app", saved.Name, "err", err)
			continue
		}
		m.restoreAppLocked(rec, saved)
	}
	m.savedApps = nil
	for _, name := range m.order {
		if rec := m.byName[name]; rec.computeState == apps.ComputeStateActive && rec.active != nil {
			m.relaunchLocked(rec)
		}
	}
}

// appAsksScope reports whether an app of the workspace lists scope in its user_api_scopes now.
func (m *appManager) appAsksScope(scope string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rec := range m.byName {
		if slices.Contains(rec.settings().userAPIScopes, scope) {
			return true
		}
	}
	return false
}

// proxyAt finds the app whose proxy serves origin.
func (m *appManager) proxyAt(origin string) (*appProxy, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, name := range m.order {
		if p := m.byName[name].proxy; p.url == origin {
			return p, true
		}
	}
	return nil, false
}

// proxies are every app's proxy, in creation order.
func (m *appManager) proxies() []*appProxy {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*appProxy, 0, len(m.order))
	for _, name := range m.order {
		out = append(out, m.byName[name].proxy)
	}
	return out
}

// addAppLocked registers an app with its proxy listening on a loopback address of its own, on port (0 picks a free
// port; addresses.go). Callers hold m.mu.
func (m *appManager) addAppLocked(s *appSettings, port int, creator string, compute apps.ComputeState) (*appRecord, error) {
	return m.addAppOnPortLocked(s, "", port, false, creator, compute)
}

// addAppOnPortLocked is addAppLocked for an address an earlier run saved (host may be "" for one saved without it):
// when orElseFree is set and the port is taken now, the proxy listens on a free one instead, and the app's URL
// changes. Callers hold m.mu.
func (m *appManager) addAppOnPortLocked(s *appSettings, host string, port int, orElseFree bool, creator string,
	compute apps.ComputeState) (*appRecord, error) {
	if m.closing {
		return nil, errClosing
	}
	want := ""
	if host != "" {
		want = net.JoinHostPort(host, strconv.Itoa(port))
	}
	ln, err := m.listenAppProxy(want, port)
	if err != nil && orElseFree && port != 0 {
		m.logger.Warn("the app's saved address is taken: its proxy listens elsewhere, and its URL changes",
			"app", s.name, "port", port, "err", err)
		if want != "" {
			want = net.JoinHostPort(host, "0")
		}
		ln, err = m.listenAppProxy(want, 0)
	}
	if err != nil {
		return nil, portTaken(fmt.Errorf("listen for the proxy of app %q: %w", s.name, err),
			fmt.Sprintf("the model's port of app %s", s.name))
	}
	now := time.Now().UTC()
	rec := &appRecord{id: newDeploymentID(), createTime: now, updateTime: now, creator: creator, updater: creator,
		computeState: compute}
	p := newAppProxy(m, s, "http://"+ln.Addr().String())
	rec.proxy = p
	m.byName[s.name] = rec
	m.order = append(m.order, s.name)
	p.server = m.serve(ln, withH2CUpgrade(p.handler()))
	return rec, nil
}

// settingsOf returns an app's current settings, or nil for an unknown app.
func (m *appManager) settingsOf(name string) *appSettings {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec, ok := m.byName[name]; ok {
		return rec.settings()
	}
	return nil
}

// publish changes an app's settings and publishes them, holding m.mu; it returns what it published.
func (m *appManager) publish(rec *appRecord, change func(*appSettings)) *appSettings {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := rec.settings().with(change)
	rec.proxy.settings.Store(s)
	return s
}

// canManage reports whether p may manage the named app: CAN_MANAGE on it, or a workspace admin.
func (m *appManager) canManage(app string, p principal) bool {
	s := m.settingsOf(app)
	return s != nil && mayManage(s, p)
}

// appsUsableBy lists the apps p may use, in creation order.
func (m *appManager) appsUsableBy(p principal) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := []string{}
	for _, name := range m.order {
		if m.byName[name].settings().has(p, PermissionCanUse) {
			names = append(names, name)
		}
	}
	return names
}

// grantAppResourceLocked gives an app's service principal (its application id) CAN_USE on the target of an app
// resource. Callers hold m.mu.
func (m *appManager) grantAppResourceLocked(sp string, r *apps.AppResourceApp) {
	target, ok := m.byName[r.Name]
	if !ok {
		return
	}
	level := string(r.Permission)
	if level != PermissionCanManage {
		level = PermissionCanUse
	}
	ts := target.settings()
	if slices.ContainsFunc(ts.acl, func(e aclEntry) bool { return e.servicePrincipalName == sp && e.level == level }) {
		return
	}
	target.proxy.settings.Store(ts.with(func(t *appSettings) {
		t.acl = append(t.acl, aclEntry{servicePrincipalName: sp, level: level})
	}))
}

// errClosing refuses what would start once Close has begun: a proxy, a deployment, an app process.
var errClosing = errors.New("the workspace is shutting down")

// Permission levels on an app, as the Permissions API names them. CAN_MANAGE includes CAN_USE.
const (
	PermissionCanUse    = "CAN_USE"
	PermissionCanManage = "CAN_MANAGE"
)
