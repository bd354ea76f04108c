package workspace

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is the principal model: who exists in the emulated workspace and who may use which app. Its YAML and JSON
// forms use the same field names (see default.yaml).
type Config struct {
	Workspace         WorkspaceConfig    `json:"workspace" yaml:"workspace"`
	Users             []User             `json:"users" yaml:"users"`
	ServicePrincipals []ServicePrincipal `json:"service_principals" yaml:"service_principals"`
	Apps              []App              `json:"apps" yaml:"apps"`
	// IdentityProviders are external OIDC issuers the emulator serves itself, in place of a CI provider or an
	// Entra ID tenant: their tokens are what token federation exchanges (see idp.go).
	IdentityProviders []IdentityProvider `json:"identity_providers,omitempty" yaml:"identity_providers,omitempty"`
	// FederationPolicies are the account's federation policies (account-wide token federation); a service
	// principal's own policies are listed with the service principal.
	FederationPolicies []FederationPolicy `json:"federation_policies,omitempty" yaml:"federation_policies,omitempty"`

	// The data apps read as their users (data_config.go).
	Groups       []Group       `json:"groups,omitempty" yaml:"groups,omitempty"`
	Warehouses   []Warehouse   `json:"warehouses,omitempty" yaml:"warehouses,omitempty"`
	Catalogs     []Catalog     `json:"catalogs,omitempty" yaml:"catalogs,omitempty"`
	GenieSpaces  []GenieSpace  `json:"genie_spaces,omitempty" yaml:"genie_spaces,omitempty"`
	SecretScopes []SecretScope `json:"secret_scopes,omitempty" yaml:"secret_scopes,omitempty"`

	// files is where the model's data and files paths point: the model file's folder (nil: the default model's).
	files fs.FS
}

// WorkspaceConfig identifies the emulated workspace.
type WorkspaceConfig struct {
	ID        string `json:"id" yaml:"id"`
	AccountID string `json:"account_id,omitempty" yaml:"account_id,omitempty"`
	// Host is the loopback address the workspace listens on; empty means 127.0.0.1 on a free port.
	Host  string      `json:"host,omitempty" yaml:"host,omitempty"`
	OAuth OAuthPolicy `json:"oauth,omitempty" yaml:"oauth,omitempty"`
	// AllowedAppsUserAPIScopes are the user authorization scopes apps may ask for (the workspace setting
	// allowedAppsUserApiScopes, which an admin changes at run time); empty means the platform's list, AppUserScopes.
	// "*" allows every scope the platform offers.
	AllowedAppsUserAPIScopes []string `json:"allowed_apps_user_api_scopes,omitempty" yaml:"allowed_apps_user_api_scopes,omitempty"`
}

// allowedAppsUserAPIScopes is the model's allowed list, or the platform's when it names none.
func (c WorkspaceConfig) allowedAppsUserAPIScopes() []string {
	if len(c.AllowedAppsUserAPIScopes) == 0 {
		return slices.Clone(AppUserScopes)
	}
	return slices.Clone(c.AllowedAppsUserAPIScopes)
}

// OAuthPolicy is the token policy of the workspace's OAuth app for the CLI and the SDK's U2M flow, as a workspace's
// token_access_policy sets it.
type OAuthPolicy struct {
	// SingleUseRefreshTokens rotates refresh tokens (enable_single_use_refresh_tokens): each refresh returns a new
	// refresh token and invalidates the one used, which then answers "Refresh token is invalid". Off by default:
	// two CLI processes sharing a token cache and refreshing at once would otherwise log one of them out.
	SingleUseRefreshTokens bool `json:"single_use_refresh_tokens,omitempty" yaml:"single_use_refresh_tokens,omitempty"`
}

// User is a workspace user. Its userName doubles as its email, as in Databricks.
type User struct {
	ID          string `json:"id" yaml:"id"`
	UserName    string `json:"user_name" yaml:"user_name"`
	DisplayName string `json:"display_name,omitempty" yaml:"display_name,omitempty"`
	// SignedIn marks the user the authorize endpoint approves as: exactly one user has it.
	SignedIn bool `json:"signed_in,omitempty" yaml:"signed_in,omitempty"`
}

// ServicePrincipal is a machine identity with OAuth client credentials, or federation policies, or both.
type ServicePrincipal struct {
	ID            string `json:"id" yaml:"id"`
	Name          string `json:"name" yaml:"name"`
	ApplicationID string `json:"application_id" yaml:"application_id"`
	// Secret may be empty for a service principal with federation policies: it then has no secret to leak, and
	// authenticates only by exchanging an identity provider's token.
	Secret string `json:"secret,omitempty" yaml:"secret,omitempty"`
	// FederationPolicies are its service principal federation policies (workload identity federation): each
	// names a subject, and the exchange sends the service principal's application id as client_id.
	FederationPolicies []FederationPolicy `json:"federation_policies,omitempty" yaml:"federation_policies,omitempty"`
}

