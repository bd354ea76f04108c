package browser_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/browser"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

func newClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, Transport: &http.Transport{Proxy: nil}}
}

// SignIn walks the emulator's login and consent pages to the app's page, and leaves a page that only looks like
// them alone: an HTML page of another host with a form is the app's business, returned whole.
func TestSignIn(t *testing.T) {
	t.Parallel()
	ws, _ := emulated.Start(t, workspace.Options{})
	elsewhere := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(rw, `<form method="post"><button name="go" value="1">Go</button></form>`)
	}))
	t.Cleanup(elsewhere.Close)
	app := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/away" {
			http.Redirect(rw, r, elsewhere.URL, http.StatusFound)
			return
		}
		_, _ = io.WriteString(rw, "hello "+r.Header.Get("X-Forwarded-Email"))
	}))
	t.Cleanup(app.Close)
	require.NoError(t, ws.SetUpstream("api-app", app.URL))

	client := newClient(t)
	resp, err := browser.SignIn(t.Context(), client, ws.AppURL("api-app")+"/", "dev@example.com")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "hello dev@example.com", string(body), "signed in, consent given, back on the app's page")

	resp, err = browser.SignIn(t.Context(), client, ws.AppURL("api-app")+"/away", "dev@example.com")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, elsewhere.URL, resp.Request.URL.String())
	assert.Contains(t, string(body), `<button name="go"`, "another host's form is not the emulator's: nothing submitted, the body kept")

	_, err = browser.SignIn(t.Context(), newClient(t), ws.AppURL("api-app")+"/", "nobody@example.com")
	assert.ErrorContains(t, err, `the login page lists no user "nobody@example.com"`)

	_, err = browser.SignIn(t.Context(), &http.Client{}, ws.AppURL("api-app")+"/", "dev@example.com")
	assert.ErrorContains(t, err, "needs a cookie jar")
}

// Headless reports a login the workspace refuses at its authorize endpoint, where no redirect would ever come.
func TestHeadlessReportsARefusedLogin(t *testing.T) {
	t.Parallel()
	ws, _ := emulated.Start(t, workspace.Options{})
	ctx, cancel := context.WithCancelCause(t.Context())
	open := browser.Headless(cancel)
	q := url.Values{"client_id": {"no-such-client"}, "response_type": {"code"}, "redirect_uri": {"http://localhost:8020"},
		"code_challenge": {"x"}, "code_challenge_method": {"S256"}, "state": {"s"}}
	require.NoError(t, open(ws.URL()+workspace.PathAuthorize+"?"+q.Encode()))
	select {
	case <-ctx.Done():
	case <-time.After(testkit.Patience):
		t.Fatal("the refused login was never reported")
	}
	err := context.Cause(ctx)
	assert.ErrorContains(t, err, "the workspace refused the login")
	assert.False(t, errors.Is(err, context.Canceled))

	assert.ErrorContains(t, open("http://[::1"), "the authorize URL")
}

// A page of another host that is not a sign-in page comes back whole, however large: SignIn reads only its start to
// tell.
func TestSignInReturnsALargePageWhole(t *testing.T) {
	t.Parallel()
	page := "<html><body><form><button name=go>Go</button></form>" + strings.Repeat("x", 2<<20) + "</body></html>"
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(rw, page)
	}))
	t.Cleanup(other.Close)
	app := httptest.NewServer(http.RedirectHandler(other.URL+"/home", http.StatusFound))
	t.Cleanup(app.Close)
	resp, err := browser.SignIn(t.Context(), newClient(t), app.URL+"/", "dev@example.com")
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, len(page), len(got))
	assert.Equal(t, page, string(got))
}
