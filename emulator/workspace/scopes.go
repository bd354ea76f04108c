package workspace

import (
	"fmt"
	"slices"
	"strings"
)

// platformScopes are the OAuth scopes the emulated workspace knows, besides every scope an app of the model lists in
// user_api_scopes. It is the one list: authorize and the token endpoint refuse any other scope with invalid_scope,
// as a workspace does, so a misspelt scope fails at login rather than later as a 403. The first five are OAuth's
// own (all-apis stands for every API scope, offline_access asks for a refresh token); the rest are the API scopes
// Databricks names for user authorization of apps and for the workspace REST APIs.
var platformScopes = []string{
	ScopeAllAPIs, ScopeOfflineAccess, "openid", "profile", "email",
	"sql", ScopeApps, ScopeWorkspace, ScopeAccessManagement, ScopeCurrentUser, "iam.access-control:read", "file.files", "dashboards.genie",
	"serving.serving-endpoints", "vectorsearch.vector-search-indexes",
	"catalog.connections", "catalog.catalogs:read", "catalog.schemas:read", "catalog.tables:read",
}

// scopeProblem describes the first requested scope that is malformed or unknown, or returns "" when all are known.
func (w *Workspace) scopeProblem(scopes []string) string {
	for _, s := range scopes {
		if !scope.MatchString(s) {
			return "scope must be a space-separated list of scopes, such as \"offline_access all-apis\""
		}
		if !w.knownScope(s) {
			return fmt.Sprintf("unknown scope %q: this workspace knows %s and the scopes of its apps' user_api_scopes",
				truncate(s, 100), strings.Join(platformScopes, ", "))
		}
	}
	return ""
}

// knownScope reports whether s is a platform scope or one an app of the workspace asks for now (its
// user_api_scopes, as the Apps API last set them).
func (w *Workspace) knownScope(s string) bool {
	if slices.Contains(platformScopes, s) {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, rec := range w.apps {
		if slices.Contains(rec.settings().userAPIScopes, s) {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
