package workspace

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// authorizeQuery is an authorize request for the signed-in user that the workspace approves, redirecting to
// pkceRedirect unless another redirect URI is given.
func authorizeQuery(redirect ...string) string {
	q := url.Values{"client_id": {CLIClientID}, "response_type": {"code"}, "redirect_uri": {pkceRedirect},
		"state": {"s"}, "code_challenge": {s256(strings.Repeat("v", 43))}, "code_challenge_method": {"S256"},
		"scope": {"offline_access all-apis"}}
	if len(redirect) > 0 {
		q.Set("redirect_uri", redirect[0])
	}
	return q.Encode()
}

// authorizeOnce calls authorize and returns the query of the redirect: a code or an error.
func authorizeOnce(t *testing.T, w *Workspace, redirect ...string) url.Values {
	t.Helper()
	resp, _ := call(t, http.MethodGet, w.URL()+PathAuthorize+"?"+authorizeQuery(redirect...), nil)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	return loc.Query()
}

// expiredCodes stores n codes that expired a minute ago, each for a target of its own.
func expiredCodes(g *grants, n int) {
	g.mu.Lock()
	now := g.now
	g.now = func() time.Time { return now().Add(-codeLifetime - time.Minute) }
	g.mu.Unlock()
	for i := range n {
		_, _ = g.newCode(authCode{clientID: "c", redirectURI: fmt.Sprintf("http://127.0.0.%d:%d", 1+i/60000, 1+i%60000)})
	}
	g.mu.Lock()
	g.now = now
	g.mu.Unlock()
}

// Authorize adds its code and touches no other: forgetting expired codes is the sweeper's job, so the work of one
// request does not grow with the codes outstanding (and token redemption, on the same lock, never waits for it).
func TestAuthorizeLeavesExpiredCodesToTheSweeper(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	expiredCodes(w.auth.grants, 1000)

	require.NotEmpty(t, authorizeOnce(t, w).Get("code"))
	codes, _ := w.auth.grants.outstanding()
	assert.Equal(t, 1001, codes, "authorize swept the other codes")

	w.auth.grants.sweep()
	codes, _ = w.auth.grants.outstanding()
	assert.Equal(t, 1, codes, "the sweep keeps only the live code")
}

func TestSweeperForgetsExpiredGrantsUntilStopped(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	g := newGrants(time.Hour, time.Hour)
	g.now = func() time.Time { return time.Unix(0, now.Load()) }
	_, ok := g.newCode(authCode{})
	require.True(t, ok)
	g.newRefreshToken(refreshGrant{})
	now.Add(int64(codeLifetime + time.Second)) // the code expired, the refresh token did not
	fresh, _ := g.newCode(authCode{})

	g.startSweeping(time.Millisecond)
	require.Eventually(t, func() bool { codes, _ := g.outstanding(); return codes == 1 }, patience, time.Millisecond)
	g.mu.Lock()
	_, live := g.codes[fresh]
	g.mu.Unlock()
	assert.True(t, live)
	_, refresh := g.outstanding()
	assert.Equal(t, 1, refresh)

	now.Add(int64(time.Hour)) // now the refresh token expired too
	require.Eventually(t, func() bool { _, r := g.outstanding(); return r == 0 }, patience, time.Millisecond)

	g.stopSweeping() // returns once the sweeper has returned
	select {
	case <-g.swept:
	default:
		t.Fatal("the sweeper still runs after stopSweeping")
	}
}

func TestCloseStopsTheSweeper(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NotNil(t, w.auth.grants.swept, "Start starts the sweeper")
	require.NoError(t, w.Close())
	select {
	case <-w.auth.grants.swept:
	default:
		t.Fatal("the sweeper still runs after Close")
	}
}

