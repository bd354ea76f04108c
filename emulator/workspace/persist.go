package workspace

// A workspace that lasts. Given a data folder (Options.DataDir), the workspace keeps itself there across restarts:
// its address, its token signing key, the service principals of the apps created through the API with their
// secrets, the refresh tokens and revocations, the identity providers' keys, and the apps with their permissions and
// deployments; the workspace files, the deployments' snapshots and what they installed are in the folder already.
// So it comes back on the same address, a CLI profile logged in before the restart keeps working, and the apps that
// were running run again. Without a data folder the workspace is thrown away on Close, and nothing is written.
//
// Each part is a subsystem that saves and loads itself, in a file of its own written atomically; see subsystems.

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/service/apps"

	"github.com/databricks-sample/go-apps-api/internal/atomicfile"
)

// subsystem is a part of the workspace kept across restarts, as one JSON document.
type subsystem interface {
	// save returns the part's state as JSON. It takes the part's own lock; it is never called under m.mu.
	save() ([]byte, error)
	// load restores what save returned in an earlier run. Start calls it once, before the workspace serves.
	load(data []byte) error
}

type namedSubsystem struct {
	name string
	subsystem
}

// subsystems lists the parts of the workspace kept across restarts, each in <data folder>/workspace/<name>.json, in
// the order Start loads them. To keep another part (a warehouse, grants on a catalog, secrets):
//  1. implement subsystem on it: save under its own lock, load before anything is served;
//  2. add it to this list, after the parts it refers to (principals, apps);
//  3. call w.changed(name) after each change of its state; the store saves it soon after, outside any lock.
func (w *Workspace) subsystems() []namedSubsystem {
	parts := []namedSubsystem{
		{"address", workspaceAddress{w}}, // loaded first, on its own: Start listens where it says
		{"signing-key", w.auth.issuer},
		{"principals", w.dir},
		{"grants", w.auth.grants},
		{"identity-providers", w.auth.federation},
	}
	parts = append(parts, w.data.parts()...) // before the apps, whose resources they grant
	return append(parts, namedSubsystem{"apps", w.apps})
}

// changed tells the store that the named part changed. It only signals: callers may hold any lock.
func (w *Workspace) changed(name string) { w.store.changed(name) }

// store saves the parts that changed, in the background, and all of them once more on Close.
type store struct {
	dir    string // <data folder>/workspace; "" saves nothing
	logger *slog.Logger
	parts  func() []namedSubsystem

	mu      sync.Mutex
	dirty   map[string]bool
	started bool // start ran: a workspace that failed to start never saves its half-made state
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newStore(dir string, logger *slog.Logger, parts func() []namedSubsystem) *store {
	return &store{dir: dir, logger: logger, parts: parts, dirty: map[string]bool{}, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (s *store) changed(name string) {
	if s == nil || s.dir == "" {
		return
	}
	s.mu.Lock()
	s.dirty[name] = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// start saves changed parts in the background until close.
func (s *store) start() {
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	if s.dir == "" {
		close(s.done)
		return
	}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.wake:
				s.saveDirty()
			case <-s.stop:
				s.saveDirty()
				return
			}
		}
	}()
}

// close saves every part once more and stops the background saver. Before start (Start failing half-way: a port
// taken, say) there is no saver to stop and nothing to save: what was saved before stays as it was.
func (s *store) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	started := s.started
	if started && s.dir != "" {
		for _, p := range s.parts() {
			s.dirty[p.name] = true
		}
	}
	s.mu.Unlock()
	if !started {
		return
	}
	if s.dir != "" {
		close(s.stop)
	}
	<-s.done
}

func (s *store) saveDirty() {
	s.mu.Lock()
	dirty := s.dirty
	s.dirty = map[string]bool{}
	s.mu.Unlock()
	for _, p := range s.parts() {
		if !dirty[p.name] {
			continue
		}
		data, err := p.save()
		if err == nil {
			err = atomicfile.WriteFile(filepath.Join(s.dir, p.name+".json"), data, 0o600)
		}
		if err != nil {
			s.logger.Error("save the workspace", "part", p.name, "err", err)
		}
	}
}

