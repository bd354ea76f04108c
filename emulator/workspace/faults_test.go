package workspace

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/databricks/databricks-sdk-go/service/apps"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// injectFault injects f for the rest of the test.
func injectFault(t *testing.T, w *Workspace, f Fault) *InjectedFault {
	t.Helper()
	injected, err := w.InjectFault(f)
	require.NoError(t, err)
	t.Cleanup(injected.Clear)
	return injected
}

// errorBody decodes a Databricks error body.
func errorBody(t *testing.T, body []byte) jsonhttp.Error {
	t.Helper()
	var e jsonhttp.Error
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	return e
}

// A workspace fault answers the SDK's own calls as a failing workspace would: the status, its error_code, the message.
func TestWorkspaceFaultsWithTheSDK(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	c := sdkClient(t, w, m2mToken(t, w, "external-service"))
	me := func() error { _, err := c.CurrentUser.Me(t.Context(), iam.MeRequest{}); return err }
	getApp := func() error { _, err := c.Apps.Get(t.Context(), apps.GetAppRequest{Name: "api-app"}); return err }
	tests := []struct {
		name    string
		fault   Fault
		call    func() error
		status  int
		code    string
		message string
	}{
		{"SCIM Me 500", Fault{Path: PathSCIMMe, Status: 500}, me, 500, "INTERNAL_ERROR", "a fault injected in the emulator"},
		{"SCIM Me 401", Fault{Path: PathSCIMMe, Status: 401}, me, 401, "UNAUTHENTICATED", "Unauthorized"},
		{"SCIM Me 403 with a message", Fault{Path: PathSCIMMe, Status: 403, Message: "the workspace says no"}, me,
			403, "PERMISSION_DENIED", "the workspace says no"},
		{"an app 404", Fault{Method: "get", Path: PathApps + "/api-app", Status: 404}, getApp, 404,
			"RESOURCE_DOES_NOT_EXIST", "Not Found"},
		{"an app 409", Fault{Path: PathApps + "/api-app", Status: 409}, getApp, 409, "RESOURCE_CONFLICT", "Conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := injectFault(t, w, tt.fault)
			e := apiError(t, tt.call())
			assert.Equal(t, tt.status, e.StatusCode)
			assert.Equal(t, tt.code, e.ErrorCode)
			assert.Contains(t, e.Message, tt.message)
			assert.Equal(t, 1, f.Hits())
			f.Clear()
			assert.NoError(t, tt.call(), "cleared")
		})
	}
	err := getApp()
	require.NoError(t, err)
	injectFault(t, w, Fault{Path: PathApps + "/api-app", Status: 404})
	assert.ErrorIs(t, getApp(), apierr.ErrResourceDoesNotExist, "the SDK reads the error_code as for a real 404")
}

