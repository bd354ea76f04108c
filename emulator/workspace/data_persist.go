package workspace

import (
	"encoding/json"

	"github.com/databricks/databricks-sdk-go/service/sql"
)

// The data parts a workspace that lasts keeps (persist.go): Unity Catalog's grants, the secret scopes, and the
// warehouses' and Genie spaces' permissions and states. The objects themselves come from the model; the files of
// volumes are in the data folder already. Statements are not kept: their results expire anyway.

// save is every securable's grants, by securable.
func (uc *unityCatalog) save() ([]byte, error) {
	uc.mu.RLock()
	defer uc.mu.RUnlock()
	saved := map[string]map[string][]string{}
	for key, s := range uc.byKey {
		saved[key] = s.grants
	}
	return json.Marshal(saved)
}

// load puts back the grants of the securables the model still has.
func (uc *unityCatalog) load(data []byte) error {
	var saved map[string]map[string][]string
	if err := json.Unmarshal(data, &saved); err != nil {
		return err
	}
	uc.mu.Lock()
	defer uc.mu.Unlock()
	for key, grants := range saved {
		if s, ok := uc.byKey[key]; ok && grants != nil {
			s.grants = grants
		}
	}
	return nil
}

type savedSecretScope struct {
	Secrets map[string]storedSecretJSON `json:"secrets"`
	ACL     map[string]string           `json:"acl"`
}

type storedSecretJSON struct {
	Value   []byte `json:"value"` // base64 in the file, which is the owner's alone
	Updated int64  `json:"updated"`
}

func (ss *secretScopes) save() ([]byte, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	saved := map[string]savedSecretScope{}
	for name, s := range ss.scopes {
		scope := savedSecretScope{Secrets: map[string]storedSecretJSON{}, ACL: s.acl}
		for k, v := range s.secrets {
			scope.Secrets[k] = storedSecretJSON{Value: v.value, Updated: v.updated}
		}
		saved[name] = scope
	}
	return json.Marshal(saved)
}

// load replaces the scopes with the saved ones: scopes created, deleted and changed since the model are kept so.
func (ss *secretScopes) load(data []byte) error {
	var saved map[string]savedSecretScope
	if err := json.Unmarshal(data, &saved); err != nil {
		return err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.scopes = map[string]*secretScope{}
	for name, scope := range saved {
		s := &secretScope{name: name, secrets: map[string]storedSecret{}, acl: scope.ACL}
		if s.acl == nil {
			s.acl = map[string]string{}
		}
		for k, v := range scope.Secrets {
			s.secrets[k] = storedSecret{value: v.Value, updated: v.Updated}
		}
		ss.scopes[name] = s
	}
	return nil
}

// saved is an ACL entry as a file keeps it: an app's, a warehouse's or a Genie space's.
func (e aclEntry) saved() savedACLEntry {
	return savedACLEntry{UserName: e.userName, GroupName: e.groupName, ServicePrincipalName: e.servicePrincipalName,
		Level: e.level}
}

// entry is the ACL entry a file kept.
func (e savedACLEntry) entry() aclEntry {
	return aclEntry{userName: e.UserName, groupName: e.GroupName, servicePrincipalName: e.ServicePrincipalName,
		level: e.Level}
}

// savedEntries is an object's ACL as a file keeps it.
func (a *objectACL) savedEntries() []savedACLEntry {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]savedACLEntry, 0, len(a.entries))
	for _, e := range a.entries {
		out = append(out, e.saved())
	}
	return out
}

func (a *objectACL) restore(saved []savedACLEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = a.entries[:0]
	for _, e := range saved {
		if a.rank(e.Level) >= 0 {
			a.entries = append(a.entries, e.entry())
		}
	}
}

type savedWarehouse struct {
	Stopped bool            `json:"stopped,omitempty"`
	ACL     []savedACLEntry `json:"acl"`
}

// save keeps each warehouse's permissions, and whether it was stopped (a warehouse between states counts as where
// it was going).
func (ws *warehouses) save() ([]byte, error) {
	ws.mu.Lock()
	saved := map[string]savedWarehouse{}
	whs := make([]*warehouse, 0, len(ws.byID))
	for _, wh := range ws.byID {
		whs = append(whs, wh)
		saved[wh.id] = savedWarehouse{Stopped: wh.state == sql.StateStopped || wh.state == sql.StateStopping}
	}
	ws.mu.Unlock()
	for _, wh := range whs { // the ACL's own lock, not under ws.mu
		s := saved[wh.id]
		s.ACL = wh.acl.savedEntries()
		saved[wh.id] = s
	}
	return json.Marshal(saved)
}

func (ws *warehouses) load(data []byte) error {
	var saved map[string]savedWarehouse
	if err := json.Unmarshal(data, &saved); err != nil {
		return err
	}
	for id, s := range saved {
		wh := ws.get(id)
		if wh == nil {
			continue
		}
		wh.acl.restore(s.ACL)
		ws.mu.Lock()
		if s.Stopped {
			wh.state = sql.StateStopped
		}
		ws.mu.Unlock()
	}
	return nil
}

func (g *genieSpaces) save() ([]byte, error) {
	saved := map[string][]savedACLEntry{}
	for _, s := range g.order {
		saved[s.id] = s.acl.savedEntries()
	}
	return json.Marshal(saved)
}

func (g *genieSpaces) load(data []byte) error {
	var saved map[string][]savedACLEntry
	if err := json.Unmarshal(data, &saved); err != nil {
		return err
	}
	for id, acl := range saved {
		if s, ok := g.byID[id]; ok {
			s.acl.restore(acl)
		}
	}
	return nil
}

// parts are the data subsystems as the store lists them; none before Start has made them.
func (d *dataServices) parts() []namedSubsystem {
	if d == nil {
		return nil
	}
	return []namedSubsystem{
		{partCatalog, d.uc},
		{partSecrets, d.secrets},
		{partWarehouses, d.warehouses},
		{partGenie, d.genie},
	}
}

// The data parts' names: each is <data folder>/workspace/<name>.json.
const (
	partCatalog    = "unity-catalog"
	partSecrets    = "secrets"
	partWarehouses = "warehouses"
	partGenie      = "genie"
)
