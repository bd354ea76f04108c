package workspace

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// State is the document `emulator --state FILE` writes once everything listens: what scripts and tests need to
// reach the emulated workspace and its apps. It holds service principal secrets, so it is written owner-only.
type State struct {
	WorkspaceHost     string                           `json:"workspace_host"`
	WorkspaceID       string                           `json:"workspace_id"`
	Apps              map[string]AppState              `json:"apps"`
	Users             map[string]UserState             `json:"users"`
	ServicePrincipals map[string]ServicePrincipalState `json:"service_principals"`
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

// State describes the running workspace. The profile fields are empty until [Workspace.WriteProfile] is called.
func (w *Workspace) State() State {
	s := State{
		WorkspaceHost:     w.url,
		WorkspaceID:       w.cfg.Workspace.ID,
		Apps:              map[string]AppState{},
		Users:             map[string]UserState{},
		ServicePrincipals: map[string]ServicePrincipalState{},
	}
	for _, a := range w.cfg.Apps {
		s.Apps[a.Name] = AppState{URL: w.AppURL(a.Name), Upstream: w.Upstream(a.Name),
			ServicePrincipalClientID: w.dir.servicePrincipalByName(a.ServicePrincipal).ApplicationID}
	}
	for _, u := range w.cfg.Users {
		s.Users[u.UserName] = UserState{ID: u.ID, CanUse: w.dir.appsUsableBy(w.dir.bySubject[u.UserName])}
	}
	for _, sp := range w.cfg.ServicePrincipals {
		s.ServicePrincipals[sp.Name] = ServicePrincipalState{ID: sp.ID, ClientID: sp.ApplicationID,
			ClientSecret: sp.Secret, CanUse: w.dir.appsUsableBy(w.dir.bySubject[sp.ApplicationID])}
	}
	if p, ok := w.profile(); ok {
		s.ConfigFile, s.Profile, s.CLIPath = p.ConfigFile, p.Name, p.CLIPath
	}
	return s
}

// WriteState writes [Workspace.State] to path, owner-only, replacing the file at once so a script polling for it
// never reads half a document.
func (w *Workspace) WriteState(path string) error {
	data, err := json.MarshalIndent(w.State(), "", "  ")
	if err != nil {
		return fmt.Errorf("encode the state: %w", err)
	}
	return writeFileAtomic(path, append(data, '\n'), 0o600)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(perm); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