// load restores the named part from its file, if an earlier run saved one.
func (s *store) load(p namedSubsystem) error {
	if s.dir == "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(s.dir, p.name+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = p.load(data)
	}
	if err != nil {
		return fmt.Errorf("load the saved workspace's %s from %s: %w (start a fresh one with --fresh, or "+
			"another --data-dir)", p.name, s.dir, err)
	}
	return nil
}

// workspaceAddress is where the workspace listens and which workspace it is: a restart listens there again, so that
// CLI profiles and their cached tokens keep pointing at it.
type workspaceAddress struct{ w *Workspace }

type savedAddress struct {
	URL         string `json:"url"`
	WorkspaceID string `json:"workspace_id"`
}

func (a workspaceAddress) save() ([]byte, error) {
	return json.MarshalIndent(savedAddress{URL: a.w.url, WorkspaceID: a.w.cfg.Workspace.ID}, "", "  ")
}

func (a workspaceAddress) load(data []byte) error {
	var saved savedAddress
	if err := json.Unmarshal(data, &saved); err != nil {
		return err
	}
	if saved.WorkspaceID != a.w.cfg.Workspace.ID {
		return fmt.Errorf("it is workspace %s, the model's is %s", saved.WorkspaceID, a.w.cfg.Workspace.ID)
	}
	a.w.savedURL = saved.URL
	return nil
}

// The issuer's signing key: tokens issued before a restart verify after it.
func (i *issuer) save() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(i.key.Load())
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string][]byte{"pkcs8": der})
}

func (i *issuer) load(data []byte) error {
	var saved map[string][]byte
	if err := json.Unmarshal(data, &saved); err != nil {
		return err
	}
	key, err := x509.ParsePKCS8PrivateKey(saved["pkcs8"])
	if err != nil {
		return err
	}
	ecKey, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("the signing key is not an ECDSA key")
	}
	i.key.Store(ecKey)
	i.verified.clear()
	return nil
}

// The directory's service principals that are not the model's: those of apps created through the Apps API.
type savedPrincipals struct {
	NextID            int64              `json:"next_id"`
	ServicePrincipals []ServicePrincipal `json:"service_principals"`
}

func (d *directory) save() ([]byte, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	saved := savedPrincipals{NextID: d.nextID}
	for id, sp := range d.sps {
		if !d.fromModel[id] {
			saved.ServicePrincipals = append(saved.ServicePrincipals, sp)
		}
	}
	return json.MarshalIndent(saved, "", "  ")
}

func (d *directory) load(data []byte) error {
	var saved savedPrincipals
	if err := json.Unmarshal(data, &saved); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, sp := range saved.ServicePrincipals {
		if _, taken := d.bySubject[sp.ApplicationID]; taken || d.nameTakenLocked(sp.Name) {
			continue // the model has it now
		}
		d.addLocked(sp)
	}
	d.nextID = max(d.nextID, saved.NextID)
	return nil
}

// The refresh tokens, by hash, and the revocations.
type savedGrants struct {
	Refresh []savedRefresh `json:"refresh_tokens"`
	// Revoked grants and each revoked subject's token generation.
	Revoked     map[string]time.Time `json:"revoked_grants"`
	Generations map[string]int64     `json:"generations"`
}

type savedRefresh struct {
	Hash       tokenHash `json:"sha256"`
	User       principal `json:"user"`
	ClientID   string    `json:"client_id"`
	Scopes     []string  `json:"scopes"`
	Grant      string    `json:"grant"`
	Generation int64     `json:"generation"`
	Expires    time.Time `json:"expires"`
}

func (g *grants) save() ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	saved := savedGrants{Revoked: g.revoked, Generations: map[string]int64{}}
	for h, r := range g.refresh {
		saved.Refresh = append(saved.Refresh, savedRefresh{Hash: h, User: r.user, ClientID: r.clientID, Scopes: r.scopes,
			Grant: r.grant, Generation: r.generation, Expires: r.expires})
	}
	g.generations.Range(func(k, v any) bool {
		saved.Generations[k.(string)] = v.(int64)
		return true
	})
	return json.Marshal(saved)
}

