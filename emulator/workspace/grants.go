package workspace

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// codeLifetime bounds how long an authorization code waits to be exchanged; real servers use a minute or so.
const codeLifetime = 2 * time.Minute

// maxOutstandingCodes caps the authorization codes waiting to be exchanged. A real login leaves one for seconds;
// beyond the cap, authorize refuses with temporarily_unavailable until codes are exchanged or expire.
const maxOutstandingCodes = 10_000

// sweepInterval is how often expired codes and refresh tokens are forgotten, by a timer rather than by the
// requests that add them, so no request pays for the others.
const sweepInterval = 30 * time.Second

// authCode is what an authorization code stands for until the token endpoint redeems it, once.
type authCode struct {
	user        principal
	clientID    string
	redirectURI string
	challenge   string // S256 code challenge
	scopes      []string
	expires     time.Time
}

// refreshGrant is what a refresh token stands for. Refresh tokens are opaque, are not rotated and expire after the
// workspace's refresh token lifetime: two CLI processes refreshing at once then never invalidate each other.
type refreshGrant struct {
	user     principal
	clientID string
	scopes   []string
	expires  time.Time
}

// grants holds the workspace's outstanding authorization codes and refresh tokens, in memory only.
type grants struct {
	mu              sync.Mutex
	codes           map[string]authCode
	refresh         map[string]refreshGrant
	refreshLifetime time.Duration
	now             func() time.Time

	stopOnce sync.Once
	stop     chan struct{} // closed by stopSweeping
	swept    chan struct{} // closed when the sweeper has returned; nil until startSweeping
}

func newGrants(refreshLifetime time.Duration) *grants {
	return &grants{codes: map[string]authCode{}, refresh: map[string]refreshGrant{}, refreshLifetime: refreshLifetime,
		now: time.Now, stop: make(chan struct{})}
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
	for k, c := range g.codes {
		if now.After(c.expires) {
			delete(g.codes, k)
		}
	}
	for k, r := range g.refresh {
		if now.After(r.expires) {
			delete(g.refresh, k)
		}
	}
}

// newCode stores c under a new code that expires after codeLifetime, or reports false when maxOutstandingCodes
// are outstanding.
func (g *grants) newCode(c authCode) (string, bool) {
	code := randomString()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.codes) >= maxOutstandingCodes {
		return "", false
	}
	c.expires = g.now().Add(codeLifetime)
	g.codes[code] = c
	return code, true
}

// redeem returns the code's grant and forgets it, so each code works once.
func (g *grants) redeem(code string) (authCode, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.codes[code]
	delete(g.codes, code)
	if !ok || g.now().After(c.expires) {
		return authCode{}, false
	}
	return c, true
}

// newRefreshToken stores r under a new refresh token that expires after the refresh token lifetime.
func (g *grants) newRefreshToken(r refreshGrant) string {
	token := randomString()
	g.mu.Lock()
	defer g.mu.Unlock()
	r.expires = g.now().Add(g.refreshLifetime)
	g.refresh[token] = r
	return token
}

func (g *grants) lookupRefresh(token string) (refreshGrant, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.refresh[token]
	if ok && g.now().After(r.expires) {
		delete(g.refresh, token)
		return refreshGrant{}, false
	}
	return r, ok
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
