package workspace

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/databricks/databricks-sdk-go/listing"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSCIMListsWithTheSDK: users, service principals and groups, listed and read with the SDK's clients, as `databricks
// users list`, `service-principals list` and `groups list` call them; the SDK follows startIndex page by page.
func TestSCIMListsWithTheSDK(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	c := sdkClient(t, w, m2mToken(t, w, "external-service"))
	ctx := t.Context()

	users, err := c.UsersV2.ListAll(ctx, iam.ListUsersRequest{})
	require.NoError(t, err)
	require.Len(t, users, len(w.Config().Users))
	assert.Equal(t, "dev@example.com", users[0].UserName)
	assert.Equal(t, "dev@example.com", users[0].Emails[0].Value)
	assert.True(t, users[0].Active)

	sps, err := listing.ToSlice(ctx, c.ServicePrincipalsV2.List(ctx, iam.ListServicePrincipalsRequest{Count: 2}))
	require.NoError(t, err, "two a page: the SDK asks for the next pages until one is empty")
	require.Len(t, sps, 5)
	state := w.State().ServicePrincipals
	for _, sp := range sps {
		assert.Equal(t, state[sp.DisplayName].ClientID, sp.ApplicationId, sp.DisplayName)
		assert.Equal(t, state[sp.DisplayName].ID, sp.Id, sp.DisplayName)
	}

	found, err := c.ServicePrincipalsV2.ListAll(ctx, iam.ListServicePrincipalsRequest{Filter: `displayName eq "caller-app"`})
	require.NoError(t, err)
	require.Len(t, found, 1)
	assert.Equal(t, state["caller-app"].ClientID, found[0].ApplicationId, "how a workshop leader finds an app's client id")

	sp, err := c.ServicePrincipalsV2.Get(ctx, iam.GetServicePrincipalRequest{Id: state["api-app"].ID})
	require.NoError(t, err)
	assert.Equal(t, "api-app", sp.DisplayName)
	_, err = c.ServicePrincipalsV2.Get(ctx, iam.GetServicePrincipalRequest{Id: "999999"})
	assert.Equal(t, http.StatusNotFound, apiError(t, err).StatusCode)

	groups, err := c.GroupsV2.ListAll(ctx, iam.ListGroupsRequest{Filter: `displayName eq "users"`})
	require.NoError(t, err)
	require.Len(t, groups, 1)
	assert.Len(t, groups[0].Members, len(w.Config().Users)+len(w.Config().ServicePrincipals),
		"users holds every user and service principal")
	group, err := c.GroupsV2.Get(ctx, iam.GetGroupRequest{Id: groups[0].Id})
	require.NoError(t, err)
	assert.Equal(t, "users", group.DisplayName)
	admins, err := c.GroupsV2.ListAll(ctx, iam.ListGroupsRequest{Filter: `displayName eq "admins"`})
	require.NoError(t, err)
	require.Len(t, admins, 1)
	require.Len(t, admins[0].Members, 1)
	assert.Equal(t, "Dev Eloper", admins[0].Members[0].Display, "the signed-in user is the workspace admin")
	var userGroups []string
	for _, g := range users[0].Groups {
		userGroups = append(userGroups, g.Display)
	}
	assert.ElementsMatch(t, []string{"users", "admins", "sales", "sales-leads"}, userGroups, "the model's groups too")
}

func TestSCIMFilterSortAndPages(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	token := m2mToken(t, w, "external-service")
	list := func(path string, q url.Values) (int, map[string]any) {
		t.Helper()
		resp, body := call(t, http.MethodGet, w.URL()+path+"?"+q.Encode(), bearer(token))
		var out map[string]any
		require.NoError(t, json.Unmarshal(body, &out), string(body))
		return resp.StatusCode, out
	}
	names := func(out map[string]any, attr string) []string {
		var got []string
		for _, r := range out["Resources"].([]any) {
			got = append(got, r.(map[string]any)[attr].(string))
		}
		return got
	}
	tests := []struct {
		filter string
		want   []string
	}{
		{`displayName eq "API-APP"`, []string{"api-app"}},
		{`displayName sw "caller" or displayName ew "-service"`, []string{"caller-app", "external-service",
			"federated-service", "no-access-service"}},
		{`displayName co "service" and not (displayName sw "no")`, []string{"external-service", "federated-service"}},
		{`displayName ne "api-app" and (applicationId co "1003" or applicationId co "1004")`, []string{"caller-app"}},
		{`applicationId pr and displayName gt "f"`, []string{"federated-service", "no-access-service"}},
	}
	for _, tt := range tests {
		status, out := list(PathSCIMServicePrincipals, url.Values{"filter": {tt.filter}, "sortBy": {"displayName"}})
		require.Equal(t, http.StatusOK, status, tt.filter)
		assert.Equal(t, tt.want, names(out, "displayName"), tt.filter)
	}
	for _, bad := range []string{`displayName`, `displayName eq`, `displayName like "x"`, `(displayName eq "x"`,
		`displayName eq "x" and`, `displayName eq "unclosed`} {
		status, out := list(PathSCIMServicePrincipals, url.Values{"filter": {bad}})
		assert.Equal(t, http.StatusBadRequest, status, bad)
		assert.Contains(t, out["message"], "filter", bad)
	}

	_, out := list(PathSCIMServicePrincipals, url.Values{"sortBy": {"displayName"}, "sortOrder": {"descending"},
		"startIndex": {"2"}, "count": {"2"}, "attributes": {"displayName"}})
	assert.Equal(t, []string{"federated-service", "external-service"}, names(out, "displayName"))
	assert.EqualValues(t, 5, out["totalResults"])
	assert.EqualValues(t, 2, out["startIndex"])
	assert.EqualValues(t, 2, out["itemsPerPage"])
	for _, r := range out["Resources"].([]any) {
		assert.NotContains(t, r, "applicationId", "attributes names what to return (id and schemas always)")
		assert.Contains(t, r, "id")
	}
	_, out = list(PathSCIMUsers, url.Values{"excludedAttributes": {"emails,groups"}})
	assert.NotContains(t, out["Resources"].([]any)[0], "emails")
	assert.Contains(t, out["Resources"].([]any)[0], "userName")

	status, _ := list(PathSCIMUsers, url.Values{"count": {"-1"}})
	assert.Equal(t, http.StatusBadRequest, status)
	resp, _ := call(t, http.MethodGet, w.URL()+PathSCIMUsers, bearer(scopedToken(t, w, "external-service", "sql")))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "the directory needs access-management or all-apis")
	resp, _ = call(t, http.MethodGet, w.URL()+PathSCIMUsers, bearer(scopedToken(t, w, "external-service", ScopeAccessManagement)))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = call(t, http.MethodGet, w.URL()+PathSCIMUsers, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// FuzzSCIMFilter: any filter parses to a matcher or an error, never a panic, and a matcher runs on any attributes.
func FuzzSCIMFilter(f *testing.F) {
	for _, seed := range []string{`userName eq "dev@example.com"`, `not (a pr) or (b co "x" and c ne null)`,
		`((((`, `a eq "\u00e9\"`, `displayName gt "f" and applicationId pr`} {
		f.Add(seed)
	}
	attrs := map[string][]string{"username": {"dev@example.com"}, "a": {"1", "2"}, "displayname": {"x"}}
	f.Fuzz(func(t *testing.T, filter string) {
		if m, err := parseSCIMFilter(filter); err == nil {
			m(attrs)
		}
	})
}