// IdentityProvider is an external OIDC identity provider. The emulator serves it at <workspace>/idp/<name>, its
// issuer URL, with discovery and JWKS, and mints its tokens on request (see idp.go).
type IdentityProvider struct {
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// Subjects are the workloads, apps or users it issues tokens for; it mints for no one else.
	Subjects []IdentitySubject `json:"subjects" yaml:"subjects"`
}

// IdentitySubject is one identity an identity provider issues tokens for.
type IdentitySubject struct {
	Sub string `json:"sub" yaml:"sub"` // e.g. repo:acme/api:ref:refs/heads/main
	// Claims are further string claims its tokens carry, for policies whose subject_claim is not sub: an
	// Entra ID app token names the app's client id in azp and its object id in oid, for example.
	Claims map[string]string `json:"claims,omitempty" yaml:"claims,omitempty"`
}

// FederationPolicy is a Databricks federation policy's OIDC part. A token matches it when the token was issued by
// Issuer, for one of Audiences, and its SubjectClaim holds Subject. In an account policy Subject is empty and the
// claim's value names the principal: a user's user_name or a service principal's application id.
type FederationPolicy struct {
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Issuer names one of the model's identity providers. Databricks stores the issuer URL; the emulator's
	// issuers' URLs hold a port chosen at start, so the model names them instead.
	Issuer string `json:"issuer" yaml:"issuer"`
	// Audiences default to the account id, as in Databricks.
	Audiences    []string `json:"audiences,omitempty" yaml:"audiences,omitempty"`
	Subject      string   `json:"subject,omitempty" yaml:"subject,omitempty"`             // service principal policies only
	SubjectClaim string   `json:"subject_claim,omitempty" yaml:"subject_claim,omitempty"` // sub by default
}

// App is a Databricks App: the proxy in front of it and who may call it.
type App struct {
	Name             string   `json:"name" yaml:"name"`
	Description      string   `json:"description,omitempty" yaml:"description,omitempty"`
	ServicePrincipal string   `json:"service_principal" yaml:"service_principal"`
	UserAPIScopes    []string `json:"user_api_scopes,omitempty" yaml:"user_api_scopes,omitempty"`
	CanUse           CanUse   `json:"can_use" yaml:"can_use"`
	// CanManage lists who may change the app, deploy it and read its logs; empty means the signed-in user.
	CanManage CanUse `json:"can_manage,omitempty" yaml:"can_manage,omitempty"`
	// Upstream is where the proxy forwards, when the app already runs somewhere; `emulator run` sets it itself.
	Upstream string `json:"upstream,omitempty" yaml:"upstream,omitempty"`
	// Port fixes the proxy's port, on the app's own loopback address (addresses.go); 0 picks a free one.
	Port int `json:"port,omitempty" yaml:"port,omitempty"`
	// Resources are the app's app resources: an app.yaml env item `valueFrom: <name>` yields the named app's name,
	// as on the platform. As on the platform, the app's service principal gets CAN_USE on each target app.
	Resources []AppResource `json:"resources,omitempty" yaml:"resources,omitempty"`
}

// AppResource is an app resource: a key the app's app.yaml refers to with valueFrom, and exactly one thing it
// names: an app, a SQL warehouse, a table or volume of Unity Catalog, a Genie space or a secret. As on the platform,
// the app's service principal is granted Permission on it (CAN_USE for an app or a warehouse, SELECT for a table,
// READ_VOLUME for a volume, CAN_RUN for a Genie space and READ for a secret, unless set).
type AppResource struct {
	Name         string          `json:"name" yaml:"name"`                                       // the resource key, e.g. target-app
	App          string          `json:"app,omitempty" yaml:"app,omitempty"`                     // an app's name
	SQLWarehouse string          `json:"sql_warehouse,omitempty" yaml:"sql_warehouse,omitempty"` // a warehouse id
	Table        string          `json:"table,omitempty" yaml:"table,omitempty"`                 // catalog.schema.table
	Volume       string          `json:"volume,omitempty" yaml:"volume,omitempty"`               // catalog.schema.volume
	GenieSpace   string          `json:"genie_space,omitempty" yaml:"genie_space,omitempty"`     // a space id
	Secret       *SecretResource `json:"secret,omitempty" yaml:"secret,omitempty"`
	Permission   string          `json:"permission,omitempty" yaml:"permission,omitempty"`
}

// SecretResource names a secret: valueFrom yields its value.
type SecretResource struct {
	Scope string `json:"scope" yaml:"scope"`
	Key   string `json:"key" yaml:"key"`
}

