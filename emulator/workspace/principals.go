package workspace

import (
	"slices"
	"strconv"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// principal is a user or a service principal, as a token's subject resolves to.
type principal struct {
	Kind        identity.Kind
	ID          string // numeric
	UserName    string // users: their email; service principals: their application (client) id
	DisplayName string
	Email       string // users only
	SPName      string // service principals only
}

// directory answers "who is this subject" and "may they use that app" from a Config.
type directory struct {
	cfg       Config
	bySubject map[string]principal
	signedIn  principal
}

func newDirectory(cfg Config) *directory {
	d := &directory{cfg: cfg, bySubject: map[string]principal{}}
	for _, u := range cfg.Users {
		p := principal{Kind: identity.KindUser, ID: u.ID, UserName: u.UserName, DisplayName: u.DisplayName, Email: u.UserName}
		if p.DisplayName == "" {
			p.DisplayName = u.UserName
		}
		d.bySubject[u.UserName] = p
		if u.SignedIn {
			d.signedIn = p
		}
	}
	for _, sp := range cfg.ServicePrincipals {
		d.bySubject[sp.ApplicationID] = principal{Kind: identity.KindServicePrincipal, ID: sp.ID,
			UserName: sp.ApplicationID, DisplayName: sp.Name, SPName: sp.Name}
	}
	return d
}

// servicePrincipal finds a service principal by its client id.
func (d *directory) servicePrincipal(clientID string) (ServicePrincipal, bool) {
	i := slices.IndexFunc(d.cfg.ServicePrincipals, func(sp ServicePrincipal) bool { return sp.ApplicationID == clientID })
	if i < 0 {
		return ServicePrincipal{}, false
	}
	return d.cfg.ServicePrincipals[i], true
}

func (d *directory) servicePrincipalByName(name string) ServicePrincipal {
	sp, _ := d.cfg.ServicePrincipal(name) // Validate guarantees every app's service principal exists
	return sp
}

// canUse reports whether p holds CAN_USE on the app, directly or through the users group.
func (d *directory) canUse(app App, p principal) bool {
	if slices.Contains(app.CanUse.Groups, GroupUsers) {
		return true
	}
	if p.Kind == identity.KindUser {
		return slices.Contains(app.CanUse.Users, p.UserName)
	}
	return slices.Contains(app.CanUse.ServicePrincipals, p.SPName)
}

// appsUsableBy lists the apps p may use, in config order.
func (d *directory) appsUsableBy(p principal) []string {
	names := []string{}
	for _, a := range d.cfg.Apps {
		if d.canUse(a, p) {
			names = append(names, a.Name)
		}
	}
	return names
}

func numericID(id string) int64 {
	n, _ := strconv.ParseInt(id, 10, 64) // Validate guarantees ids are digits
	return n
}

// Permission levels on an app, as the Permissions API names them. CAN_MANAGE includes CAN_USE.
const (
	PermissionCanUse    = "CAN_USE"
	PermissionCanManage = "CAN_MANAGE"
)

// canManage reports whether p holds CAN_MANAGE on the named app: the signed-in user manages the model's apps.
func (w *Workspace) canManage(app string, p principal) bool {
	_, ok := w.apps[app]
	return ok && p.Kind == identity.KindUser && p.UserName == w.dir.signedIn.UserName
}