func (g *grants) load(data []byte) error {
	var saved savedGrants
	if err := json.Unmarshal(data, &saved); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	for _, r := range saved.Refresh {
		if now.Before(r.Expires) {
			g.refresh[r.Hash] = refreshGrant{user: r.User, clientID: r.ClientID, scopes: r.Scopes, grant: r.Grant,
				generation: r.Generation, expires: r.Expires}
		}
	}
	for grant, until := range saved.Revoked {
		g.revoked[grant] = until
	}
	for subject, n := range saved.Generations {
		g.generations.Store(subject, n)
	}
	return nil
}

// The identity providers' signing keys, of those that made one: their tokens verify after a restart.
func (f *federation) save() ([]byte, error) {
	keys := map[string][]byte{}
	for name, p := range f.byName {
		if p.keyMade() {
			keys[name] = x509.MarshalPKCS1PrivateKey(p.key)
		}
	}
	return json.Marshal(keys)
}

func (f *federation) load(data []byte) error {
	var keys map[string][]byte
	if err := json.Unmarshal(data, &keys); err != nil {
		return err
	}
	for name, der := range keys {
		p, ok := f.byName[name]
		if !ok {
			continue // no longer in the model
		}
		key, err := x509.ParsePKCS1PrivateKey(der)
		if err != nil {
			return fmt.Errorf("identity provider %s: %w", name, err)
		}
		p.useKey(key)
	}
	return nil
}

// keyMade reports whether the provider has made its signing key (or been given one).
func (p *identityProvider) keyMade() bool { return p.made.Load() }

// useKey makes key the provider's signing key, as if it had made it.
func (p *identityProvider) useKey(key *rsa.PrivateKey) {
	p.keyOnce.Do(func() {
		p.key, p.kid = key, jwkThumbprint(&key.PublicKey)
		p.made.Store(true)
	})
}

type savedApp struct {
	Name                  string             `json:"name"`
	ID                    string             `json:"id"`
	Description           string             `json:"description,omitempty"`
	ServicePrincipal      string             `json:"service_principal_client_id"`
	UserAPIScopes         []string           `json:"user_api_scopes,omitempty"`
	Resources             []apps.AppResource `json:"resources,omitempty"`
	ACL                   []savedACLEntry    `json:"acl"`
	Port                  int                `json:"port"`
	Host                  string             `json:"host,omitempty"` // the proxy's loopback address (addresses.go)
	CreateTime            time.Time          `json:"create_time"`
	UpdateTime            time.Time          `json:"update_time"`
	Creator               string             `json:"creator"`
	Updater               string             `json:"updater"`
	Compute               apps.ComputeState  `json:"compute_state"`
	Deployments           []savedDeployment  `json:"deployments,omitempty"`
	Active                string             `json:"active_deployment_id,omitempty"`
	DefaultSourceCodePath string             `json:"default_source_code_path,omitempty"`
	LastUpdate            *apps.AppUpdate    `json:"last_update,omitempty"`
	FromModel             bool               `json:"from_model,omitempty"`
}

type savedACLEntry struct {
	UserName             string `json:"user_name,omitempty"`
	GroupName            string `json:"group_name,omitempty"`
	ServicePrincipalName string `json:"service_principal_name,omitempty"`
	Level                string `json:"permission_level"`
}

type savedDeployment struct {
	ID             string                  `json:"deployment_id"`
	SourceCodePath string                  `json:"source_code_path"`
	Mode           apps.AppDeploymentMode  `json:"mode"`
	Command        []string                `json:"command,omitempty"`
	EnvVars        []apps.EnvVar           `json:"env_vars,omitempty"`
	Creator        string                  `json:"creator"`
	CreateTime     time.Time               `json:"create_time"`
	UpdateTime     time.Time               `json:"update_time"`
	State          apps.AppDeploymentState `json:"state"`
	Message        string                  `json:"message"`
	Detail         string                  `json:"detail,omitempty"` // what follows the message for managers only
	Dir            string                  `json:"dir,omitempty"`    // relative to the data folder
	Venv           string                  `json:"venv,omitempty"`   // relative to the data folder
	NodeKey        string                  `json:"node_key,omitempty"`
}

