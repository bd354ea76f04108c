package workspace

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/service/workspace"
	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// PathSecrets is the Secrets API's prefix.
const PathSecrets = "/api/2.0/secrets"

// maxSecretBytes is the largest secret value: 128 KiB, as in Databricks.
const maxSecretBytes = 128 << 10

// secretScopes are the workspace's Databricks-backed secret scopes. Each scope has an ACL of READ, WRITE and MANAGE
// (each including the weaker ones); its creator holds MANAGE, and workspace admins hold MANAGE on every scope.
// Reading a value takes READ, writing WRITE, changing the ACL MANAGE; anyone may list the scopes' names.
type secretScopes struct {
	dir     *directory
	changed func() // a scope changed: the workspace keeps it (persist.go)

	mu     sync.Mutex
	scopes map[string]*secretScope
}

type secretScope struct {
	name    string
	secrets map[string]storedSecret
	acl     map[string]string // principal (user name, group, application id) -> READ, WRITE or MANAGE
}

type storedSecret struct {
	value   []byte
	updated int64 // ms
}

func newSecretScopes(cfg Config, dir *directory, changed func()) *secretScopes {
	ss := &secretScopes{dir: dir, scopes: map[string]*secretScope{}, changed: changed}
	now := time.Now().UnixMilli()
	for _, m := range cfg.SecretScopes {
		s := &secretScope{name: m.Name, secrets: map[string]storedSecret{},
			acl: map[string]string{dir.signedIn.UserName: "MANAGE"}}
		for k, v := range m.Secrets {
			s.secrets[k] = storedSecret{value: []byte(v), updated: now}
		}
		for _, a := range m.ACLs {
			name := a.Principal
			if sp, ok := cfg.ServicePrincipal(name); ok {
				name = sp.ApplicationID
			}
			s.acl[name] = a.Permission
		}
		ss.scopes[m.Name] = s
	}
	return ss
}

// permission is the strongest permission p holds on the scope, or "".
func (s *secretScope) permission(p principal) string {
	if p.isAdmin() {
		return "MANAGE"
	}
	best := -1
	for who, perm := range s.acl {
		if names(p, who) {
			best = max(best, slices.Index(secretPermissions, perm))
		}
	}
	if best < 0 {
		return ""
	}
	return secretPermissions[best]
}

func (s *secretScope) allows(p principal, perm string) bool {
	return slices.Index(secretPermissions, s.permission(p)) >= slices.Index(secretPermissions, perm)
}

// value returns a secret's value for the platform, which resolves an app's secret resource as the app's service
// principal when it deploys the app.
func (ss *secretScopes) value(scope, key string) ([]byte, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.scopes[scope]
	if !ok {
		return nil, false
	}
	v, ok := s.secrets[key]
	return v.value, ok
}

// grant gives a principal at least perm on a scope, as adding a secret resource to an app does.
func (ss *secretScopes) grant(scope, who, perm string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s, ok := ss.scopes[scope]; ok && slices.Index(secretPermissions, s.acl[who]) < slices.Index(secretPermissions, perm) {
		s.acl[who] = perm
		ss.changed()
	}
}

// routes is the Secrets API.
func (ss *secretScopes) routes(r chi.Router) {
	r.Get(PathSecrets+"/scopes/list", ss.handleListScopes())
	r.Post(PathSecrets+"/scopes/create", ss.handleCreateScope())
	r.Post(PathSecrets+"/scopes/delete", ss.withScope("MANAGE", ss.deleteScope))
	r.Post(PathSecrets+"/put", ss.withScope("WRITE", ss.putSecret))
	r.Post(PathSecrets+"/delete", ss.withScope("WRITE", ss.deleteSecret))
	r.Get(PathSecrets+"/list", ss.withScope("READ", ss.listSecrets))
	r.Get(PathSecrets+"/get", ss.withScope("READ", ss.getSecret))
	r.Post(PathSecrets+"/acls/put", ss.withScope("MANAGE", ss.putACL))
	r.Post(PathSecrets+"/acls/delete", ss.withScope("MANAGE", ss.deleteACL))
	r.Get(PathSecrets+"/acls/list", ss.withScope("MANAGE", ss.listACLs))
	r.Get(PathSecrets+"/acls/get", ss.withScope("MANAGE", ss.getACL))
}

