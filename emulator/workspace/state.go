package workspace

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/databricks-sample/go-apps-api/internal/atomicfile"
)

// State is the document `emulator --state FILE` writes once everything listens: what scripts and tests need to
// reach the emulated workspace and its apps. It holds service principal secrets, so it is written owner-only.
type State struct {
	WorkspaceHost     string                           `json:"workspace_host"`
	WorkspaceID       string                           `json:"workspace_id"`
	Apps              map[string]AppState              `json:"apps"`
	Users             map[string]UserState             `json:"users"`
	ServicePrincipals map[string]ServicePrincipalState `json:"service_principals"`
	IdentityProviders map[string]IdentityProviderState `json:"identity_providers"`
	Warehouses        []string                         `json:"warehouses"`  // the SQL warehouses' ids
	ConfigFile        string                           `json:"config_file"` // a .databrickscfg with Profile
	Profile           string                           `json:"profile"`     // the signed-in user's profile
	CLIPath           string                           `json:"cli_path"`    // the databricks CLI stand-in
}

// AppState describes one app: its proxy URL (what callers call) and where the proxy forwards.
type AppState struct {
	URL                      string `json:"url"`
	Upstream                 string `json:"upstream"`
	ServicePrincipalClientID string `json:"service_principal_client_id"`
}

// UserState describes one user and the apps they hold CAN_USE on.
type UserState struct {
	ID     string   `json:"id"`
	CanUse []string `json:"can_use"`
}

// ServicePrincipalState gives a service principal's OAuth client credentials and the apps it may use.
type ServicePrincipalState struct {
	ID           string   `json:"id"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	CanUse       []string `json:"can_use"`
}

// IdentityProviderState locates an emulated identity provider: its issuer URL (the iss of its tokens, with its
// discovery document and JWKS under it), where to mint its tokens, and for whom it mints them.
type IdentityProviderState struct {
	Issuer        string   `json:"issuer"`
	TokenEndpoint string   `json:"token_endpoint"`
	Subjects      []string `json:"subjects"`
}

// State describes the running workspace: the model's apps and principals and those created since (a new app's
// service principal included). The profile fields are empty until [Workspace.WriteProfile] is called.
func (w *Workspace) State() State {
	s := State{
		WorkspaceHost:     w.url,
		WorkspaceID:       w.cfg.Workspace.ID,
		Apps:              map[string]AppState{},
		Users:             map[string]UserState{},
		ServicePrincipals: map[string]ServicePrincipalState{},
		IdentityProviders: map[string]IdentityProviderState{},
		Warehouses:        w.data.warehouses.ids(),
	}
	for _, name := range w.AppNames() {
		if settings := w.apps.settingsOf(name); settings != nil {
			s.Apps[name] = AppState{URL: w.AppURL(name), Upstream: w.Upstream(name),
				ServicePrincipalClientID: settings.servicePrincipal.ApplicationID}
		}
	}
	for _, u := range w.dir.users() {
		s.Users[u.UserName] = UserState{ID: u.ID, CanUse: w.apps.appsUsableBy(u)}
	}
	for _, sp := range w.dir.servicePrincipals() {
		p, _ := w.dir.subject(sp.ApplicationID)
		s.ServicePrincipals[sp.Name] = ServicePrincipalState{ID: sp.ID, ClientID: sp.ApplicationID,
			ClientSecret: sp.Secret, CanUse: w.apps.appsUsableBy(p)}
	}
	for name, p := range w.auth.federation.byName {
		s.IdentityProviders[name] = IdentityProviderState{Issuer: p.iss, TokenEndpoint: p.iss + PathIdPToken,
			Subjects: p.subs()}
	}
	if p, ok := w.profile(); ok {
		s.ConfigFile, s.Profile, s.CLIPath = p.ConfigFile, p.Name, p.CLIPath
	}
	return s
}

// ReadState reads a state file that `emulator --state FILE` wrote.
func ReadState(path string) (State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return State{}, fmt.Errorf("read the emulator state: %w (start the emulator with --state %s)", err, path)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return State{}, fmt.Errorf("emulator state %s: %w", path, err)
	}
	return s, nil
}

// KeepStateFile makes the workspace rewrite path with [Workspace.State] whenever its apps, their instances or their
// permissions change, so scripts reading it see apps created through the Apps API and their service principals.
func (w *Workspace) KeepStateFile(path string) {
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	w.statePath = path
}

// stateChanged rewrites the kept state file, if any, and has the apps saved (persist.go).
func (w *Workspace) stateChanged() {
	w.changed("apps")
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	if w.statePath == "" {
		return
	}
	if err := w.WriteState(w.statePath); err != nil {
		w.logger.Warn("rewrite the state file", "err", err)
	}
}

// WriteState writes [Workspace.State] to path, owner-only, replacing the file at once so a script polling for it
// never reads half a document.
func (w *Workspace) WriteState(path string) error {
	data, err := json.MarshalIndent(w.State(), "", "  ")
	if err != nil {
		return fmt.Errorf("encode the state: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
