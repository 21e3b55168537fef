package ratelimit

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// MemoryRate allows each key perMinute events a minute, as a token bucket
// that refills continuously (a burst of perMinute, then one every
// minute/perMinute). Its state lives in this process only.
type MemoryRate struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

// NewMemoryRate returns a MemoryRate allowing perMinute events per key and
// minute.
func NewMemoryRate(perMinute int) *MemoryRate {
	return &MemoryRate{
		limit:   rate.Every(time.Minute / time.Duration(perMinute)),
		burst:   perMinute,
		now:     time.Now,
		buckets: map[string]*rate.Limiter{},
	}
}

// Allow spends one event of key's budget. When the budget is spent it
// spends nothing and returns how long until the next event is allowed.
func (m *MemoryRate) Allow(_ context.Context, key string) (time.Duration, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	b, ok := m.buckets[key]
	if !ok {
		b = rate.NewLimiter(m.limit, m.burst)
		m.buckets[key] = b
	}
	r := b.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		return wait, nil
	}
	return 0, nil
}

// sweep drops full buckets: a full bucket is the same as a new one.
func (m *MemoryRate) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for key, b := range m.buckets {
		if b.TokensAt(now) >= float64(m.burst) {
			delete(m.buckets, key)
		}
	}
}

// MemoryLockout counts attempts per key within a window that starts at the
// first one; the attempt that reaches maxFailures locks the key for a whole
// window from then. Its state lives in this process only.
type MemoryLockout struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu        sync.Mutex
	keys      map[string]*lockoutEntry
	lastSweep time.Time
}

type lockoutEntry struct {
	count int
	until time.Time // when the count is forgotten
}

// NewMemoryLockout returns a MemoryLockout that locks a key for window after
// maxFailures failed attempts within window.
func NewMemoryLockout(maxFailures int, window time.Duration) *MemoryLockout {
	return &MemoryLockout{max: maxFailures, window: window, now: time.Now, keys: map[string]*lockoutEntry{}}
}

// Attempt counts an attempt on key as a failure before it is made, so that
// parallel attempts cannot overtake the count; Clear forgets them after a
// success. When key is locked it counts nothing and returns how long the
// lock still lasts.
func (m *MemoryLockout) Attempt(_ context.Context, key string) (time.Duration, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	e, ok := m.keys[key]
	if !ok || !now.Before(e.until) {
		e = &lockoutEntry{until: now.Add(m.window)}
		m.keys[key] = e
	}
	if e.count >= m.max {
		return e.until.Sub(now), nil
	}
	e.count++
	if e.count == m.max {
		e.until = now.Add(m.window)
	}
	return 0, nil
}

// Clear forgets key's attempts.
func (m *MemoryLockout) Clear(_ context.Context, key string) error {
	m.mu.Lock()
	delete(m.keys, key)
	m.mu.Unlock()
	return nil
}

func (m *MemoryLockout) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for key, e := range m.keys {
		if !now.Before(e.until) {
			delete(m.keys, key)
		}
	}
}
