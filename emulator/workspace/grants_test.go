package workspace

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// authorizeQuery is an authorize request for the signed-in user that the workspace approves.
func authorizeQuery() string {
	return url.Values{"client_id": {CLIClientID}, "response_type": {"code"}, "redirect_uri": {"http://localhost:8020"},
		"state": {"s"}, "code_challenge": {s256(strings.Repeat("v", 43))}, "code_challenge_method": {"S256"},
		"scope": {"offline_access all-apis"}}.Encode()
}

// authorizeOnce calls authorize and returns the query of the redirect: a code or an error.
func authorizeOnce(t *testing.T, w *Workspace) url.Values {
	t.Helper()
	resp, _ := call(t, http.MethodGet, w.URL()+PathAuthorize+"?"+authorizeQuery(), nil)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	return loc.Query()
}

// Authorize adds its code and touches no other: forgetting expired codes is the sweeper's job, so the work of one
// request does not grow with the codes outstanding (and token redemption, on the same lock, never waits for it).
func TestAuthorizeLeavesExpiredCodesToTheSweeper(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	w.grants.mu.Lock()
	for range 1000 {
		w.grants.codes[randomString()] = authCode{expires: time.Now().Add(-time.Minute)}
	}
	w.grants.mu.Unlock()

	require.NotEmpty(t, authorizeOnce(t, w).Get("code"))
	codes, _ := w.grants.outstanding()
	assert.Equal(t, 1001, codes, "authorize swept the other codes")

	w.grants.sweep()
	codes, _ = w.grants.outstanding()
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
	require.Eventually(t, func() bool { codes, _ := g.outstanding(); return codes == 1 }, 5*time.Second, time.Millisecond)
	g.mu.Lock()
	_, live := g.codes[fresh]
	g.mu.Unlock()
	assert.True(t, live)
	_, refresh := g.outstanding()
	assert.Equal(t, 1, refresh)

	now.Add(int64(time.Hour)) // now the refresh token expired too
	require.Eventually(t, func() bool { _, r := g.outstanding(); return r == 0 }, 5*time.Second, time.Millisecond)

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
	require.NotNil(t, w.grants.swept, "Start starts the sweeper")
	require.NoError(t, w.Close())
	select {
	case <-w.grants.swept:
	default:
		t.Fatal("the sweeper still runs after Close")
	}
}

// Beyond maxOutstandingCodes, authorize redirects back with temporarily_unavailable and stores nothing. An exchanged
// code still counts until it expires (it is kept to detect a replay); once codes expire, authorize approves again.
func TestAuthorizeCapsOutstandingCodes(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	var last string
	for range maxOutstandingCodes {
		code, ok := w.grants.newCode(authCode{})
		require.True(t, ok)
		last = code
	}
	q := authorizeOnce(t, w)
	assert.Equal(t, "temporarily_unavailable", q.Get("error"))
	assert.Contains(t, q.Get("error_description"), "10000 authorization codes")
	assert.Equal(t, "s", q.Get("state"))
	assert.Empty(t, q.Get("code"))
	codes, _ := w.grants.outstanding()
	assert.Equal(t, maxOutstandingCodes, codes)

	_, ok, _ := w.grants.redeem(last)
	require.True(t, ok)
	codes, _ = w.grants.outstanding()
	assert.Equal(t, maxOutstandingCodes, codes, "an exchanged code is kept until it expires, to detect a replay")
	assert.Equal(t, "temporarily_unavailable", authorizeOnce(t, w).Get("error"))

	w.grants.mu.Lock()
	w.grants.now = func() time.Time { return time.Now().Add(codeLifetime + time.Second) }
	w.grants.mu.Unlock()
	w.grants.sweep()
	assert.NotEmpty(t, authorizeOnce(t, w).Get("code"), "once the codes expire, authorize approves again")
}

func TestRefreshTokensExpire(t *testing.T) {
	t.Parallel()
	t.Run("default lifetime", func(t *testing.T) {
		w, _ := startWorkspace(t, Options{})
		before := time.Now()
		refresh := pkceLogin(t, w, "offline_access sql")["refresh_token"].(string)
		grant, ok := w.grants.lookupRefresh(refresh, CLIClientID)
		require.True(t, ok)
		assert.WithinDuration(t, before.Add(30*24*time.Hour), grant.expires, time.Minute)
	})
	t.Run("an expired refresh token is invalid", func(t *testing.T) {
		w, _ := startWorkspace(t, Options{RefreshTokenLifetime: time.Nanosecond}) // expired when first used
		refresh := pkceLogin(t, w, "offline_access sql")["refresh_token"].(string)
		status, answer := tokenRequest(t, w, url.Values{"grant_type": {"refresh_token"}, "client_id": {CLIClientID},
			"refresh_token": {refresh}})
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Equal(t, "Refresh token is invalid", answer.Description)
		_, refreshTokens := w.grants.outstanding()
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
		_, refreshTokens := w.grants.outstanding()
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