// Times bounds a fault, and the workspace still counts every request, faulted or not; Hits counts the faulted ones
// exactly, however many requests race for them.
func TestFaultTimesAndCounts(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	token := m2mToken(t, w, "external-service")
	c := sdkClient(t, w, token)
	f := injectFault(t, w, Fault{Path: PathSCIMMe, Status: 500, Times: 2})
	for range 2 {
		_, err := c.CurrentUser.Me(t.Context(), iam.MeRequest{})
		assert.Equal(t, 500, apiError(t, err).StatusCode)
	}
	_, err := c.CurrentUser.Me(t.Context(), iam.MeRequest{})
	require.NoError(t, err, "after Times, requests pass")
	assert.Equal(t, 2, f.Hits())
	assert.Equal(t, int64(3), w.RequestCount(PathSCIMMe))
	assert.Equal(t, []*InjectedFault{f}, w.Faults(), "a spent fault is listed until cleared")

	racing := injectFault(t, w, Fault{Path: PathSCIMMe, Status: 503, Times: 5})
	statuses := make(chan int, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, w.URL()+PathSCIMMe, nil)
			req.Header = bearer(token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	seen := map[int]int{}
	for s := range statuses {
		seen[s]++
	}
	assert.Equal(t, map[int]int{503: 5, 200: 15}, seen)
	assert.Equal(t, 5, racing.Hits())
}

// A fault for one principal leaves the others alone: the user's SCIM Me fails, with the user's own token and with the
// token the proxy forwarded for them, while the app's service principal's succeeds.
func TestFaultForOnePrincipal(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	user := pkceLogin(t, w, "offline_access all-apis")["access_token"].(string)
	forwarded := forwardedTo(t, w, user)
	appSP := m2mToken(t, w, "api-app")
	f := injectFault(t, w, Fault{Path: PathSCIMMe, Principal: "dev@example.com", Status: 401, Message: "token revoked"})

	for name, token := range map[string]string{"the user's token": user, "the forwarded token": forwarded} {
		_, err := sdkClient(t, w, token).CurrentUser.Me(t.Context(), iam.MeRequest{})
		e := apiError(t, err)
		assert.Equal(t, 401, e.StatusCode, name)
		assert.Equal(t, "token revoked", e.Message, name)
	}
	me, err := sdkClient(t, w, appSP).CurrentUser.Me(t.Context(), iam.MeRequest{})
	require.NoError(t, err, "the app's service principal is not the fault's")
	assert.Equal(t, w.State().ServicePrincipals["api-app"].ClientID, me.UserName)
	resp, body := call(t, http.MethodGet, w.URL()+PathSCIMMe, bearer("not-a-jwt"))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, errorBody(t, body).Message, "malformed", "an invalid token is nobody's: the workspace's own 401")
	assert.Equal(t, 2, f.Hits())

	byName := injectFault(t, w, Fault{Path: PathSCIMMe, Principal: "api-app", Status: 500})
	_, err = sdkClient(t, w, appSP).CurrentUser.Me(t.Context(), iam.MeRequest{})
	assert.Equal(t, 500, apiError(t, err).StatusCode, "a service principal by name")
	assert.Equal(t, 1, byName.Hits())
	for _, secret := range []string{user, forwarded, appSP} {
		assert.NotContains(t, logs.String(), secret)
	}
}

// A path ending in "/" is a prefix; any other is exact; Method narrows both.
func TestFaultPathsAndMethods(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	c := sdkClient(t, w, managerToken(t, w))
	injectFault(t, w, Fault{Path: PathApps + "/", Status: 500})
	_, err := c.Apps.Get(t.Context(), apps.GetAppRequest{Name: "api-app"})
	assert.Equal(t, 500, apiError(t, err).StatusCode, "under the prefix")
	_, err = c.Apps.ListAll(t.Context(), apps.ListAppsRequest{})
	assert.NoError(t, err, "/api/2.0/apps itself is not under /api/2.0/apps/")
	_, err = c.CurrentUser.Me(t.Context(), iam.MeRequest{})
	assert.NoError(t, err)
	w.ClearFaults()
	assert.Empty(t, w.Faults())

	post := injectFault(t, w, Fault{Method: http.MethodPost, Path: PathApps + "/api-app/", Status: 500})
	_, err = c.Apps.Get(t.Context(), apps.GetAppRequest{Name: "api-app"})
	assert.NoError(t, err, "a GET is not the POST the fault is for")
	_, err = c.Apps.Stop(t.Context(), apps.StopAppRequest{Name: "api-app"})
	assert.Equal(t, 500, apiError(t, err).StatusCode)
	assert.Equal(t, 1, post.Hits())

	every := injectFault(t, w, Fault{Path: "/", Status: 503, RetryAfter: "7", Times: 1})
	resp, _ := call(t, http.MethodGet, w.URL()+PathHostMetadata, nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "/ is every path")
	assert.Equal(t, "7", resp.Header.Get("Retry-After"))
	assert.Equal(t, 1, every.Hits())
}