// secretRequest is every Secrets API request's fields, from the query (GET) or the JSON body (POST).
type secretRequest struct {
	Scope       string `json:"scope"`
	Key         string `json:"key"`
	StringValue string `json:"string_value"`
	BytesValue  string `json:"bytes_value"`
	Principal   string `json:"principal"`
	Permission  string `json:"permission"`
}

// withScope reads the request, finds its scope and checks the caller holds perm on it, then calls handle under
// the lock.
func (ss *secretScopes) withScope(perm string, handle func(http.ResponseWriter, *secretScope, secretRequest)) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		var req secretRequest
		if r.Method == http.MethodGet {
			q := r.URL.Query()
			req = secretRequest{Scope: q.Get("scope"), Key: q.Get("key"), Principal: q.Get("principal")}
		} else if jerr := jsonhttp.DecodeAnyType(rw, r, 2*maxSecretBytes, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		p := authFrom(r.Context()).principal
		ss.mu.Lock()
		defer ss.mu.Unlock()
		s, ok := ss.scopes[req.Scope]
		if !ok {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
				Message: fmt.Sprintf("Scope %s does not exist!", req.Scope), Fix: "list the scopes: databricks secrets list-scopes"})
			return
		}
		if !s.allows(p, perm) {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
				Message: fmt.Sprintf("User %s does not have %s permission on scope %s", p.UserName, perm, s.name),
				Fix:     "a manager of the scope grants it: databricks secrets put-acl " + s.name + " <principal> " + perm})
			return
		}
		handle(rw, s, req)
	}
}

func (ss *secretScopes) handleListScopes() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		ss.mu.Lock()
		resp := workspace.ListScopesResponse{Scopes: []workspace.SecretScope{}}
		for _, name := range sortedKeys(ss.scopes) {
			resp.Scopes = append(resp.Scopes, workspace.SecretScope{Name: name, BackendType: workspace.ScopeBackendTypeDatabricks})
		}
		ss.mu.Unlock()
		jsonhttp.Write(rw, http.StatusOK, resp)
	}
}

func (ss *secretScopes) handleCreateScope() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		var req workspace.CreateScope
		if jerr := jsonhttp.DecodeAnyType(rw, r, maxAPIBody, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		if !secretName.MatchString(req.Scope) {
			jsonhttp.WriteError(rw, badParameter("Scope name %q is invalid: use up to 128 letters, digits, -, _, @ and .", req.Scope))
			return
		}
		if req.ScopeBackendType != "" && req.ScopeBackendType != workspace.ScopeBackendTypeDatabricks {
			jsonhttp.WriteError(rw, badParameter("scope_backend_type %s is not emulated: use DATABRICKS", req.ScopeBackendType))
			return
		}
		p := authFrom(r.Context()).principal
		s := &secretScope{name: req.Scope, secrets: map[string]storedSecret{}, acl: map[string]string{p.UserName: "MANAGE"}}
		if req.InitialManagePrincipal == GroupUsers {
			s.acl[GroupUsers] = "MANAGE"
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if _, taken := ss.scopes[req.Scope]; taken {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusConflict, Code: CodeAlreadyExists,
				Message: fmt.Sprintf("Scope %s already exists!", req.Scope)})
			return
		}
		ss.scopes[req.Scope] = s
		ss.changed()
		jsonhttp.Write(rw, http.StatusOK, struct{}{})
	}
}

func (ss *secretScopes) deleteScope(rw http.ResponseWriter, s *secretScope, _ secretRequest) {
	delete(ss.scopes, s.name)
	ss.changed()
	jsonhttp.Write(rw, http.StatusOK, struct{}{})
}

