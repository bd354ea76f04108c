package workspace

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// codeLifetime bounds how long an authorization code waits to be exchanged; real servers use a minute or so.
const codeLifetime = 2 * time.Minute

// authCode is what an authorization code stands for until the token endpoint redeems it, once.
type authCode struct {
	user        principal
	clientID    string
	redirectURI string
	challenge   string // S256 code challenge
	scopes      []string
	expires     time.Time
}

// refreshGrant is what a refresh token stands for. Refresh tokens are opaque, are not rotated and live as long as
// the emulator: two CLI processes refreshing at once then never invalidate each other.
type refreshGrant struct {
	user     principal
	clientID string
	scopes   []string
}

// grants holds the workspace's outstanding authorization codes and refresh tokens, in memory only.
type grants struct {
	mu      sync.Mutex
	codes   map[string]authCode
	refresh map[string]refreshGrant
}

func newGrants() *grants {
	return &grants{codes: map[string]authCode{}, refresh: map[string]refreshGrant{}}
}

func (g *grants) newCode(c authCode) string {
	code := randomString()
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	for k, old := range g.codes { // forget codes nobody redeemed
		if now.After(old.expires) {
			delete(g.codes, k)
		}
	}
	g.codes[code] = c
	return code
}

// redeem returns the code's grant and forgets it, so each code works once.
func (g *grants) redeem(code string) (authCode, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.codes[code]
	delete(g.codes, code)
	if !ok || time.Now().After(c.expires) {
		return authCode{}, false
	}
	return c, true
}

func (g *grants) newRefreshToken(r refreshGrant) string {
	token := randomString()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refresh[token] = r
	return token
}

func (g *grants) lookupRefresh(token string) (refreshGrant, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.refresh[token]
	return r, ok
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}
