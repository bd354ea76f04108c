package workspace

import (
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// codeLifetime bounds how long an authorization code waits to be exchanged; real servers use a minute or so.
const codeLifetime = 2 * time.Minute

// Authorization codes held: those waiting to be exchanged and, until they expire, the exchanged ones kept to detect
// a replay. A real login needs one for a moment. Anyone local may ask authorize for codes, so the caps keep a flood
// from one client from locking everyone else out of auth login: beyond maxCodesPerTarget codes for one client and
// redirect target (the CLI's http://localhost:8020), authorize refuses that target with temporarily_unavailable
// until its codes expire, and other targets go on; beyond maxOutstandingCodes in all, each new code replaces the
// oldest, which a real login exchanged long before.
const (
	maxCodesPerTarget   = 100
	maxOutstandingCodes = 10_000
)

// sweepInterval is how often expired codes and refresh tokens are forgotten, by a timer rather than by the
// requests that add them, so no request pays for the others.
const sweepInterval = 30 * time.Second

// authCode is what an authorization code stands for until the token endpoint redeems it, once.
type authCode struct {
	user        principal
	clientID    string
	redirectURI string
	target      string // the client and the redirect URI's origin, which maxCodesPerTarget counts by
	challenge   string // S256 code challenge
	scopes      []string
	expires     time.Time
	// generation is the user's token generation when the code was issued: a revocation since voids the code, and
	// the tokens of a redemption that straddles one are signed with it, so that authenticate refuses them.
	generation int64
	// grant names everything issued from this code: its access and refresh tokens, the tokens those refresh, and
	// the proxy's forwarded tokens. A replay of the code revokes them by it.
	grant string
	spent bool // redeemed once; kept until it expires so a replay is recognised
}

// refreshGrant is what a refresh token stands for. Refresh tokens are opaque and expire after the workspace's
// refresh token lifetime; they rotate on use only when the model's OAuth policy says so (see OAuthPolicy).
type refreshGrant struct {
	user     principal
	clientID string
	scopes   []string
	grant    string // the authorization code's grant
	// generation is the authorization code's: a revocation of the user's tokens since voids the refresh token.
	generation int64
	expires    time.Time
}

// grants holds the workspace's authorization codes, refresh tokens and revoked grants, in memory only.
type grants struct {
	mu           sync.Mutex
	codes        map[string]authCode
	codeOrder    []string       // the codes in the order they were issued, oldest first; some may be forgotten since
	perTarget    map[string]int // how many codes each target holds
	maxCodes     int            // maxOutstandingCodes, and
	maxPerTarget int            // maxCodesPerTarget, except in tests
	// refresh holds the refresh tokens by their hash: a saved workspace (persist.go) never holds one that works.
	refresh         map[tokenHash]refreshGrant
	revoked         map[string]time.Time // grant -> when the last access token it may have issued expires
	refreshLifetime time.Duration
	accessLifetime  time.Duration
	now             func() time.Time

	// generations holds, per subject whose tokens were revoked all at once, its token generation (int64): read on
	// every request, written on a revocation, so a sync.Map rather than mu.
	generations sync.Map

	// changed tells the workspace's store that the refresh tokens or revocations changed (persist.go). It only
	// signals, so it may be called under mu.
	changed func()

	stopOnce sync.Once
	stop     chan struct{} // closed by stopSweeping
	swept    chan struct{} // closed when the sweeper has returned; nil until startSweeping
}

func newGrants(refreshLifetime, accessLifetime time.Duration) *grants {
	return &grants{codes: map[string]authCode{}, perTarget: map[string]int{}, maxCodes: maxOutstandingCodes,
		maxPerTarget: maxCodesPerTarget, refresh: map[tokenHash]refreshGrant{}, revoked: map[string]time.Time{},
		refreshLifetime: refreshLifetime, accessLifetime: accessLifetime, now: time.Now, stop: make(chan struct{}),
		changed: func() {}}
}

// startSweeping forgets expired codes and refresh tokens every interval until stopSweeping.
func (g *grants) startSweeping(interval time.Duration) {
	g.swept = make(chan struct{})
	go func() {
		defer close(g.swept)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-g.stop:
				return
			case <-t.C:
				g.sweep()
			}
		}
	}()
}

// stopSweeping stops the sweeper, if started, and waits for it.
func (g *grants) stopSweeping() {
	g.stopOnce.Do(func() { close(g.stop) })
	if g.swept != nil {
		<-g.swept
	}
}

func (g *grants) sweep() {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	forgetExpired(g.codes, now, func(c authCode) time.Time { return c.expires })
	g.codeOrder = slices.DeleteFunc(g.codeOrder, func(code string) bool { _, held := g.codes[code]; return !held })
	clear(g.perTarget)
	for _, c := range g.codes {
		g.perTarget[c.target]++
	}
	forgetExpired(g.refresh, now, func(r refreshGrant) time.Time { return r.expires })
	forgetExpired(g.revoked, now, func(until time.Time) time.Time { return until })
}

