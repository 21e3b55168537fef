package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Quota is a budget of Requests per Period, spent as a token bucket (GCRA
// in Redis): a burst of Requests, refilled continuously, so that a steady
// rate under the budget is never refused.
type Quota struct {
	Requests int
	Period   time.Duration
}

// QuotaResult is the state of a key's budget after one request.
type QuotaResult struct {
	// Allowed is false when the request was refused; it spent nothing.
	Allowed bool
	// Remaining is how many more requests the budget allows now.
	Remaining int
	// Reset is how long until the budget is whole again.
	Reset time.Duration
	// RetryAfter, for a refused request, is how long until one is allowed.
	RetryAfter time.Duration
}

// QuotaLimiter spends one request of a key's budget: MemoryQuota or
// RedisQuota. The quota travels with every call, so that a changed budget
// applies at once.
type QuotaLimiter interface {
	AllowQuota(ctx context.Context, key string, q Quota, now time.Time) (QuotaResult, error)
}

// MemoryQuota keeps budgets in this process's memory, as x/time/rate
// token buckets on the caller's clock.
type MemoryQuota struct {
	mu        sync.Mutex
	buckets   map[string]*quotaBucket
	lastSweep time.Time
}

type quotaBucket struct {
	quota   Quota
	limiter *rate.Limiter
}

// NewMemoryQuota returns an empty MemoryQuota.
func NewMemoryQuota() *MemoryQuota {
	return &MemoryQuota{buckets: map[string]*quotaBucket{}}
}

// AllowQuota spends one request of key's budget q at now.
func (m *MemoryQuota) AllowQuota(_ context.Context, key string, q Quota, now time.Time) (QuotaResult, error) {
	every := q.Period / time.Duration(q.Requests)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	b, ok := m.buckets[key]
	if !ok || b.quota != q {
		b = &quotaBucket{quota: q, limiter: rate.NewLimiter(rate.Every(every), q.Requests)}
		m.buckets[key] = b
	}
	res := QuotaResult{Allowed: true}
	r := b.limiter.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		res.Allowed, res.RetryAfter = false, wait
	}
	tokens := b.limiter.TokensAt(now)
	res.Remaining = max(int(math.Floor(tokens)), 0)
	res.Reset = time.Duration((float64(q.Requests) - tokens) * float64(every))
	return res, nil
}

// sweep drops full buckets: a full bucket is the same as a new one.
func (m *MemoryQuota) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for key, b := range m.buckets {
		if b.limiter.TokensAt(now) >= float64(b.quota.Requests) {
			delete(m.buckets, key)
		}
	}
}

// RedisQuota keeps budgets in Redis, shared by every instance that uses
// the same server and prefix, with redis_rate's GCRA on Redis's clock.
type RedisQuota struct {
	limiter *redis_rate.Limiter
	prefix  string
}

// NewRedisQuota returns a RedisQuota whose keys start with prefix.
func NewRedisQuota(client *redis.Client, prefix string) *RedisQuota {
	return &RedisQuota{limiter: redis_rate.NewLimiter(client), prefix: prefix}
}

// AllowQuota spends one request of key's budget q; now is Redis's, not
// the caller's.
func (r *RedisQuota) AllowQuota(ctx context.Context, key string, q Quota, _ time.Time) (QuotaResult, error) {
	res, err := r.limiter.Allow(ctx, r.prefix+key, redis_rate.Limit{Rate: q.Requests, Burst: q.Requests, Period: q.Period})
	if err != nil {
		return QuotaResult{}, fmt.Errorf("rate limit in Redis: %w", err)
	}
	out := QuotaResult{Allowed: res.Allowed > 0, Remaining: max(res.Remaining, 0), Reset: max(res.ResetAfter, 0)}
	if !out.Allowed {
		out.RetryAfter = max(res.RetryAfter, time.Millisecond)
	}
	return out, nil
}