// Beyond maxCodesPerTarget codes for one client and redirect target, authorize redirects back with
// temporarily_unavailable and stores nothing. An exchanged code still counts until it expires (it is kept to detect a
// replay); once codes expire, authorize approves again. Other targets are approved meanwhile.
func TestAuthorizeCapsCodesPerTarget(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	var last string
	for range maxCodesPerTarget {
		q := authorizeOnce(t, w)
		require.NotEmpty(t, q.Get("code"))
		last = q.Get("code")
	}
	q := authorizeOnce(t, w)
	assert.Equal(t, "temporarily_unavailable", q.Get("error"))
	assert.Contains(t, q.Get("error_description"), "100 authorization codes for this client and redirect URI")
	assert.Equal(t, "s", q.Get("state"))
	assert.Empty(t, q.Get("code"))
	codes, _ := w.auth.grants.outstanding()
	assert.Equal(t, maxCodesPerTarget, codes)
	assert.NotEmpty(t, authorizeOnce(t, w, "http://localhost:8021").Get("code"), "another port is another target")
	assert.NotEmpty(t, authorizeOnce(t, w, "http://127.0.0.1:8020").Get("code"), "another host is another target")
	assert.Equal(t, "temporarily_unavailable", authorizeOnce(t, w, pkceRedirect+"/other/path").Get("error"),
		"the path is no other target")

	_, ok, _ := w.auth.grants.redeem(last)
	require.True(t, ok)
	assert.Equal(t, "temporarily_unavailable", authorizeOnce(t, w).Get("error"),
		"an exchanged code is kept until it expires, to detect a replay")

	w.auth.grants.mu.Lock()
	w.auth.grants.now = func() time.Time { return time.Now().Add(codeLifetime + time.Second) }
	w.auth.grants.mu.Unlock()
	w.auth.grants.sweep()
	assert.NotEmpty(t, authorizeOnce(t, w).Get("code"), "once the codes expire, authorize approves again")
}

// A flood of authorize requests, unauthenticated as they all are, fills its own target's codes and no more: the
// user's next auth login, at the CLI's own redirect URI, gets its code and its token.
func TestAuthorizeFloodStarvesOnlyItsTarget(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	flood := PathAuthorize + "?" + authorizeQuery("http://localhost:9999")
	sent, refused := 0, false
	for ; sent <= maxOutstandingCodes && !refused; sent++ {
		rec := httptest.NewRecorder()
		w.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, flood, nil))
		require.Equal(t, http.StatusFound, rec.Code)
		loc, err := url.Parse(rec.Header().Get("Location"))
		require.NoError(t, err)
		refused = loc.Query().Get("error") == "temporarily_unavailable"
	}
	require.True(t, refused, "the flood is refused once it holds its share of codes")
	t.Logf("the flood was refused after %d codes", sent-1)

	code, verifier := pkceAuthorize(t, w, "offline_access all-apis")
	status, body := redeemCode(t, w, code, verifier)
	assert.Equal(t, http.StatusOK, status, string(body))
}

// Beyond maxOutstandingCodes in all, from any number of targets, each new code replaces the oldest held: the codes
// held stay bounded, and a fresh code outlives every code issued before it.
func TestCodesBeyondTheCapReplaceTheOldest(t *testing.T) {
	t.Parallel()
	g := newGrants(time.Hour, time.Hour)
	g.maxCodes, g.maxPerTarget = 4, 2
	var issued []string
	for i := range 6 {
		code, ok := g.newCode(authCode{clientID: "c", redirectURI: fmt.Sprintf("http://localhost:%d", 9000+i)})
		require.True(t, ok)
		issued = append(issued, code)
	}
	codes, _ := g.outstanding()
	assert.Equal(t, 4, codes)
	for i, code := range issued {
		_, ok, _ := g.redeem(code)
		assert.Equal(t, i >= 2, ok, "code %d: the two oldest were replaced", i)
	}
	g.sweep()
	assert.Len(t, g.codeOrder, 4, "the sweep drops what it no longer holds from the order")
}