// newCode stores c under a new code that expires after codeLifetime, or reports false when c's client and redirect
// target hold maxCodesPerTarget codes already. When maxOutstandingCodes are held, the oldest is forgotten.
func (g *grants) newCode(c authCode) (string, bool) {
	code := randomString()
	c.target = codeTarget(c.clientID, c.redirectURI)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.perTarget[c.target] >= g.maxPerTarget {
		return "", false
	}
	for len(g.codes) >= g.maxCodes && len(g.codeOrder) > 0 {
		oldest := g.codeOrder[0]
		g.codeOrder = g.codeOrder[1:]
		g.forgetCodeLocked(oldest) // nothing, for a code the sweeper forgot already
	}
	c.expires = g.now().Add(codeLifetime)
	c.grant, c.spent = randomString(), false
	c.generation = g.generation(c.user.UserName) // under mu, as revokeSubject starts a generation
	g.codes[code] = c
	g.perTarget[c.target]++
	g.codeOrder = append(g.codeOrder, code)
	return code, true
}

// forgetCodeLocked forgets a code, if it is held.
func (g *grants) forgetCodeLocked(code string) {
	c, held := g.codes[code]
	if !held {
		return
	}
	delete(g.codes, code)
	if g.perTarget[c.target]--; g.perTarget[c.target] <= 0 {
		delete(g.perTarget, c.target)
	}
}

// codeTarget names whom a code is for: the client and the origin of its redirect URI, where a CLI or SDK listens
// (authorize accepts only loopback http ones). The path is left out, so a flood cannot make a target per path.
func codeTarget(clientID, redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return clientID + " " + redirectURI
	}
	return clientID + " " + strings.ToLower(u.Scheme+"://"+u.Host)
}

// redeem spends a code and returns what it stands for. Each code works once: its first use spends it, even a failed
// one, and a second use revokes every token issued from it, as RFC 6749 section 4.1.2 asks; replayed reports that.
func (g *grants) redeem(code string) (c authCode, ok, replayed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, found := g.codes[code]
	switch {
	case found && c.spent:
		g.revokeLocked(c.grant)
		return authCode{}, false, true
	case !found || g.now().After(c.expires):
		return authCode{}, false, false
	}
	c.spent = true
	g.codes[code] = c
	return c, true, false
}

// revokeLocked forgets the grant's refresh tokens and refuses its access tokens until the last of them expires.
func (g *grants) revokeLocked(grant string) {
	for k, r := range g.refresh {
		if r.grant == grant {
			delete(g.refresh, k)
		}
	}
	g.revoked[grant] = g.now().Add(g.accessLifetime)
	g.changed()
}

// revoke is revokeLocked for callers outside grants: a browser session that ends.
func (g *grants) revoke(grant string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.revokeLocked(grant)
}

// isRevoked reports whether an access token of this grant must be refused. M2M tokens have no grant.
func (g *grants) isRevoked(grant string) bool {
	if grant == "" {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_, revoked := g.revoked[grant]
	return revoked
}

// revokeSubject revokes every token issued to subject so far: it forgets the subject's refresh tokens and starts a
// new token generation, so that its access tokens of earlier ones are refused. It returns how many refresh tokens
// it forgot.
func (g *grants) revokeSubject(subject string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.generations.Store(subject, g.generation(subject)+1) // under mu: two revocations never store the same one
	forgotten := 0
	for k, r := range g.refresh {
		if r.user.UserName == subject {
			delete(g.refresh, k)
			forgotten++
		}
	}
	g.changed()
	return forgotten
}

// generation is subject's current token generation: 0 until its tokens are first revoked.
func (g *grants) generation(subject string) int64 {
	n, _ := g.generations.Load(subject)
	gen, _ := n.(int64)
	return gen
}

// revokedSince reports whether subject's tokens were revoked since generation, that of a token or of the grant
// it stands for, which must then be refused.
func (g *grants) revokedSince(subject string, generation int64) bool {
	return generation < g.generation(subject)
}

// newRefreshToken stores r under a new refresh token that expires after the refresh token lifetime.
func (g *grants) newRefreshToken(r refreshGrant) string {
	token := randomString()
	g.mu.Lock()
	defer g.mu.Unlock()
	r.expires = g.now().Add(g.refreshLifetime)
	g.refresh[hashToken(token)] = r
	g.changed()
	return token
}

// lookupRefresh returns what a refresh token presented by clientID stands for, if it is valid: neither expired nor
// of a generation revoked since. revokeSubject forgets the refresh tokens it finds; one of its generation stored
// after (by a code exchange that straddled it) is refused here.
func (g *grants) lookupRefresh(token, clientID string) (refreshGrant, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.refresh[hashToken(token)]
	if ok && (g.now().After(r.expires) || g.revokedSince(r.user.UserName, r.generation)) {
		delete(g.refresh, hashToken(token))
		g.changed()
		return refreshGrant{}, false
	}
	return r, ok && r.clientID == clientID
}

// rotateRefresh replaces a refresh token by a new one standing for the same grant, with the same expiry (rotation
// never extends a session). It reports false if the token was used or revoked meanwhile.
func (g *grants) rotateRefresh(token string) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.refresh[hashToken(token)]
	if !ok {
		return "", false
	}
	delete(g.refresh, hashToken(token))
	next := randomString()
	g.refresh[hashToken(next)] = r
	g.changed()
	return next, true
}

// outstanding counts the codes and refresh tokens held, expired ones not yet swept included.
func (g *grants) outstanding() (codes, refreshTokens int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.codes), len(g.refresh)
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}
