package middlewares

import (
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"tokenauth/models"
)

// tokenCache remembers successful token lookups for a short time, bounded in
// size. Failures are never cached. Entries are read-only once added.
//
// A lookup that started before an invalidation must not put its now stale
// answer back afterwards: each invalidation bumps a generation, and an
// entry is added only if the generation is the one its lookup started in.
type tokenCache struct {
	entries *lru.Cache[string, cacheEntry]
	ttl     time.Duration
	// mu orders adds against invalidations (adds share it, invalidations
	// take it alone).
	mu         sync.RWMutex
	generation atomic.Uint64
	// off is set while invalidations from other instances might be missed.
	off atomic.Bool
}

type cacheEntry struct {
	token *models.APIToken
	until time.Time
}

func newTokenCache(size int, ttl time.Duration) *tokenCache {
	entries, err := lru.New[string, cacheEntry](size)
	if err != nil {
		panic(err) // only for a size below 1, which is a programming error
	}
	return &tokenCache{entries: entries, ttl: ttl}
}

func (c *tokenCache) get(keyHash string, now time.Time) (*models.APIToken, bool) {
	if c.off.Load() {
		return nil, false
	}
	e, ok := c.entries.Get(keyHash)
	if !ok || !now.Before(e.until) {
		return nil, false
	}
	return e.token, true
}

// begin returns the generation a lookup starts in.
func (c *tokenCache) begin() uint64 { return c.generation.Load() }

func (c *tokenCache) add(gen uint64, keyHash string, t *models.APIToken, now time.Time) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.off.Load() || c.generation.Load() != gen {
		return
	}
	c.entries.Add(keyHash, cacheEntry{token: t, until: now.Add(c.ttl)})
}

// forget drops every entry match selects.
func (c *tokenCache) forget(match func(*models.APIToken) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation.Add(1)
	for _, key := range c.entries.Keys() {
		if e, ok := c.entries.Peek(key); ok && match(e.token) {
			c.entries.Remove(key)
		}
	}
}

// setEnabled switches caching on or off; switching off drops everything.
func (c *tokenCache) setEnabled(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation.Add(1)
	c.off.Store(!on)
	if !on {
		c.entries.Purge()
	}
}