// A delay holds a request, then passes it on or answers; a stall holds it until the client gives up or the workspace
// goes down; clearing a fault lets the requests it holds go on at once.
func TestFaultDelaysAndStalls(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	token := m2mToken(t, w, "external-service")
	me := func(ctx context.Context) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.URL()+PathSCIMMe, nil)
		req.Header = bearer(token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}

	t.Run("delay, then pass on", func(t *testing.T) {
		injectFault(t, w, Fault{Path: PathSCIMMe, Delay: 50 * time.Millisecond, Times: 1})
		start := time.Now()
		status, err := me(t.Context())
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, status)
		assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	})
	t.Run("delay, then answer", func(t *testing.T) {
		injectFault(t, w, Fault{Path: PathSCIMMe, Delay: 30 * time.Millisecond, Status: 500, Times: 1})
		start := time.Now()
		status, err := me(t.Context())
		require.NoError(t, err)
		assert.Equal(t, http.StatusInternalServerError, status)
		assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	})
	t.Run("a stall until the client gives up", func(t *testing.T) {
		f := injectFault(t, w, Fault{Path: PathSCIMMe, Stall: true})
		ctx, giveUp := context.WithCancel(t.Context())
		defer giveUp()
		done := make(chan error, 1)
		go func() { _, err := me(ctx); done <- err }()
		require.Eventually(t, func() bool { return f.Hits() == 1 }, patience, 5*time.Millisecond, "the request is held")
		giveUp()
		assert.ErrorIs(t, <-done, context.Canceled)
		assert.Equal(t, 1, f.Hits())
	})
	t.Run("clearing releases a stalled request", func(t *testing.T) {
		f := injectFault(t, w, Fault{Path: PathSCIMMe, Stall: true})
		done := make(chan int, 1)
		go func() { status, _ := me(t.Context()); done <- status }()
		require.Eventually(t, func() bool { return f.Hits() == 1 }, patience, 5*time.Millisecond)
		f.Clear()
		assert.Equal(t, http.StatusOK, <-done, "passed on as if the fault had not matched")
	})
	t.Run("a stall until the workspace goes down", func(t *testing.T) {
		f := injectFault(t, w, Fault{Path: PathSCIMMe, Stall: true})
		done := make(chan error, 1)
		go func() { _, err := me(t.Context()); done <- err }()
		require.Eventually(t, func() bool { return f.Hits() == 1 }, patience, 5*time.Millisecond)
		require.NoError(t, w.Down())
		assert.Error(t, <-done, "the open connection is closed, with no answer")
		require.NoError(t, w.Up())
	})
}

// Close ends the stalls at once: a stalled request gets no answer, and nothing waits for it.
func TestCloseEndsStalls(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	token := m2mToken(t, w, "external-service")
	stalls := []*InjectedFault{
		injectFault(t, w, Fault{Path: PathSCIMMe, Stall: true}),
		injectFault(t, w, Fault{App: "api-app", Path: "/api/slow", Stall: true}),
	}
	done := make(chan error, len(stalls))
	for _, target := range []string{w.URL() + PathSCIMMe, w.AppURL("api-app") + "/api/slow"} {
		go func() {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
			req.Header = bearer(token)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				err = errors.New("answered " + resp.Status)
			}
			done <- err
		}()
	}
	require.Eventually(t, func() bool { return stalls[0].Hits()+stalls[1].Hits() == 2 }, patience, 5*time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- w.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(patience):
		t.Fatal("Close waited for the stalled requests")
	}
	for range stalls {
		err := <-done
		assert.Error(t, err)
		assert.NotContains(t, err.Error(), "answered", "no answer, not even an empty one")
	}
}

