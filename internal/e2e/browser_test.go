package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/emulator/browser"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// browserClient is a person's browser for these tests: a cookie jar, redirects followed, and every request it
// sends recorded as "METHOD path".
func browserClient(t *testing.T) (*http.Client, func() []string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	rec := &recordingTransport{next: &http.Transport{Proxy: nil}}
	return &http.Client{Jar: jar, Transport: rec, Timeout: testkit.Patience}, rec.requests
}

type recordingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen = append(r.seen, req.Method+" "+req.URL.Path)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func (r *recordingTransport) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// getBody sends a GET with the browser and returns the response with its body read.
func getBody(t *testing.T, client *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// A person opens the app in a browser under the emulator: the proxy sends them to the workspace's login page, they
// pick dev@example.com, allow the app's scopes, and land on the app's page; the page's call to /api/whoami, with
// the same session, says who the app saw.
func TestBrowserSignInToTheApp(t *testing.T) {
	testkit.CleanEnv(t)
	ws, _ := emulated.WithApp(t, workspace.Options{})
	appURL := ws.AppURL("api-app")
	client, requests := browserClient(t)

	resp, err := browser.SignIn(t.Context(), client, appURL+"/", "dev@example.com")
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(page))
	assert.Equal(t, appURL+"/", resp.Request.URL.String())
	pageHTML, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "app", "page.html")) // what the app embeds and serves
	require.NoError(t, err)
	assert.Equal(t, string(pageHTML), string(page), "the app's page")
	assert.Equal(t, []string{
		"GET /",                             // no session: to the workspace's login page
		"GET " + workspace.PathLogin,        // the model's users
		"POST " + workspace.PathLogin,       // dev picked: the consent page for api-app's scopes
		"POST " + workspace.PathConsent,     // allowed: back to the app with a one-time code
		"GET " + workspace.PathAuthCallback, // the proxy sets the session cookie
		"GET /",                             // the page
	}, requests())

	resp, body := getBody(t, client, appURL+"/api/whoami")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var who identity.WhoAmI
	require.NoError(t, json.Unmarshal([]byte(body), &who))
	assert.Equal(t, "1001@1234567890123456", who.User)
	assert.Equal(t, identity.KindUser, who.Kind)
	assert.Equal(t, "dev@example.com", who.PreferredUsername)
	assert.NotEmpty(t, who.RequestID)
	require.NotNil(t, who.AccessTokenClaims)
	assert.Equal(t, []string{"sql", "file.files", "dashboards.genie"}, who.AccessTokenClaims.Scopes)

	// The forwarded token works on the user's behalf, as a bearer caller's does: the Genie spaces dev may use.
	resp, body = getBody(t, client, appURL+"/api/genie/spaces")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Contains(t, body, `"title":"Sales orders"`)
}

// The proxy refuses a signed-in user without CAN USE: a page for the browser, JSON for the page's /api/ calls.
func TestBrowserWithoutCanUse(t *testing.T) {
	testkit.CleanEnv(t)
	ws, _ := emulated.WithApp(t, workspace.Options{})
	appURL := ws.AppURL("api-app")
	client, _ := browserClient(t)

	resp, err := browser.SignIn(t.Context(), client, appURL+"/", "outsider@example.com")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"))
	assert.Contains(t, string(body), "outsider@example.com does not have CAN USE permission on app api-app")

	resp, apiBody := getBody(t, client, appURL+"/api/whoami")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	var e jsonhttp.Error
	require.NoError(t, json.Unmarshal([]byte(apiBody), &e), apiBody)
	assert.Equal(t, jsonhttp.CodePermissionDenied, e.Code)
}