// Resource returns the name of the app behind the app resource with this key.
func (a App) Resource(key string) (string, bool) {
	for _, r := range a.Resources {
		if r.Name == key && r.App != "" {
			return r.App, true
		}
	}
	return "", false
}

// CanUse lists who holds a permission on an app (CAN_USE, or CAN_MANAGE under can_manage).
type CanUse struct {
	Users             []string `json:"users,omitempty" yaml:"users,omitempty"`                           // userNames
	ServicePrincipals []string `json:"service_principals,omitempty" yaml:"service_principals,omitempty"` // names
	// Groups may only hold "users": every user and service principal of the workspace, as in Databricks.
	Groups []string `json:"groups,omitempty" yaml:"groups,omitempty"`
}

// GroupUsers is the workspace group of every user and service principal; the model's groups (data_config.go) come
// besides it.
const GroupUsers = "users"

//go:embed default.yaml
var defaultYAML []byte

// DefaultConfig returns the embedded default model (see default.yaml and docs/emulator.md).
func DefaultConfig() Config {
	cfg, err := ParseConfig(defaultYAML, "default.yaml")
	if err != nil {
		panic("the embedded default.yaml is invalid: " + err.Error()) // caught by the tests
	}
	return cfg
}

// LoadConfig reads a model from a JSON or YAML file, chosen by extension (.json, .yaml, .yml) or else by content.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read emulator config: %w", err)
	}
	cfg, err := parseConfig(data, path, os.DirFS(filepath.Dir(path)))
	if err != nil {
		return Config{}, fmt.Errorf("emulator config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes and validates a model. name is only used to pick the format by extension; the model's data
// and files paths point into the default model's data.
func ParseConfig(data []byte, name string) (Config, error) { return parseConfig(data, name, nil) }

// parseConfig is ParseConfig with the folder the model's data and files paths are relative to.
func parseConfig(data []byte, name string, files fs.FS) (Config, error) {
	cfg := Config{files: files}
	isJSON := bytes.HasPrefix(bytes.TrimSpace(data), []byte("{"))
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		isJSON = true
	case ".yaml", ".yml":
		isJSON = false
	}
	if isJSON {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return Config{}, fmt.Errorf("invalid JSON: %w", err)
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			return Config{}, fmt.Errorf("invalid YAML: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

var (
	digits  = regexp.MustCompile(`^[0-9]{1,19}$`)
	appName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,29}$`)
	scope   = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)
)

// Validate reports every inconsistency at once, so a hand-edited file is fixed in one go.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !digits.MatchString(c.Workspace.ID) {
		bad("workspace.id %q: want a numeric workspace id", c.Workspace.ID)
	}
	if c.Workspace.Host != "" {
		if err := checkLoopback(c.Workspace.Host); err != nil {
			bad("workspace.host: %v", err)
		}
	}
	allowed := &allowedScopes{list: c.Workspace.allowedAppsUserAPIScopes()}
	for _, s := range c.Workspace.AllowedAppsUserAPIScopes {
		switch {
		case s == ScopeAllAPIs || s == ScopeOfflineAccess:
			bad("workspace.allowed_apps_user_api_scopes: %s cannot be an app's scope: the app would receive its "+
				"callers' whole tokens", s)
		case s != allScopes && !scope.MatchString(s):
			bad("workspace.allowed_apps_user_api_scopes: %q is not a scope", s)
		}
	}
	ids := map[string]string{} // id -> who holds it, to name both in an error
	checkID := func(who, id string) {
		if !digits.MatchString(id) {
			bad("%s id %q: want a numeric id", who, id)
		} else if first, dup := ids[id]; dup {
			bad("%s: id %q is also the id of %s", who, id, first)
		} else {
			ids[id] = who
		}
	}
	// Each user name and application id names a home folder, /Users/<name>: one path segment, and no two alike but
	// for letter case, which would be one folder on a disk that ignores case (macOS, Windows).
	homes := map[string]string{} // lower-cased name -> who holds it
	checkHome := func(who, name string) {
		if err := homeFolderName(name); err != nil {
			bad("%s: %q cannot name its home folder: %v", who, name, err)
		} else if first, dup := homes[strings.ToLower(name)]; dup {
			bad("%s: home folder /Users/%s would be the home folder of %s too (names differing only in letter case)",
				who, name, first)
		} else {
			homes[strings.ToLower(name)] = who
		}
	}
	users := map[string]bool{}
	signedIn := 0
	for _, u := range c.Users {
		checkID(fmt.Sprintf("user %q", u.UserName), u.ID)
		if !strings.Contains(u.UserName, "@") {
			bad("user %q: user_name must be an email", u.UserName)
		}
		if users[u.UserName] {
			bad("user %q is listed twice", u.UserName)
		} else {
			checkHome(fmt.Sprintf("user %q", u.UserName), u.UserName)
		}
		users[u.UserName] = true
		if u.SignedIn {
			signedIn++
		}
	}
	if signedIn != 1 {
		bad("want exactly one user with signed_in: true, found %d", signedIn)
	}
	sps := map[string]bool{}
	appIDs := map[string]bool{}
	for _, sp := range c.ServicePrincipals {
		checkID(fmt.Sprintf("service principal %q", sp.Name), sp.ID)
		// A token's subject is a user name or an application id, and can_use lists user names and service
		// principal names: neither may be both a user and a service principal.
		if users[sp.Name] {
			bad("service principal %q: name %q is also the user_name of user %q", sp.Name, sp.Name, sp.Name)
		}
		if users[sp.ApplicationID] {
			bad("service principal %q: application_id %q is also the user_name of user %q", sp.Name, sp.ApplicationID, sp.ApplicationID)
		}
		if sp.Name == "" || sps[sp.Name] {
			bad("service principal %q: names must be set and unique", sp.Name)
		}
		sps[sp.Name] = true
		if sp.ApplicationID == "" || appIDs[sp.ApplicationID] || sp.ApplicationID == CLIClientID {
			bad("service principal %q: application_id must be set and unique", sp.Name)
		} else if !users[sp.ApplicationID] {
			checkHome(fmt.Sprintf("service principal %q", sp.Name), sp.ApplicationID)
		}
		appIDs[sp.ApplicationID] = true
		if sp.Secret == "" && len(sp.FederationPolicies) == 0 {
			bad("service principal %q: secret must be set, unless it has federation_policies", sp.Name)
		}
	}
	c.validateFederation(bad)
	c.validateData(bad, users, sps)
	groups := map[string]bool{GroupUsers: true}
	for _, g := range c.Groups {
		groups[g.Name] = true
	}
	apps := map[string]bool{}
	for _, a := range c.Apps {
		if !appName.MatchString(a.Name) || apps[a.Name] {
			bad("app %q: names are unique, lower case letters, digits and dashes", a.Name)
		}
		apps[a.Name] = true
		if !sps[a.ServicePrincipal] {
			bad("app %q: service_principal %q is not in service_principals", a.Name, a.ServicePrincipal)
		}
		for _, s := range a.UserAPIScopes {
			if !scope.MatchString(s) {
				bad("app %q: user_api_scopes: %q is not a scope", a.Name, s)
			} else if !allowed.allows(s) {
				bad("app %q: user_api_scopes: %q is not among workspace.allowed_apps_user_api_scopes (%s)", a.Name, s,
					strings.Join(allowed.list, ", "))
			}
		}
		for field, list := range map[string]CanUse{"can_use": a.CanUse, "can_manage": a.CanManage} {
			for _, u := range list.Users {
				if !users[u] {
					bad("app %q: %s.users: %q is not in users", a.Name, field, u)
				}
			}
			for _, s := range list.ServicePrincipals {
				if !sps[s] {
					bad("app %q: %s.service_principals: %q is not in service_principals", a.Name, field, s)
				}
			}
			for _, g := range list.Groups {
				if !groups[g] {
					bad("app %q: %s.groups: %q is not %q or a group of the model's groups", a.Name, field, g, GroupUsers)
				}
			}
		}
		if a.Port < 0 || a.Port > 65535 {
			bad("app %q: port %d is out of range", a.Name, a.Port)
		}
	}
	for _, a := range c.Apps {
		keys := map[string]bool{}
		for _, r := range a.Resources {
			if r.Name == "" || keys[r.Name] {
				bad("app %q: resources: names must be set and unique, got %q", a.Name, r.Name)
			}
			keys[r.Name] = true
			if err := c.checkResource(r, apps); err != nil {
				bad("app %q: resource %q: %v", a.Name, r.Name, err)
			}
		}
	}
	if len(c.Apps) == 0 {
		bad("want at least one app")
	}
	return errors.Join(errs...)
}

func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%q: want 127.0.0.1:PORT", hostport)
	}
	if host != "127.0.0.1" {
		return fmt.Errorf("%q: the emulator only listens on 127.0.0.1 (the SDK accepts http:// hosts only there)", hostport)
	}
	return nil
}

// App returns the named app.
func (c Config) App(name string) (App, bool) {
	i := slices.IndexFunc(c.Apps, func(a App) bool { return a.Name == name })
	if i < 0 {
		return App{}, false
	}
	return c.Apps[i], true
}

// ServicePrincipal returns the named service principal.
func (c Config) ServicePrincipal(name string) (ServicePrincipal, bool) {
	i := slices.IndexFunc(c.ServicePrincipals, func(sp ServicePrincipal) bool { return sp.Name == name })
	if i < 0 {
		return ServicePrincipal{}, false
	}
	return c.ServicePrincipals[i], true
}