// save is the apps as a part of a lasting workspace: their settings and permissions, compute state, proxy address
// and deployments.
func (m *appManager) save() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var saved []savedApp
	for _, name := range m.order {
		rec := m.byName[name]
		s := rec.settings()
		app := savedApp{Name: s.name, ID: rec.id, Description: s.description,
			ServicePrincipal: s.servicePrincipal.ApplicationID, UserAPIScopes: s.userAPIScopes, Resources: s.resources,
			Port: rec.proxy.port(), Host: rec.proxy.host(), CreateTime: rec.createTime, UpdateTime: rec.updateTime, Creator: rec.creator,
			Updater: rec.updater, Compute: rec.computeState, DefaultSourceCodePath: rec.defaultSourceCodePath,
			LastUpdate: rec.lastUpdate, FromModel: rec.fromModel}
		switch app.Compute { // a transition under way is saved as where it was going
		case apps.ComputeStateStarting:
			app.Compute = apps.ComputeStateActive
		case apps.ComputeStateStopping:
			app.Compute = apps.ComputeStateStopped
		}
		for _, e := range s.acl {
			app.ACL = append(app.ACL, e.saved())
		}
		for _, d := range rec.deployments {
			app.Deployments = append(app.Deployments, savedDeployment{ID: d.id, SourceCodePath: d.sourceCodePath,
				Mode: d.mode, Command: d.command, EnvVars: d.envVars, Creator: d.creator, CreateTime: d.createTime,
				UpdateTime: d.updateTime, State: d.state, Message: d.message, Detail: d.detail, Dir: m.relativeToData(d.dir),
				Venv: m.relativeToData(d.venv), NodeKey: d.nodeKey})
		}
		if rec.active != nil {
			app.Active = rec.active.id
		}
		saved = append(saved, app)
	}
	return json.MarshalIndent(saved, "", "  ")
}

// load keeps the saved apps for Start, which adds each with its proxy where it was (restoreApps).
func (m *appManager) load(data []byte) error {
	var saved []savedApp
	if err := json.Unmarshal(data, &saved); err != nil {
		return err
	}
	m.savedApps = saved
	return nil
}

func (m *appManager) relativeToData(path string) string {
	if path == "" {
		return ""
	}
	if rel, err := filepath.Rel(m.dataDir, path); err == nil {
		return rel
	}
	return path
}

func (m *appManager) inData(rel string) string {
	if rel == "" || filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(m.dataDir, rel)
}

// savedApp returns the saved state of the named app, if an earlier run saved one.
func (m *appManager) savedApp(name string) (savedApp, bool) {
	for _, a := range m.savedApps {
		if a.Name == name {
			return a, true
		}
	}
	return savedApp{}, false
}

// restoreAppLocked puts an app back as it was saved: its settings and permissions, its times, its compute state
// and its deployments. A deployment under way when the emulator stopped is FAILED. Callers hold m.mu.
func (m *appManager) restoreAppLocked(rec *appRecord, saved savedApp) {
	sp := rec.settings().servicePrincipal
	s := &appSettings{name: saved.Name, description: saved.Description, servicePrincipal: sp,
		userAPIScopes: saved.UserAPIScopes, resources: saved.Resources}
	for _, e := range saved.ACL {
		s.acl = append(s.acl, e.entry())
	}
	rec.proxy.settings.Store(s)
	rec.id, rec.createTime, rec.updateTime = saved.ID, saved.CreateTime, saved.UpdateTime
	rec.creator, rec.updater = saved.Creator, saved.Updater
	rec.computeState = saved.Compute
	rec.defaultSourceCodePath, rec.lastUpdate = saved.DefaultSourceCodePath, saved.LastUpdate
	rec.deployments, rec.active, rec.pending = nil, nil, nil
	for _, sd := range saved.Deployments {
		d := &deployment{id: sd.ID, sourceCodePath: sd.SourceCodePath, mode: sd.Mode, command: sd.Command,
			envVars: sd.EnvVars, creator: sd.Creator, createTime: sd.CreateTime, updateTime: sd.UpdateTime,
			state: sd.State, message: sd.Message, detail: sd.Detail, dir: m.inData(sd.Dir), venv: m.inData(sd.Venv), nodeKey: sd.NodeKey}
		if d.state == apps.AppDeploymentStateInProgress {
			d.state, d.message, d.detail = apps.AppDeploymentStateFailed, "Deployment failed: the emulator stopped before it finished", ""
		}
		rec.deployments = append(rec.deployments, d)
		if sd.ID == saved.Active && d.state == apps.AppDeploymentStateSucceeded {
			rec.active = d
		}
	}
}
