package workspace

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

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
// guarded by Workspace.mu.
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

// addAppLocked registers an app with its proxy listening on a loopback address of its own, on port (0 picks a free
// port; addresses.go). Callers hold w.mu.
func (w *Workspace) addAppLocked(s *appSettings, port int, creator string, compute apps.ComputeState) (*appRecord, error) {
	return w.addAppOnPortLocked(s, "", port, false, creator, compute)
}

// addAppOnPortLocked is addAppLocked for an address an earlier run saved (host may be "" for one saved without it):
// when orElseFree is set and the port is taken now, the proxy listens on a free one instead, and the app's URL
// changes. Callers hold w.mu.
func (w *Workspace) addAppOnPortLocked(s *appSettings, host string, port int, orElseFree bool, creator string,
	compute apps.ComputeState) (*appRecord, error) {
	if w.closing {
		return nil, errClosing
	}
	want := ""
	if host != "" {
		want = net.JoinHostPort(host, strconv.Itoa(port))
	}
	ln, err := w.listenAppProxy(want, port)
	if err != nil && orElseFree && port != 0 {
		w.logger.Warn("the app's saved address is taken: its proxy listens elsewhere, and its URL changes",
			"app", s.name, "port", port, "err", err)
		if want != "" {
			want = net.JoinHostPort(host, "0")
		}
		ln, err = w.listenAppProxy(want, 0)
	}
	if err != nil {
		return nil, portTaken(fmt.Errorf("listen for the proxy of app %q: %w", s.name, err),
			fmt.Sprintf("the model's port of app %s", s.name))
	}
	now := time.Now().UTC()
	rec := &appRecord{id: newDeploymentID(), createTime: now, updateTime: now, creator: creator, updater: creator,
		computeState: compute}
	p := newAppProxy(w, s, "http://"+ln.Addr().String())
	rec.proxy = p
	w.apps[s.name] = rec
	w.appOrder = append(w.appOrder, s.name)
	p.server = w.serve(ln, withH2CUpgrade(p.handler()))
	return rec, nil
}

// settingsOf returns an app's current settings, or nil for an unknown app.
func (w *Workspace) settingsOf(name string) *appSettings {
	w.mu.Lock()
	defer w.mu.Unlock()
	if rec, ok := w.apps[name]; ok {
		return rec.settings()
	}
	return nil
}

// canManage reports whether p may manage the named app: CAN_MANAGE on it, or a workspace admin.
func (w *Workspace) canManage(app string, p principal) bool {
	s := w.settingsOf(app)
	return s != nil && w.mayManage(s, p)
}

// appsUsableBy lists the apps p may use, in creation order.
func (w *Workspace) appsUsableBy(p principal) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	names := []string{}
	for _, name := range w.appOrder {
		if w.apps[name].settings().has(p, PermissionCanUse) {
			names = append(names, name)
		}
	}
	return names
}

// grantAppResourceLocked gives an app's service principal (its application id) CAN_USE on the target of an app
// resource. Callers hold w.mu.
func (w *Workspace) grantAppResourceLocked(sp string, r *apps.AppResourceApp) {
	target, ok := w.apps[r.Name]
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
