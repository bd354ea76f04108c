package workspace

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultConfig(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "1234567890123456", cfg.Workspace.ID)
	assert.Len(t, cfg.Users, 3)
	assert.Len(t, cfg.ServicePrincipals, 5)
	app, ok := cfg.App("api-app")
	require.True(t, ok)
	assert.Equal(t, []string{"sql", "file.files", "dashboards.genie"}, app.UserAPIScopes)
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	minimalJSON := `{"workspace":{"id":"42"},"users":[{"id":"1","user_name":"a@b.c","signed_in":true}],
		"service_principals":[{"id":"2","name":"app-sp","application_id":"x","secret":"s"}],
		"apps":[{"name":"my-app","service_principal":"app-sp","can_use":{"users":["a@b.c"]}}]}`

	cfg, err := LoadConfig(write("c.json", minimalJSON))
	require.NoError(t, err)
	assert.Equal(t, "42", cfg.Workspace.ID)

	cfg, err = LoadConfig(write("c.conf", minimalJSON))
	require.NoError(t, err, "JSON is recognised by content too")
	assert.Equal(t, "my-app", cfg.Apps[0].Name)

	_, err = LoadConfig(write("c.yaml", string(defaultYAML)))
	require.NoError(t, err)

	tests := []struct{ name, content, mentions string }{
		{"unknown field", `{"workspace":{"id":"1","colour":"red"}}`, "colour"},
		{"not yaml", "workspace: [", "invalid YAML"},
		{"bad references", `
workspace: {id: "1"}
users: [{id: "1", user_name: a@b.c}]
service_principals: []
apps: [{name: My_App, service_principal: ghost, can_use: {users: [z@b.c], groups: [admins]}}]`,
			"exactly one user with signed_in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(write(tt.name+".yaml", tt.content))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.mentions)
		})
	}
	_, err = LoadConfig(filepath.Join(dir, "missing.yaml"))
	assert.Error(t, err)
}

// A service principal and a user must not share an id or a name: tokens name their subject by user name or
// application id, and the proxy forwards ids, so a collision would make one principal speak for the other.
func TestValidateRefusesServicePrincipalsCollidingWithUsers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		sp       ServicePrincipal
		mentions []string
	}{
		{"same id", ServicePrincipal{ID: "1001", Name: "svc", ApplicationID: "app-svc", Secret: "s"},
			[]string{`service principal "svc"`, `user "dev@example.com"`, `"1001"`}},
		{"name is a user name", ServicePrincipal{ID: "2999", Name: "dev@example.com", ApplicationID: "app-svc", Secret: "s"},
			[]string{`service principal "dev@example.com"`, `user "dev@example.com"`, "name"}},
		{"application id is a user name", ServicePrincipal{ID: "2999", Name: "svc", ApplicationID: "outsider@example.com", Secret: "s"},
			[]string{`service principal "svc"`, `user "outsider@example.com"`, "application_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ServicePrincipals = append(cfg.ServicePrincipals, tt.sp)
			err := cfg.Validate()
			require.Error(t, err)
			for _, m := range tt.mentions {
				assert.Contains(t, err.Error(), m)
			}
		})
	}
}

// Every user name and application id names a home folder, /Users/<name>: it must be one plain path segment, and no two
// may differ only in letter case, which a disk that ignores case (macOS, Windows) would store as one folder.
func TestValidateRefusesNamesThatCannotBeHomeFolders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		edit     func(*Config)
		mentions []string
	}{
		{"a user name that differs only in case", func(c *Config) {
			c.Users = append(c.Users, User{ID: "1999", UserName: "Dev@Example.com"})
		}, []string{`user "Dev@Example.com"`, `user "dev@example.com"`, "letter case"}},
		{"an application id that differs from a user name only in case", func(c *Config) {
			c.ServicePrincipals = append(c.ServicePrincipals,
				ServicePrincipal{ID: "2999", Name: "svc", ApplicationID: "DEV@example.com", Secret: "s"})
		}, []string{`service principal "svc"`, `user "dev@example.com"`}},
		{"an application id with a slash", func(c *Config) {
			c.ServicePrincipals = append(c.ServicePrincipals,
				ServicePrincipal{ID: "2999", Name: "svc", ApplicationID: "x/../dev@example.com", Secret: "s"})
		}, []string{`service principal "svc"`, "home folder"}},
		{"a user name with a dot segment", func(c *Config) {
			c.Users = append(c.Users, User{ID: "1999", UserName: "../a@b.c"})
		}, []string{`user "../a@b.c"`, "home folder"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			require.Error(t, err)
			for _, m := range tt.mentions {
				assert.Contains(t, err.Error(), m)
			}
		})
	}
}
