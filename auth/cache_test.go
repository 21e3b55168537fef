package auth

import (
	"crypto/sha256"
	"testing"
	"time"

	"tokenauth/models"
)

func entryFor(id, userID uint) (cacheKey, *cacheEntry) {
	key := sha256.Sum256([]byte{byte(id), byte(id >> 8)})
	return key, &cacheEntry{token: &models.APIToken{ID: id, UserID: userID}}
}

func TestCacheStaleLookupIsNotAdded(t *testing.T) {
	c := newTokenCache(10, time.Minute)
	now := time.Now()
	key, e := entryFor(1, 1)
	gen := c.begin()
	c.forgetTokens([]uint{1}) // a revocation lands while the lookup runs
	c.add(gen, key, e, now)
	if _, ok := c.get(key, now); ok {
		t.Fatal("a lookup that started before an invalidation was cached")
	}
	c.add(c.begin(), key, e, now)
	if _, ok := c.get(key, now); !ok {
		t.Fatal("a fresh lookup was not cached")
	}
}

func TestCacheExpiresEntries(t *testing.T) {
	c := newTokenCache(10, time.Minute)
	now := time.Now()
	key, e := entryFor(1, 1)
	c.add(c.begin(), key, e, now)
	if _, ok := c.get(key, now.Add(time.Minute-time.Nanosecond)); !ok {
		t.Fatal("entry gone before its TTL")
	}
	if _, ok := c.get(key, now.Add(time.Minute)); ok {
		t.Fatal("entry served after its TTL")
	}
}

func TestCacheForgetsByTokenAndByUser(t *testing.T) {
	c := newTokenCache(10, time.Minute)
	now := time.Now()
	keys := map[uint]cacheKey{}
	for id, user := range map[uint]uint{1: 1, 2: 1, 3: 2} {
		key, e := entryFor(id, user)
		keys[id] = key
		c.add(c.begin(), key, e, now)
	}
	c.forgetTokens([]uint{3, 99})
	if _, ok := c.get(keys[3], now); ok {
		t.Error("token 3 survived forgetTokens")
	}
	c.forgetUsers([]uint{1})
	for _, id := range []uint{1, 2} {
		if _, ok := c.get(keys[id], now); ok {
			t.Errorf("token %d of user 1 survived forgetUsers", id)
		}
	}
	if c.len() != 0 || len(c.byToken) != 0 || len(c.byUser) != 0 {
		t.Errorf("left behind: %d entries, index %v %v", c.len(), c.byToken, c.byUser)
	}
}

// Entries the LRU evicts leave the indexes too, so they stay bounded.
func TestCacheIndexFollowsEvictions(t *testing.T) {
	c := newTokenCache(2, time.Minute)
	now := time.Now()
	for id := uint(1); id <= 5; id++ {
		key, e := entryFor(id, id%2)
		c.add(c.begin(), key, e, now)
	}
	if c.len() != 2 || len(c.byToken) != 2 {
		t.Fatalf("got %d entries and %d indexed tokens, want 2 and 2", c.len(), len(c.byToken))
	}
	users := 0
	for _, ids := range c.byUser {
		users += len(ids)
	}
	if users != 2 {
		t.Errorf("tokens indexed by user: got %d, want 2", users)
	}
}

func TestCacheOffDropsAndRefuses(t *testing.T) {
	c := newTokenCache(10, time.Minute)
	now := time.Now()
	key, e := entryFor(1, 1)
	c.add(c.begin(), key, e, now)
	gen := c.begin()
	c.setEnabled(false)
	if _, ok := c.get(key, now); ok || c.len() != 0 {
		t.Fatal("switching off kept an entry")
	}
	c.add(c.begin(), key, e, now)
	if c.len() != 0 {
		t.Fatal("added while off")
	}
	c.setEnabled(true)
	c.add(gen, key, e, now) // started before the cache went off
	if c.len() != 0 {
		t.Fatal("a lookup from before the switch was added")
	}
	c.add(c.begin(), key, e, now)
	if _, ok := c.get(key, now); !ok {
		t.Fatal("not caching after switching back on")
	}
}
