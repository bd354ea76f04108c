package workspace

import (
	"fmt"
	"slices"
	"strings"
)

// AppUserScopes are the API scopes the platform offers apps for user authorization (user_api_scopes), and the
// default of the workspace setting that allows them (DefaultConfig, settings.go). docs/platform.md says where each
// comes from: the documentation names sql, file.files and dashboards.genie; apps on real workspaces use the others
// (files.files among them, so the emulator takes both spellings). Not among them: all-apis, offline_access, and the
// scopes of the APIs that manage the workspace itself (apps, workspace), which would let an app act on the user's
// files and other apps.
var AppUserScopes = []string{
	ScopeSQL, "sql.alerts", "sql.alerts-legacy", "sql.dashboards", "sql.data-sources", "sql.dbsql-permissions",
	"sql.queries", "sql.queries-legacy", "sql.query-history", "sql.statement-execution", "sql.warehouses",
	ScopeFiles, "files.files", ScopeGenie,
	"serving.serving-endpoints", "serving.serving-endpoints-data-plane",
	"vectorsearch.vector-search-endpoints", "vectorsearch.vector-search-indexes",
	"catalog.connections", "catalog.catalogs:read", "catalog.schemas:read", "catalog.tables:read",
	ScopeCurrentUser, "iam.access-control:read",
}

// platformScopes are the OAuth scopes the emulated workspace knows, besides every scope an app of the model lists in
// user_api_scopes. It is the one list: authorize and the token endpoint refuse any other scope with invalid_scope,
// as a workspace does, so a misspelt scope fails at login rather than later as a 403. The first five are OAuth's
// own (all-apis stands for every API scope, offline_access asks for a refresh token), then the scopes of the
// workspace REST APIs the emulator serves, then those apps may ask for.
var platformScopes = append([]string{
	ScopeAllAPIs, ScopeOfflineAccess, "openid", "profile", "email", ScopeApps, ScopeWorkspace,
	ScopeAccessManagement,
}, AppUserScopes...)

// scopeProblem describes the first requested scope that is malformed or unknown, or returns "" when all are known.
func (a *authServer) scopeProblem(scopes []string) string {
	for _, s := range scopes {
		if !scope.MatchString(s) {
			return "scope must be a space-separated list of scopes, such as \"offline_access all-apis\""
		}
		if !a.knownScope(s) {
			return fmt.Sprintf("unknown scope %q: this workspace knows %s and the scopes of its apps' user_api_scopes",
				truncate(s, 100), strings.Join(platformScopes, ", "))
		}
	}
	return ""
}

// knownScope reports whether s is a platform scope or one an app of the workspace asks for now (its
// user_api_scopes, as the Apps API last set them).
func (a *authServer) knownScope(s string) bool {
	return slices.Contains(platformScopes, s) || a.appScope(s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
