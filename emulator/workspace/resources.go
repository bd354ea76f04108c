package workspace

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/databricks/databricks-sdk-go/service/apps"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// App resources, as the platform treats them: adding one takes CAN MANAGE (or, in Unity Catalog, MANAGE) on what it
// names; the platform then grants the app's service principal the resource's permission; and app.yaml's
// `valueFrom: <key>` yields what the app needs to reach it (see docs/platform.md).

// wireResource is a model resource as the Apps API reports it.
func wireResource(r AppResource) apps.AppResource {
	out := apps.AppResource{Name: r.Name}
	perm := r.permission()
	switch r.kind() {
	case "app":
		out.App = &apps.AppResourceApp{Name: r.App, Permission: apps.AppResourceAppAppPermission(perm)}
	case "sql_warehouse":
		out.SqlWarehouse = &apps.AppResourceSqlWarehouse{Id: r.SQLWarehouse,
			Permission: apps.AppResourceSqlWarehouseSqlWarehousePermission(perm)}
	case "table":
		out.UcSecurable = &apps.AppResourceUcSecurable{SecurableFullName: r.Table,
			SecurableType: apps.AppResourceUcSecurableUcSecurableTypeTable,
			Permission:    apps.AppResourceUcSecurableUcSecurablePermission(perm)}
	case "volume":
		out.UcSecurable = &apps.AppResourceUcSecurable{SecurableFullName: r.Volume,
			SecurableType: apps.AppResourceUcSecurableUcSecurableTypeVolume,
			Permission:    apps.AppResourceUcSecurableUcSecurablePermission(perm)}
	case "genie_space":
		out.GenieSpace = &apps.AppResourceGenieSpace{SpaceId: r.GenieSpace, Name: r.Name,
			Permission: apps.AppResourceGenieSpaceGenieSpacePermission(perm)}
	case "secret":
		out.Secret = &apps.AppResourceSecret{Scope: r.Secret.Scope, Key: r.Secret.Key,
			Permission: apps.AppResourceSecretSecretPermission(perm)}
	}
	return out
}

// checkResource checks one resource of an Apps API create or update for who sets it: it names exactly one thing
// the workspace has, with a permission of its kind, and who sets it may manage that thing, or anyone could give
// themselves, through an app of theirs, access to what they may not use.
func (m *appManager) checkResource(who principal, res apps.AppResource) *jsonhttp.Error {
	bad := badParameter
	forbidden := func(format string, args ...any) *jsonhttp.Error {
		return &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
			Message: fmt.Sprintf("resource %s: ", res.Name) + fmt.Sprintf(format, args...)}
	}
	set := 0
	for _, present := range []bool{res.App != nil, res.SqlWarehouse != nil, res.UcSecurable != nil, res.GenieSpace != nil,
		res.Secret != nil, res.Database != nil, res.Experiment != nil, res.Job != nil, res.Postgres != nil,
		res.ServingEndpoint != nil} {
		if present {
			set++
		}
	}
	if set != 1 {
		return bad("resource %s: name exactly one of app, sql_warehouse, uc_securable, genie_space and secret", res.Name)
	}
	allowed := func(kind, perm string) *jsonhttp.Error {
		if perm == "" || slices.Contains(resourcePermissions[kind], perm) {
			return nil
		}
		return bad("resource %s: permission %q: a %s resource grants one of %s", res.Name, perm, kind,
			strings.Join(resourcePermissions[kind], ", "))
	}
	switch {
	case res.App != nil:
		if p := string(res.App.Permission); p != "" && p != PermissionCanUse {
			return bad("resource %s: permission %q: an app resource grants CAN_USE", res.Name, p)
		}
		target := m.settingsOf(res.App.Name)
		switch {
		case target == nil:
			return bad("resource %s: app %s does not exist", res.Name, res.App.Name)
		case !mayManage(target, who):
			return forbidden("%s does not have CAN_MANAGE on app %s, so may not grant its access to another app",
				who.UserName, res.App.Name)
		}
	case res.SqlWarehouse != nil:
		if jerr := allowed("sql_warehouse", string(res.SqlWarehouse.Permission)); jerr != nil {
			return jerr
		}
		wh := m.data.warehouses.get(res.SqlWarehouse.Id)
		switch {
		case wh == nil:
			return bad("resource %s: warehouse %s does not exist", res.Name, res.SqlWarehouse.Id)
		case !wh.acl.has(who, PermissionCanManage):
			return forbidden("%s does not have CAN_MANAGE on warehouse %s", who.UserName, res.SqlWarehouse.Id)
		}
	case res.UcSecurable != nil:
		kind := map[apps.AppResourceUcSecurableUcSecurableType]string{
			apps.AppResourceUcSecurableUcSecurableTypeTable:  kindTable,
			apps.AppResourceUcSecurableUcSecurableTypeVolume: kindVolume}[res.UcSecurable.SecurableType]
		if kind == "" {
			return bad("resource %s: securable_type %q: the emulator's Unity Catalog has TABLE and VOLUME", res.Name,
				res.UcSecurable.SecurableType)
		}
		if jerr := allowed(kind, string(res.UcSecurable.Permission)); jerr != nil {
			return jerr
		}
		s := m.data.uc.lookup(kind, res.UcSecurable.SecurableFullName)
		switch {
		case s == nil:
			return bad("resource %s: %s %s does not exist", res.Name, kind, res.UcSecurable.SecurableFullName)
		case !m.data.uc.canManage(who, s):
			return forbidden("%s does not have MANAGE on %s", who.UserName, s.label())
		}
	case res.GenieSpace != nil:
		if jerr := allowed("genie_space", string(res.GenieSpace.Permission)); jerr != nil {
			return jerr
		}
		acl := m.data.genie.acl(res.GenieSpace.SpaceId)
		switch {
		case acl == nil:
			return bad("resource %s: Genie space %s does not exist", res.Name, res.GenieSpace.SpaceId)
		case !acl.has(who, PermissionCanManage):
			return forbidden("%s does not have CAN_MANAGE on Genie space %s", who.UserName, res.GenieSpace.SpaceId)
		}
	case res.Secret != nil:
		if jerr := allowed("secret", string(res.Secret.Permission)); jerr != nil {
			return jerr
		}
		m.data.secrets.mu.Lock()
		s, ok := m.data.secrets.scopes[res.Secret.Scope]
		_, hasKey := s.secretsOrNil()[res.Secret.Key]
		manages := ok && s.allows(who, "MANAGE")
		m.data.secrets.mu.Unlock()
		switch {
		case !ok || !hasKey:
			return bad("resource %s: secret %s in scope %s does not exist", res.Name, res.Secret.Key, res.Secret.Scope)
		case !manages:
			return forbidden("%s does not have MANAGE on secret scope %s", who.UserName, res.Secret.Scope)
		}
	default:
		return bad("resource %s: this kind of resource is not emulated: the emulator has app, sql_warehouse, "+
			"uc_securable (TABLE, VOLUME), genie_space and secret resources", res.Name)
	}
	return nil
}

