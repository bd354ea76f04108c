package workspace

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// principal is a user or a service principal, as a token's subject resolves to.
type principal struct {
	Kind        identity.Kind
	ID          string // numeric
	UserName    string // users: their email; service principals: their application (client) id
	DisplayName string
	Email       string   // users only
	SPName      string   // service principals only
	Groups      []string // the model's groups it is in; every principal is also in users and account users
}

// memberOf reports whether p is in the group: users and account users hold every principal.
func (p principal) memberOf(group string) bool {
	return group == GroupUsers || group == GroupAccountUsers || slices.Contains(p.Groups, group)
}

// groups lists every group p is in, the implicit ones first: what is_account_group_member() answers from.
func (p principal) groups() []string {
	return append([]string{GroupUsers, GroupAccountUsers}, p.Groups...)
}

// isAdmin reports whether p is a workspace admin: a member of the model's admins group.
func (p principal) isAdmin() bool { return slices.Contains(p.Groups, GroupAdmins) }

// directory answers "who is this subject". It starts from the model's users and service principals; creating an
// app adds the app's own service principal and deleting it removes it again.
type directory struct {
	mu         sync.RWMutex
	bySubject  map[string]principal
	sps        map[string]ServicePrincipal // by application (client) id
	groups     map[string][]string         // the model's groups of each user name and application id
	groupNames map[string]bool             // the model's groups
	signedIn   principal
	nextID     int64
	fromModel  map[string]bool // the model's service principals, by application id: a lasting workspace saves the others
}

func newDirectory(cfg Config) *directory {
	d := &directory{bySubject: map[string]principal{}, sps: map[string]ServicePrincipal{}, groups: map[string][]string{},
		groupNames: map[string]bool{}, nextID: 3001, fromModel: map[string]bool{}}
	for _, g := range cfg.Groups {
		d.groupNames[g.Name] = true
		for _, u := range g.Users {
			d.groups[u] = append(d.groups[u], g.Name)
		}
		for _, name := range g.ServicePrincipals {
			sp, _ := cfg.ServicePrincipal(name) // Validate guarantees it exists
			d.groups[sp.ApplicationID] = append(d.groups[sp.ApplicationID], g.Name)
		}
	}
	for _, u := range cfg.Users {
		p := principal{Kind: identity.KindUser, ID: u.ID, UserName: u.UserName, DisplayName: u.DisplayName, Email: u.UserName,
			Groups: d.groups[u.UserName]}
		if p.DisplayName == "" {
			p.DisplayName = u.UserName
		}
		d.bySubject[u.UserName] = p
		if u.SignedIn {
			d.signedIn = p
		}
		d.nextID = max(d.nextID, numericID(u.ID)+1)
	}
	for _, sp := range cfg.ServicePrincipals {
		d.addLocked(sp)
		d.fromModel[sp.ApplicationID] = true
	}
	return d
}

// GroupsOf is every group the model's user (by user name) or service principal (by name) is in, with the groups
// every principal is in: what the workspace's SQL engine reads for it (is_account_group_member). Nil for a name the
// model lacks.
func (c Config) GroupsOf(name string) []string {
	subject := name
	if sp, ok := c.ServicePrincipal(name); ok {
		subject = sp.ApplicationID
	}
	p, ok := newDirectory(c).bySubject[subject]
	if !ok {
		return nil
	}
	return p.groups()
}

func (d *directory) addLocked(sp ServicePrincipal) {
	d.sps[sp.ApplicationID] = sp
	d.bySubject[sp.ApplicationID] = principal{Kind: identity.KindServicePrincipal, ID: sp.ID,
		UserName: sp.ApplicationID, DisplayName: sp.Name, SPName: sp.Name, Groups: d.groups[sp.ApplicationID]}
	d.nextID = max(d.nextID, numericID(sp.ID)+1)
}

// groupExists reports whether a group of that name exists: users, account users or one of the model's.
func (d *directory) groupExists(name string) bool {
	if name == GroupUsers || name == GroupAccountUsers {
		return true
	}
	return d.groupNames[name] // set at start only: no lock
}

// principalExists reports whether name is a user's name, a group, or a service principal's application id: how
// ACLs outside the Permissions API (Unity Catalog grants, secret ACLs) name a principal.
func (d *directory) principalExists(name string) bool {
	if _, ok := d.subject(name); ok {
		return true
	}
	return d.groupExists(name)
}

// subject finds the principal a token's subject names.
func (d *directory) subject(sub string) (principal, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	p, ok := d.bySubject[sub]
	return p, ok
}

// servicePrincipal finds a service principal by its client id.
func (d *directory) servicePrincipal(clientID string) (ServicePrincipal, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	sp, ok := d.sps[clientID]
	return sp, ok
}

// servicePrincipalByName finds a service principal by its name.
func (d *directory) servicePrincipalByName(name string) (ServicePrincipal, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, sp := range d.sps {
		if sp.Name == name {
			return sp, true
		}
	}
	return ServicePrincipal{}, false
}

// named finds a principal by any name a test or a person gives it: a user's userName, or a service principal's
// application id or name.
func (d *directory) named(name string) (principal, bool) {
	if p, ok := d.subject(name); ok {
		return p, true
	}
	if sp, ok := d.servicePrincipalByName(name); ok {
		return d.subject(sp.ApplicationID)
	}
	return principal{}, false
}

// userByName finds a user by userName.
func (d *directory) user(userName string) (principal, bool) {
	p, ok := d.subject(userName)
	return p, ok && p.Kind == identity.KindUser
}

// users lists the users, by userName.
func (d *directory) users() []principal {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []principal
	for _, p := range d.bySubject {
		if p.Kind == identity.KindUser {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b principal) int { return strings.Compare(a.UserName, b.UserName) })
	return out
}

// servicePrincipals lists the service principals, by name.
func (d *directory) servicePrincipals() []ServicePrincipal {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]ServicePrincipal, 0, len(d.sps))
	for _, sp := range d.sps {
		out = append(out, sp)
	}
	slices.SortFunc(out, func(a, b ServicePrincipal) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// everyone lists the principals: the users by userName, then the service principals by name.
func (d *directory) everyone() []principal {
	out := d.users()
	for _, sp := range d.servicePrincipals() {
		if p, ok := d.subject(sp.ApplicationID); ok {
			out = append(out, p)
		}
	}
	return out
}

// newAppServicePrincipal creates the service principal a new app runs as, named after the app as the model's
// apps are (or app-<name> when that name is taken), with fresh OAuth credentials.
func (d *directory) newAppServicePrincipal(app string) ServicePrincipal {
	d.mu.Lock()
	defer d.mu.Unlock()
	name := app
	for i := 1; d.nameTakenLocked(name); i++ {
		name = fmt.Sprintf("app-%s-%d", app, i)
	}
	sp := ServicePrincipal{ID: strconv.FormatInt(d.nextID, 10), Name: name, ApplicationID: uuid.NewString(),
		Secret: "emulator-secret-" + randomString()}
	d.addLocked(sp)
	return sp
}

func (d *directory) nameTakenLocked(name string) bool {
	if _, ok := d.bySubject[name]; ok {
		return true
	}
	for _, sp := range d.sps {
		if sp.Name == name {
			return true
		}
	}
	return false
}

// removeServicePrincipal deletes an app's service principal with its app: its tokens stop working.
func (d *directory) removeServicePrincipal(clientID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.sps, clientID)
	delete(d.bySubject, clientID)
}

func numericID(id string) int64 {
	n, _ := strconv.ParseInt(id, 10, 64) // Validate guarantees ids are digits
	return n
}