func TestRefreshTokensExpire(t *testing.T) {
	t.Parallel()
	t.Run("default lifetime", func(t *testing.T) {
		w, _ := startWorkspace(t, Options{})
		before := time.Now()
		refresh := pkceLogin(t, w, "offline_access sql")["refresh_token"].(string)
		grant, ok := w.auth.grants.lookupRefresh(refresh, CLIClientID)
		require.True(t, ok)
		assert.False(t, grant.expires.Before(before.Add(30*24*time.Hour)), grant.expires)
		assert.False(t, grant.expires.After(time.Now().Add(30*24*time.Hour)), grant.expires)
	})
	t.Run("an expired refresh token is invalid", func(t *testing.T) {
		w, _ := startWorkspace(t, Options{RefreshTokenLifetime: time.Nanosecond}) // expired when first used
		refresh := pkceLogin(t, w, "offline_access sql")["refresh_token"].(string)
		status, answer := tokenRequest(t, w, url.Values{"grant_type": {"refresh_token"}, "client_id": {CLIClientID},
			"refresh_token": {refresh}})
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Equal(t, "Refresh token is invalid", answer.Description)
		_, refreshTokens := w.auth.grants.outstanding()
		assert.Zero(t, refreshTokens, "an expired refresh token is forgotten when used")
	})
	t.Run("a negative lifetime is refused", func(t *testing.T) {
		_, err := Start(t.Context(), Options{RefreshTokenLifetime: -time.Second})
		assert.ErrorContains(t, err, "refresh token lifetime")
	})
}

// invalidRefresh is the exact answer to a refresh token that is unknown, expired, revoked or already rotated: the
// description is the string the SDK matches to tell the user to log in again.
const invalidRefresh = `{"error":"invalid_request","error_description":"Refresh token is invalid"}`

func refreshWith(t *testing.T, w *Workspace, refresh string) (int, oauthAnswer, string) {
	t.Helper()
	status, body := postForm(t, w.URL()+PathToken, url.Values{"grant_type": {"refresh_token"},
		"client_id": {CLIClientID}, "refresh_token": {refresh}})
	var a oauthAnswer
	require.NoError(t, json.Unmarshal(body, &a), string(body))
	return status, a, strings.TrimSpace(string(body))
}

func TestRefreshTokenRotation(t *testing.T) {
	t.Parallel()
	t.Run("off by default: a refresh token works again and again", func(t *testing.T) {
		w, _ := startWorkspace(t, Options{})
		require.False(t, w.Config().Workspace.OAuth.SingleUseRefreshTokens)
		r0 := pkceLogin(t, w, "offline_access sql")["refresh_token"].(string)
		for range 3 {
			status, answer, _ := refreshWith(t, w, r0)
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, r0, answer.RefreshToken)
		}
		status, _, body := refreshWith(t, w, "unknown")
		assert.Equal(t, http.StatusBadRequest, status)
		assert.JSONEq(t, invalidRefresh, body)
	})

	t.Run("single use: each refresh returns a new token and the old one is invalid", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Workspace.OAuth.SingleUseRefreshTokens = true
		w, _ := startWorkspace(t, Options{Config: cfg})
		r0 := pkceLogin(t, w, "offline_access sql")["refresh_token"].(string)
		status, answer, _ := refreshWith(t, w, r0)
		require.Equal(t, http.StatusOK, status)
		r1 := answer.RefreshToken
		require.NotEmpty(t, r1)
		assert.NotEqual(t, r0, r1)

		status, _, body := refreshWith(t, w, r0)
		assert.Equal(t, http.StatusBadRequest, status, "a used refresh token is spent")
		assert.JSONEq(t, invalidRefresh, body)

		// A refused refresh (a scope not granted) does not spend the token.
		status, _ = tokenRequest(t, w, url.Values{"grant_type": {"refresh_token"}, "client_id": {CLIClientID},
			"refresh_token": {r1}, "scope": {"all-apis"}})
		require.Equal(t, http.StatusBadRequest, status)
		status, answer, _ = refreshWith(t, w, r1)
		require.Equal(t, http.StatusOK, status)
		assert.NotEqual(t, r1, answer.RefreshToken)
		_, refreshTokens := w.auth.grants.outstanding()
		assert.Equal(t, 1, refreshTokens, "rotation replaces, it does not pile up")
	})

	t.Run("the model's YAML switches it on", func(t *testing.T) {
		cfg, err := ParseConfig([]byte(strings.Replace(string(defaultYAML), "single_use_refresh_tokens: false",
			"single_use_refresh_tokens: true", 1)), "c.yaml")
		require.NoError(t, err)
		assert.True(t, cfg.Workspace.OAuth.SingleUseRefreshTokens)
	})
}

