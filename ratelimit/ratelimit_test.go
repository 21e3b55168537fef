package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// rateLimiter and lockout are what the service's middlewares and
// controllers ask of these types; every test below runs on both forms.
type rateLimiter interface {
	Allow(ctx context.Context, key string) (time.Duration, error)
}

type lockout interface {
	Begin(ctx context.Context, key string) (Attempt, error)
	End(ctx context.Context, key string, a Attempt, outcome Outcome) error
	OnWait(f func())
}

// backend builds the limiters of one form and moves time forward for them:
// a fake clock in memory, the real one (by sleeping) for Redis.
type backend struct {
	name string
	rate func(t *testing.T, perMinute int) rateLimiter
	// lockout builds a lockout; hold is how long a place in flight lasts
	// in Redis (attempts in memory end with their request).
	lockout func(t *testing.T, max int, window, hold time.Duration) lockout
	advance func(d time.Duration)
}

func backends(t *testing.T) []backend {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	all := []backend{
		{
			name: "memory",
			rate: func(t *testing.T, perMinute int) rateLimiter {
				m := NewMemoryRate(perMinute)
				m.now = clock.Now
				return m
			},
			lockout: func(t *testing.T, max int, window, _ time.Duration) lockout {
				m := NewMemoryLockout(max, window)
				m.now = clock.Now
				return m
			},
			advance: clock.Advance,
		},
	}
	// Redis joins when this run has one (TEST_REDIS_URL; .ci/run sets it).
	if os.Getenv("TEST_REDIS_URL") != "" {
		all = append(all, backend{
			name: "redis",
			rate: func(t *testing.T, perMinute int) rateLimiter {
				return NewRedisRate(testRedis(t), testPrefix(t), perMinute)
			},
			lockout: func(t *testing.T, max int, window, hold time.Duration) lockout {
				return NewRedisLockout(testRedis(t), testPrefix(t), max, window, hold)
			},
			// A little past d: Redis expires keys on its own clock.
			advance: func(d time.Duration) { time.Sleep(d + 20*time.Millisecond) },
		})
	}
	return all
}

func TestRateAllowsBudgetThenRefills(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			// 60 a minute refills one a second, short enough to wait for.
			const perMinute = 60
			l := b.rate(t, perMinute)
			for i := range perMinute {
				if wait := allow(t, l, "10.0.0.1"); wait != 0 {
					t.Fatalf("event %d of %d refused, retry after %v", i+1, perMinute, wait)
				}
			}
			wait := allow(t, l, "10.0.0.1")
			if wait <= 0 || wait > time.Second {
				t.Fatalf("over the budget: retry after %v, want within (0, 1s]", wait)
			}
			if w := allow(t, l, "10.0.0.2"); w != 0 {
				t.Fatalf("another key was refused (retry after %v)", w)
			}
			b.advance(wait)
			if w := allow(t, l, "10.0.0.1"); w != 0 {
				t.Fatalf("after the announced wait: refused again, retry after %v", w)
			}
			if w := allow(t, l, "10.0.0.1"); w <= 0 {
				t.Fatalf("the refill was one event, but a second one went through")
			}
		})
	}
}

func TestRateRefusalSpendsNothing(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l := b.rate(t, 1)
			if w := allow(t, l, "k"); w != 0 {
				t.Fatalf("first event refused: %v", w)
			}
			first := allow(t, l, "k")
			for range 5 {
				allow(t, l, "k")
			}
			// Refused attempts must not push the next allowed event further
			// away, or a client that keeps trying would never get through.
			if again := allow(t, l, "k"); again > first {
				t.Fatalf("retry after grew from %v to %v while refused", first, again)
			}
		})
	}
}

func TestRedisErrorsAreReported(t *testing.T) {
	t.Parallel()
	// A server that is not there: the limiters answer an error, never a
	// silent "allowed".
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	if _, err := NewRedisRate(client, "x:", 10).Allow(t.Context(), "k"); err == nil {
		t.Error("RedisRate.Allow: no error without a server")
	}
	l := NewRedisLockout(client, "x:", 3, time.Minute, time.Minute)
	if _, err := l.Begin(t.Context(), "k"); err == nil {
		t.Error("RedisLockout.Begin: no error without a server")
	}
	if err := l.End(t.Context(), "k", Attempt{id: "x"}, Failed); err == nil {
		t.Error("RedisLockout.End: no error without a server")
	}
}

func allow(t *testing.T, l rateLimiter, key string) time.Duration {
	t.Helper()
	wait, err := l.Allow(t.Context(), key)
	if err != nil {
		t.Fatalf("Allow(%q): %v", key, err)
	}
	return wait
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testRedis connects to the Redis of TEST_REDIS_URL. When a run names one,
// Redis is part of its setup like PostgreSQL: if it cannot be reached the
// test fails rather than skips.
func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	url := os.Getenv("TEST_REDIS_URL")
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("TEST_REDIS_URL: %v", err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	if err := client.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("Redis at %s is not reachable (start it: redis-server --daemonize yes): %v", url, err)
	}
	return client
}

// testPrefix is a key prefix no other test uses; the keys under it are
// deleted when the test ends.
func testPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	prefix := "tokenauth-test:" + hex.EncodeToString(b) + ":"
	client := testRedis(t)
	t.Cleanup(func() {
		ctx := context.Background()
		for _, pattern := range []string{prefix + "*", "rate:" + prefix + "*"} {
			iter := client.Scan(ctx, 0, pattern, 100).Iterator()
			for iter.Next(ctx) {
				client.Del(ctx, iter.Val())
			}
		}
	})
	return prefix
}