// An app fault plays the app behind its proxy: every answer the caller's tests need, after the proxy's own checks.
// The proxy's request timeout is cut short only in a workspace of its own, whose app is never reached: an app that
// answers must never race a timeout of milliseconds.
func TestAppFaults(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app")
	token := m2mToken(t, w, "external-service")
	short, _ := startWorkspace(t, Options{RequestTimeout: 100 * time.Millisecond})
	require.NoError(t, short.SetUpstream("api-app", echoApp(t).URL))

	tests := []struct {
		name    string
		fault   Fault
		timeout bool // played on the workspace whose request timeout is 100 ms
		status  int
		code    string
	}{
		{"401", Fault{Status: 401, Message: "token rejected"}, false, 401, "UNAUTHENTICATED"},
		{"403", Fault{Status: 403}, false, 403, "PERMISSION_DENIED"},
		{"500", Fault{Status: 500}, false, 500, "INTERNAL_ERROR"},
		{"502", Fault{Status: 502}, false, 502, "BAD_GATEWAY"},
		{"a stall the proxy cuts at its request timeout", Fault{Stall: true}, true, 504, "GATEWAY_TIMEOUT"},
		{"a delay longer than the request timeout", Fault{Delay: time.Hour, Status: 500}, true, 504, "GATEWAY_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, api, token := w, api, token
			if tt.timeout {
				w, api, token = short, short.AppURL("api-app"), m2mToken(t, short, "external-service")
			}
			tt.fault.App, tt.fault.Path = "api-app", "/api/x"
			f := injectFault(t, w, tt.fault)
			resp, body := call(t, http.MethodGet, api+"/api/x", bearer(token))
			assert.Equal(t, tt.status, resp.StatusCode, string(body))
			assert.Equal(t, tt.code, errorBody(t, body).Code)
			assert.Equal(t, 1, f.Hits())
		})
	}

	t.Run("302", func(t *testing.T) {
		injectFault(t, w, Fault{App: "api-app", Path: "/api/redirect", Redirect: w.URL() + PathLogin + "?next=x"})
		resp, _ := call(t, http.MethodGet, api+"/api/redirect", bearer(token))
		assert.Equal(t, http.StatusFound, resp.StatusCode)
		assert.Equal(t, w.URL()+PathLogin+"?next=x", resp.Header.Get("Location"))
	})
	t.Run("503 twice with Retry-After, then the app", func(t *testing.T) {
		f := injectFault(t, w, Fault{App: "api-app", Path: "/api/flaky", Status: 503, RetryAfter: "0", Times: 2})
		for range 2 {
			resp, body := call(t, http.MethodGet, api+"/api/flaky", bearer(token))
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			assert.Equal(t, "0", resp.Header.Get("Retry-After"))
			assert.Equal(t, "TEMPORARILY_UNAVAILABLE", errorBody(t, body).Code)
		}
		resp, body := call(t, http.MethodGet, api+"/api/flaky", bearer(token))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		var seen echoed
		require.NoError(t, json.Unmarshal(body, &seen))
		assert.Equal(t, "/api/flaky", seen.Path, "the third reached the app")
		assert.Equal(t, 2, f.Hits())
	})
	t.Run("a reset on the first request", func(t *testing.T) {
		f := injectFault(t, w, Fault{App: "api-app", Path: "/api/reset", Reset: true, Times: 1})
		fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, api+"/api/reset", nil)
		req.Header = bearer(token)
		_, err := fresh.Do(req)
		assert.ErrorIs(t, err, syscall.ECONNRESET)
		resp, _ := call(t, http.MethodGet, api+"/api/reset", bearer(token))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, 1, f.Hits())
	})
	t.Run("a stall until the client gives up", func(t *testing.T) {
		slow, _ := startWorkspace(t, Options{})
		require.NoError(t, slow.SetUpstream("api-app", echoApp(t).URL))
		injectFault(t, slow, Fault{App: "api-app", Path: "/api/slow", Stall: true})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, slow.AppURL("api-app")+"/api/slow", nil)
		req.Header = bearer(m2mToken(t, slow, "external-service"))
		_, err := http.DefaultClient.Do(req)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
	for _, chunked := range []bool{false, true} {
		t.Run("a 1 GiB body, chunked "+map[bool]string{false: "no", true: "yes"}[chunked], func(t *testing.T) {
			injectFault(t, w, Fault{App: "api-app", Path: "/api/huge", BodyBytes: 1 << 30, Chunked: chunked})
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, api+"/api/huge", nil)
			req.Header = bearer(token)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
			if chunked {
				assert.Equal(t, int64(-1), resp.ContentLength)
				assert.Equal(t, []string{"chunked"}, resp.TransferEncoding)
			} else {
				assert.Equal(t, int64(1<<30), resp.ContentLength)
			}
			head := make([]byte, 1<<20) // the first MiB: the rest is never made
			_, err = io.ReadFull(resp.Body, head)
			require.NoError(t, err)
			assert.Equal(t, bytes.Repeat([]byte{'<'}, 1<<20), head)
		})
	}
	t.Run("a whole small body", func(t *testing.T) {
		injectFault(t, w, Fault{App: "api-app", Path: "/api/small", BodyBytes: 100_001, Chunked: true})
		resp, body := call(t, http.MethodGet, api+"/api/small", bearer(token))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Len(t, body, 100_001)
	})
}

