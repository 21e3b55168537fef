package auth

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"tokenauth/models"
)

// cacheKey is the SHA-256 of a secret: the cache is keyed by the raw sum,
// so a hit needs neither the hex form nor any allocation.
type cacheKey = [sha256.Size]byte

// tokenCache remembers successful token lookups for a short time, bounded in
// size. Failures are never cached. An entry's token is read-only once added.
//
// A lookup that started before an invalidation must not put its now stale
// answer back afterwards: each invalidation bumps a generation, and an
// entry is added only if the generation is the one its lookup started in.
//
// Invalidations name tokens or users, so the cache keeps an index of its
// keys by token id and by user id: dropping a user's entries costs the
// number of their tokens, not a scan of the whole cache.
type tokenCache struct {
	entries *lru.Cache[cacheKey, *cacheEntry]
	ttl     time.Duration

	// mu serialises every change (adds, invalidations, switching on and
	// off) and guards the indexes; lookups do not take it. The LRU calls
	// onEvict from inside those changes, so the index is kept under mu too.
	mu      sync.Mutex
	byToken map[uint]cacheKey
	byUser  map[uint]map[uint]struct{}

	generation atomic.Uint64
	// off is set while changes made by other processes might be missed.
	off atomic.Bool
}

// cacheEntry is one successful lookup.
type cacheEntry struct {
	token *models.APIToken
	until time.Time
	// expiresHeader is the Token-Expires-At of the token's stored expiry,
	// formatted once for every response that shows it (net/http only reads
	// header values, so they can share it).
	expiresHeader []string
	// noted is the last use of the token this process noted, shared by the
	// requests that hit the entry so that deciding whether to record a use
	// takes no lock (see Resolver.recordUse). Nil until the first use.
	noted atomic.Pointer[models.Usage]
	// memo holds what a caller derived from the token once, for every
	// request that hits the entry (see Identity.Memo).
	memo atomic.Value
	// promoted is when a hit last moved the entry to the front of the LRU
	// (Unix nanoseconds; 0: never).
	promoted atomic.Int64
}

func newTokenCache(size int, ttl time.Duration) *tokenCache {
	c := &tokenCache{ttl: ttl, byToken: map[uint]cacheKey{}, byUser: map[uint]map[uint]struct{}{}}
	entries, err := lru.NewWithEvict(size, c.onEvict)
	if err != nil {
		panic(err) // only for a size below 1, which is a programming error
	}
	c.entries = entries
	return c
}

// get returns the live entry for key, if any.
func (c *tokenCache) get(key cacheKey, now time.Time) (*cacheEntry, bool) {
	if c.off.Load() {
		return nil, false
	}
	e, ok := c.entries.Peek(key)
	if !ok || !now.Before(e.until) {
		return nil, false
	}
	// Moving the entry to the front of the LRU takes the LRU's write lock,
	// which every request on every core would otherwise contend for; once
	// a second keeps the eviction order as good.
	if at := now.UnixNano(); at-e.promoted.Load() >= int64(promoteEvery) {
		e.promoted.Store(at)
		c.entries.Get(key)
	}
	return e, true
}

// promoteEvery is how often a hit moves its entry to the front of the LRU.
const promoteEvery = time.Second

// begin returns the generation a lookup starts in.
func (c *tokenCache) begin() uint64 { return c.generation.Load() }

// add remembers e, the answer of a lookup that started in generation gen,
// unless something was invalidated since or the cache is off.
func (c *tokenCache) add(gen uint64, key cacheKey, e *cacheEntry, now time.Time) {
	e.until = now.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.off.Load() || c.generation.Load() != gen {
		return
	}
	c.entries.Add(key, e)
	t := e.token
	c.byToken[t.ID] = key
	ids := c.byUser[t.UserID]
	if ids == nil {
		ids = map[uint]struct{}{}
		c.byUser[t.UserID] = ids
	}
	ids[t.ID] = struct{}{}
}

// onEvict keeps the indexes in step with the LRU. It runs with mu held:
// the LRU only evicts inside add, forget and purge.
func (c *tokenCache) onEvict(key cacheKey, e *cacheEntry) {
	if c.byToken[e.token.ID] != key {
		return
	}
	delete(c.byToken, e.token.ID)
	if ids := c.byUser[e.token.UserID]; ids != nil {
		delete(ids, e.token.ID)
		if len(ids) == 0 {
			delete(c.byUser, e.token.UserID)
		}
	}
}

// forgetTokens drops the entries of the tokens.
func (c *tokenCache) forgetTokens(ids []uint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation.Add(1)
	for _, id := range ids {
		if key, ok := c.byToken[id]; ok {
			c.entries.Remove(key)
		}
	}
}

// forgetUsers drops the entries of every token of the users.
func (c *tokenCache) forgetUsers(userIDs []uint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation.Add(1)
	for _, userID := range userIDs {
		for id := range c.byUser[userID] {
			c.entries.Remove(c.byToken[id])
		}
	}
}

// purge drops every entry.
func (c *tokenCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.purgeLocked()
}

func (c *tokenCache) purgeLocked() {
	c.generation.Add(1)
	c.entries.Purge()
	clear(c.byToken)
	clear(c.byUser)
}

// setEnabled switches caching on or off; switching off drops everything.
// Lookups that started before either switch are not added.
func (c *tokenCache) setEnabled(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off.Store(!on)
	c.purgeLocked()
}

func (c *tokenCache) enabled() bool { return !c.off.Load() }

func (c *tokenCache) len() int { return c.entries.Len() }