func (ss *secretScopes) putSecret(rw http.ResponseWriter, s *secretScope, req secretRequest) {
	value := []byte(req.StringValue)
	if req.BytesValue != "" {
		b, err := base64.StdEncoding.DecodeString(req.BytesValue)
		if err != nil || req.StringValue != "" {
			jsonhttp.WriteError(rw, badParameter("send either string_value or bytes_value (base64)"))
			return
		}
		value = b
	}
	switch {
	case !secretName.MatchString(req.Key):
		jsonhttp.WriteError(rw, badParameter("Key %q is invalid: use up to 128 letters, digits, -, _, @ and .", req.Key))
	case len(value) > maxSecretBytes:
		jsonhttp.WriteError(rw, badParameter("the value is larger than %d bytes", maxSecretBytes))
	default:
		s.secrets[req.Key] = storedSecret{value: value, updated: time.Now().UnixMilli()}
		ss.changed()
		jsonhttp.Write(rw, http.StatusOK, struct{}{})
	}
}

func (ss *secretScopes) deleteSecret(rw http.ResponseWriter, s *secretScope, req secretRequest) {
	if _, ok := s.secrets[req.Key]; !ok {
		jsonhttp.WriteError(rw, secretNotFound(s, req.Key))
		return
	}
	delete(s.secrets, req.Key)
	ss.changed()
	jsonhttp.Write(rw, http.StatusOK, struct{}{})
}

func secretNotFound(s *secretScope, key string) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
		Message: fmt.Sprintf("Secret %s does not exist in scope %s!", key, s.name)}
}

func (ss *secretScopes) listSecrets(rw http.ResponseWriter, s *secretScope, _ secretRequest) {
	resp := workspace.ListSecretsResponse{Secrets: []workspace.SecretMetadata{}}
	for _, k := range sortedKeys(s.secrets) {
		resp.Secrets = append(resp.Secrets, workspace.SecretMetadata{Key: k, LastUpdatedTimestamp: s.secrets[k].updated})
	}
	jsonhttp.Write(rw, http.StatusOK, resp)
}

// getSecret answers the value base64-encoded, as the Secrets API does.
func (ss *secretScopes) getSecret(rw http.ResponseWriter, s *secretScope, req secretRequest) {
	v, ok := s.secrets[req.Key]
	if !ok {
		jsonhttp.WriteError(rw, secretNotFound(s, req.Key))
		return
	}
	jsonhttp.Write(rw, http.StatusOK, workspace.GetSecretResponse{Key: req.Key, Value: base64.StdEncoding.EncodeToString(v.value)})
}

func (ss *secretScopes) putACL(rw http.ResponseWriter, s *secretScope, req secretRequest) {
	switch {
	case !slices.Contains(secretPermissions, req.Permission):
		jsonhttp.WriteError(rw, badParameter("permission must be READ, WRITE or MANAGE, not %q", req.Permission))
	case !ss.dir.principalExists(req.Principal):
		jsonhttp.WriteError(rw, principalNotFound(fmt.Sprintf("Principal %s does not exist in this workspace "+
			"(a user name, a group, or a service principal's application id)", req.Principal)))
	default:
		s.acl[req.Principal] = req.Permission
		ss.changed()
		jsonhttp.Write(rw, http.StatusOK, struct{}{})
	}
}

func (ss *secretScopes) deleteACL(rw http.ResponseWriter, s *secretScope, req secretRequest) {
	if _, ok := s.acl[req.Principal]; !ok {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
			Message: fmt.Sprintf("No ACL for principal %s in scope %s", req.Principal, s.name)})
		return
	}
	delete(s.acl, req.Principal)
	ss.changed()
	jsonhttp.Write(rw, http.StatusOK, struct{}{})
}

func (ss *secretScopes) listACLs(rw http.ResponseWriter, s *secretScope, _ secretRequest) {
	resp := workspace.ListAclsResponse{Items: []workspace.AclItem{}}
	for _, who := range sortedKeys(s.acl) {
		resp.Items = append(resp.Items, workspace.AclItem{Principal: who, Permission: workspace.AclPermission(s.acl[who])})
	}
	jsonhttp.Write(rw, http.StatusOK, resp)
}

func (ss *secretScopes) getACL(rw http.ResponseWriter, s *secretScope, req secretRequest) {
	perm, ok := s.acl[req.Principal]
	if !ok {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
			Message: fmt.Sprintf("No ACL for principal %s in scope %s", req.Principal, s.name)})
		return
	}
	jsonhttp.Write(rw, http.StatusOK, workspace.AclItem{Principal: req.Principal, Permission: workspace.AclPermission(perm)})
}