// The proxy checks before an app fault plays, as it does before forwarding: its own 401 and 403 stay, and a fault
// for one principal leaves the others' answers to the app. An app fault is not the workspace's, nor another app's.
func TestAppFaultsComeAfterTheProxysChecks(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app")
	f := injectFault(t, w, Fault{App: "api-app", Path: "/api/", Status: 500})

	resp, body := call(t, http.MethodGet, api+"/api/whoami", nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the proxy's own 401: %s", body)
	resp, body = call(t, http.MethodGet, api+"/api/whoami", bearer(m2mToken(t, w, "no-access-service")))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, errorBody(t, body).Message, "CAN USE")
	resp, _ = call(t, http.MethodGet, api+"/", nil)
	assert.Equal(t, http.StatusFound, resp.StatusCode, "outside /api/: the login redirect, and / is not under /api/")
	assert.Equal(t, 0, f.Hits())
	resp, _ = call(t, http.MethodGet, api+"/api/whoami", bearer(m2mToken(t, w, "external-service")))
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Equal(t, 1, f.Hits())
	f.Clear()

	sp := injectFault(t, w, Fault{App: "api-app", Path: "/api/", Principal: "external-service", Status: 500})
	resp, _ = call(t, http.MethodGet, api+"/api/whoami", bearer(m2mToken(t, w, "external-service")))
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	resp, _ = call(t, http.MethodGet, api+"/api/whoami", bearer(managerToken(t, w)))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "another principal reaches the app")
	assert.Equal(t, 1, sp.Hits())
	resp, _ = call(t, http.MethodGet, w.URL()+PathSCIMMe, bearer(m2mToken(t, w, "external-service")))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "an app fault is not the workspace's")

	injectFault(t, w, Fault{Path: "/api/", Status: 500})
	resp, _ = call(t, http.MethodGet, api+"/api/whoami", bearer(managerToken(t, w)))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a workspace fault is not the app's")
}

// InjectFault refuses a fault it could not play as written, saying why.
func TestFaultValidation(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	tests := []struct {
		name     string
		fault    Fault
		mentions string
	}{
		{"an unknown app", Fault{App: "nope", Path: "/", Status: 500}, `no app "nope" in the workspace; its apps are api-app, caller-app`},
		{"an unknown principal", Fault{Path: "/", Principal: "nobody", Status: 500}, `no user or service principal "nobody"`},
		{"a path that is not one", Fault{Path: "api/x", Status: 500}, `path "api/x": want a path`},
		{"a path with a query", Fault{Path: "/api/x?y=1", Status: 500}, "want a path"},
		{"a method that is not one", Fault{Method: "GE T", Path: "/", Status: 500}, `method "GE T"`},
		{"a status out of range", Fault{Path: "/", Status: 700}, "status 700: want an error status, 400 to 599"},
		{"a 3xx without a redirect", Fault{Path: "/", Status: 302}, "a 3xx goes with a redirect"},
		{"a 200 without a body", Fault{Path: "/", Status: 200}, "a 2xx with body bytes"},
		{"a redirect with a 500", Fault{Path: "/", Redirect: "/x", Status: 500}, "status 500 with a redirect"},
		{"a body with a 404", Fault{Path: "/", BodyBytes: 10, Status: 404}, "status 404 with body bytes: want a 2xx"},
		{"negative times", Fault{Path: "/", Status: 500, Times: -1}, "times -1"},
		{"a negative delay", Fault{Path: "/", Delay: -time.Second}, "delay -1s"},
		{"a negative body", Fault{Path: "/", BodyBytes: -1}, "body bytes -1"},
		{"chunked without a body", Fault{Path: "/", Status: 500, Chunked: true}, "chunked goes with body bytes"},
		{"two answers", Fault{Path: "/", Stall: true, Reset: true}, "one answer, not a stall and a reset"},
		{"a stall with a status", Fault{Path: "/", Stall: true, Status: 500}, "not an error status and a stall"},
		{"nothing to do", Fault{Path: "/"}, "the fault does nothing"},
		{"a message without an error", Fault{Path: "/", Redirect: "/x", Message: "m"}, "a message goes with an error status"},
		{"retry after with a reset", Fault{Path: "/", Reset: true, RetryAfter: "1"}, "retry after goes with an answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := w.InjectFault(tt.fault)
			require.Error(t, err)
			assert.Nil(t, f)
			assert.Contains(t, err.Error(), tt.mentions)
		})
	}
	assert.Empty(t, w.Faults())
	f, err := w.InjectFault(Fault{Method: "post", Path: "/api/", Status: 500})
	require.NoError(t, err)
	assert.Equal(t, http.MethodPost, f.Fault().Method)
	assert.Equal(t, "1", f.ID())
}