// A replayed authorization code is refused and revokes what was issued from it (RFC 6749 section 4.1.2): the access
// token, the refresh token, a token refreshed from it and the proxy's forwarded token stop working, at the workspace's
// APIs and at the proxy; another login's tokens do not.
func TestReplayedCodeRevokesItsTokens(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	api := w.AppURL("api-app") + "/api/whoami"
	other := pkceLogin(t, w, "offline_access all-apis")

	q := authorizeOnce(t, w)
	exchange := func() (int, oauthAnswer) {
		return tokenRequest(t, w, url.Values{"grant_type": {"authorization_code"}, "client_id": {CLIClientID},
			"code": {q.Get("code")}, "redirect_uri": {"http://localhost:8020"}, "code_verifier": {strings.Repeat("v", 43)}})
	}
	status, first := exchange()
	require.Equal(t, http.StatusOK, status, first.Description)
	status, refreshed, _ := refreshWith(t, w, first.RefreshToken)
	require.Equal(t, http.StatusOK, status)
	resp, body := call(t, http.MethodGet, api, bearer(first.AccessToken))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var seen echoed
	require.NoError(t, json.Unmarshal(body, &seen))
	forwarded := seen.Headers.Get(identity.HeaderAccessToken)
	require.NotEmpty(t, forwarded)
	for _, token := range []string{first.AccessToken, refreshed.AccessToken, forwarded} {
		resp, _ := call(t, http.MethodGet, w.URL()+PathWarehouses, bearer(token))
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}

	status, replay := exchange()
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", replay.Error)
	assert.Empty(t, replay.AccessToken)

	for name, token := range map[string]string{"access token": first.AccessToken, "refreshed": refreshed.AccessToken,
		"forwarded": forwarded} {
		resp, body := call(t, http.MethodGet, w.URL()+PathWarehouses, bearer(token))
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the warehouses API, %s", name)
		assert.Contains(t, string(body), "revoked")
		if name != "forwarded" {
			resp, _ = call(t, http.MethodGet, api, bearer(token))
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "proxy, %s", name)
		}
	}
	status, _, answer := refreshWith(t, w, first.RefreshToken)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.JSONEq(t, invalidRefresh, answer)

	resp, _ = call(t, http.MethodGet, api, bearer(other["access_token"].(string)))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "another login is not revoked")
	status, _, _ = refreshWith(t, w, other["refresh_token"].(string))
	assert.Equal(t, http.StatusOK, status)
}

// The sweep forgets expired codes, refresh tokens and revocations, and gives a target back the codes that expired:
// a target refused at its cap is served again once its codes have expired and been swept.
func TestSweepForgetsWhatExpired(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	g := newGrants(time.Hour, time.Hour)
	g.now = func() time.Time { return now }
	g.maxPerTarget = 2
	target := authCode{clientID: "c", redirectURI: "http://localhost:8020"}
	for range 2 {
		_, ok := g.newCode(target)
		require.True(t, ok)
	}
	_, ok := g.newCode(target)
	require.False(t, ok, "the target holds its cap")
	g.refresh[hashToken("r")] = refreshGrant{expires: now.Add(codeLifetime + time.Minute)}
	g.revoked["grant"] = now.Add(codeLifetime + time.Minute)

	now = now.Add(codeLifetime + time.Second)
	g.sweep()
	assert.Empty(t, g.codes)
	assert.Empty(t, g.perTarget)
	assert.Empty(t, g.codeOrder)
	assert.Len(t, g.refresh, 1, "a refresh token not expired yet is kept")
	_, ok = g.newCode(target)
	assert.True(t, ok, "the expired codes no longer count against the target")

	now = now.Add(time.Hour)
	g.sweep()
	assert.Empty(t, g.refresh)
	assert.Empty(t, g.revoked)
	assert.Empty(t, g.codes)
}
