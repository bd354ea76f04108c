package workspace

import (
	"crypto/sha256"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// maxCachedTokens bounds each token cache: the verified bearer tokens, and each app proxy's forwarded tokens. A test
// suite or a load run presents a handful of distinct tokens; the bound only matters against a flood of them.
const maxCachedTokens = 10_000

// tokenHash names a token in a cache, so that no cache holds a bearer token as a key or could log one.
type tokenHash [sha256.Size]byte

func hashToken(token string) tokenHash { return sha256.Sum256([]byte(token)) }

// forgetExpired deletes the entries of m whose expiry, read by expires, is not after now: the one sweep
// of the package's expiring maps (the token caches, the browser's sign-in codes and sessions, the OAuth codes,
// refresh tokens and revocations).
func forgetExpired[K comparable, V any](m map[K]V, now time.Time, expires func(V) time.Time) {
	maps.DeleteFunc(m, func(_ K, v V) bool { return !now.Before(expires(v)) })
}

// expiringCache is a map whose entries stop being returned once they expire, bounded in size. It is what lets the
// proxy check a token's signature once rather than on every request: an ES256 verification costs more than the rest
// of the proxy's work put together.
type expiringCache[K comparable, V any] struct {
	mu      sync.RWMutex
	entries map[K]expiring[V]
	max     int
	hits    atomic.Int64 // for tests: how many lookups the cache answered
}

type expiring[V any] struct {
	value   V
	expires time.Time
}

func newExpiringCache[K comparable, V any](max int) *expiringCache[K, V] {
	return &expiringCache[K, V]{entries: map[K]expiring[V]{}, max: max}
}

// get returns the value stored under k if it has not expired at now.
func (c *expiringCache[K, V]) get(k K, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	c.hits.Add(1)
	return e.value, true
}

// put stores v under k until expires. When the cache is full it first forgets the expired entries and then, if it
// is still over three quarters full, entries chosen at random (Go's map order), so that a flood of distinct tokens
// costs bounded memory and amortised constant time.
func (c *expiringCache[K, V]) put(k K, v V, expires, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		forgetExpired(c.entries, now, func(e expiring[V]) time.Time { return e.expires })
		for key := range c.entries {
			if len(c.entries) <= c.max*3/4 {
				break
			}
			delete(c.entries, key)
		}
	}
	c.entries[k] = expiring[V]{value: v, expires: expires}
}

// clear forgets every entry.
func (c *expiringCache[K, V]) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}

func (c *expiringCache[K, V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