// A held POST ends with its client, and with Down: its handler never runs later for no one. net/http watches the
// connection only once the body is read, so the fault reads it first.
func TestHeldRequestsEndWithTheirClient(t *testing.T) {
	t.Parallel()
	w, logs := startWorkspace(t, Options{})
	token := m2mToken(t, w, "external-service")
	home := homeOf(t, w, "external-service")
	mkdirs := func(ctx context.Context, dir string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL()+PathWorkspaceMkdirs,
			strings.NewReader(`{"path":"`+dir+`"}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req) // a connection of its own
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	ended := func(n int) func() bool { // the access log's line comes once the handler has returned
		return func() bool {
			return strings.Count(logs.String(), `msg="workspace request" method=POST path=`+PathWorkspaceMkdirs) >= n
		}
	}
	exists := func(dir string) bool {
		resp, _ := call(t, http.MethodGet, w.URL()+PathWorkspaceGetStatus+"?path="+url.QueryEscape(dir), bearer(token))
		return resp.StatusCode == http.StatusOK
	}

	t.Run("the client gives up", func(t *testing.T) {
		stall, err := w.InjectFault(Fault{Method: http.MethodPost, Path: PathWorkspaceMkdirs, Stall: true})
		require.NoError(t, err)
		ctx, giveUp := context.WithCancel(t.Context())
		defer giveUp()
		done := make(chan error, 1)
		go func() { done <- mkdirs(ctx, home+"/after-the-client-left") }()
		require.Eventually(t, func() bool { return stall.Hits() == 1 }, patience, 10*time.Millisecond, "the request is held")
		giveUp()
		require.Error(t, <-done)
		require.Eventually(t, ended(1), patience, 10*time.Millisecond, "the held request did not end")
		stall.Clear()
		assert.False(t, exists(home+"/after-the-client-left"), "the abandoned request ran after all")
	})
	t.Run("the workspace goes down", func(t *testing.T) {
		stall, err := w.InjectFault(Fault{Method: http.MethodPost, Path: PathWorkspaceMkdirs, Stall: true})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- mkdirs(t.Context(), home+"/after-the-workspace-went-down") }()
		require.Eventually(t, func() bool { return stall.Hits() == 1 }, patience, 10*time.Millisecond)
		require.NoError(t, w.Down())
		assert.Error(t, <-done, "Down closes the connections open on the workspace")
		require.Eventually(t, ended(2), patience, 10*time.Millisecond, "the held request outlived Down")
		stall.Clear()
		require.NoError(t, w.Up())
		assert.False(t, exists(home+"/after-the-workspace-went-down"), "the request held over Down ran after all")
	})
	t.Run("a released request still has its body", func(t *testing.T) {
		delay, err := w.InjectFault(Fault{Method: http.MethodPost, Path: PathWorkspaceMkdirs, Delay: 20 * time.Millisecond})
		require.NoError(t, err)
		defer delay.Clear()
		require.NoError(t, mkdirs(t.Context(), home+"/after-a-delay"))
		assert.True(t, exists(home+"/after-a-delay"))
	})
}