func (s *secretScope) secretsOrNil() map[string]storedSecret {
	if s == nil {
		return nil
	}
	return s.secrets
}

// grantResourcesLocked gives an app's service principal what its resources ask for, as the platform does when a
// resource is added: CAN_USE on a target app, the permission on a warehouse or Genie space, READ on a secret's
// scope, and USE CATALOG, USE SCHEMA and the privilege on a table or volume. Callers hold m.mu.
func (m *appManager) grantResourcesLocked(s *appSettings) {
	sp := s.servicePrincipal.ApplicationID
	for _, r := range s.resources {
		switch {
		case r.App != nil:
			m.grantAppResourceLocked(sp, r.App)
		case r.SqlWarehouse != nil:
			if wh := m.data.warehouses.get(r.SqlWarehouse.Id); wh != nil {
				wh.acl.grant(aclEntry{servicePrincipalName: sp,
					level: cmp.Or(string(r.SqlWarehouse.Permission), PermissionCanUse)})
			}
		case r.GenieSpace != nil:
			if acl := m.data.genie.acl(r.GenieSpace.SpaceId); acl != nil {
				acl.grant(aclEntry{servicePrincipalName: sp, level: cmp.Or(string(r.GenieSpace.Permission), "CAN_RUN")})
			}
		case r.Secret != nil:
			m.data.secrets.grant(r.Secret.Scope, sp, cmp.Or(string(r.Secret.Permission), "READ"))
		case r.UcSecurable != nil:
			uc := m.data.uc
			kind, priv := kindTable, cmp.Or(string(r.UcSecurable.Permission), PrivSelect)
			if r.UcSecurable.SecurableType == apps.AppResourceUcSecurableUcSecurableTypeVolume {
				kind, priv = kindVolume, cmp.Or(string(r.UcSecurable.Permission), PrivReadVolume)
			}
			if t := uc.lookup(kind, r.UcSecurable.SecurableFullName); t != nil {
				uc.grant(t.parent.parent, sp, PrivUseCatalog)
				uc.grant(t.parent, sp, PrivUseSchema)
				uc.grant(t, sp, priv)
			}
		}
	}
}

// resourceValue is what `valueFrom: key` yields for an app, as on the platform: an app's name, a warehouse's id, a
// table's full name, a volume's path (/Volumes/c/s/v), a Genie space's id, or a secret's value.
func (m *appManager) resourceValue(s *appSettings, key string) (string, error) {
	for _, r := range s.resources {
		if r.Name != key {
			continue
		}
		switch {
		case r.App != nil:
			return r.App.Name, nil
		case r.SqlWarehouse != nil:
			return r.SqlWarehouse.Id, nil
		case r.GenieSpace != nil:
			return r.GenieSpace.SpaceId, nil
		case r.UcSecurable != nil && r.UcSecurable.SecurableType == apps.AppResourceUcSecurableUcSecurableTypeVolume:
			return "/Volumes/" + strings.ReplaceAll(r.UcSecurable.SecurableFullName, ".", "/"), nil
		case r.UcSecurable != nil:
			return r.UcSecurable.SecurableFullName, nil
		case r.Secret != nil:
			v, ok := m.data.secrets.value(r.Secret.Scope, r.Secret.Key)
			if !ok {
				return "", fmt.Errorf("the secret %s of scope %s behind resource %s does not exist", r.Secret.Key, r.Secret.Scope, key)
			}
			return string(v), nil
		}
		return "", fmt.Errorf("resource %s is of a kind the emulator does not resolve", key)
	}
	return "", fmt.Errorf("app %s has no resource with the key %q (add one with databricks apps update, a bundle, "+
		"or under the app's resources: in the emulator's model)", s.name, key)
}
