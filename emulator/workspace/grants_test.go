package workspace

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	g := newGrants(time.Hour)
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
	w, _ := startWorkspace(t, Options{})
	require.NotNil(t, w.grants.swept, "Start starts the sweeper")
	require.NoError(t, w.Close())
	select {
	case <-w.grants.swept:
	default:
		t.Fatal("the sweeper still runs after Close")
	}
}

// Beyond maxOutstandingCodes, authorize redirects back with temporarily_unavailable and stores nothing; once a code
// is exchanged, it approves again.
func TestAuthorizeCapsOutstandingCodes(t *testing.T) {
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

	_, ok := w.grants.redeem(last)
	require.True(t, ok)
	assert.NotEmpty(t, authorizeOnce(t, w).Get("code"))
}

func TestRefreshTokensExpire(t *testing.T) {
	t.Run("default lifetime", func(t *testing.T) {
		w, _ := startWorkspace(t, Options{})
		before := time.Now()
		refresh := pkceLogin(t, w, "offline_access sql")["refresh_token"].(string)
		grant, ok := w.grants.lookupRefresh(refresh)
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
