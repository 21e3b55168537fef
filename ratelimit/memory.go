package ratelimit

import (
	"context"
	"fmt"
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

// MemoryLockout counts failed attempts per key within a window that
// starts at the first one; the failure that reaches maxFailures locks the
// key for a whole window from then. Attempts in flight hold their place in
// the budget (see Attempt). Its state lives in this process only, so an
// attempt in flight is always ended by the request that began it.
type MemoryLockout struct {
	max    int
	window time.Duration
	now    func() time.Time
	onWait func()

	mu        sync.Mutex
	keys      map[string]*lockoutEntry
	lastSweep time.Time
}

type lockoutEntry struct {
	failures int
	until    time.Time // when the failures are forgotten
	inFlight int
	// ended is closed, and replaced, whenever an attempt on the key
	// ends: it wakes the attempts waiting for a place.
	ended chan struct{}
}

// NewMemoryLockout returns a MemoryLockout that locks a key for window after
// maxFailures failed attempts within window.
func NewMemoryLockout(maxFailures int, window time.Duration) *MemoryLockout {
	return &MemoryLockout{max: maxFailures, window: window, now: time.Now, keys: map[string]*lockoutEntry{}}
}

// OnWait has f called whenever an attempt starts waiting for a place (once
// per attempt). Set it before the lockout is used.
func (m *MemoryLockout) OnWait(f func()) { m.onWait = f }

// Begin takes a place in key's budget for an attempt, waiting while the
// failures and the attempts in flight fill it, until ctx ends. A locked
// key is refused at once, taking nothing.
func (m *MemoryLockout) Begin(ctx context.Context, key string) (Attempt, error) {
	for waited := false; ; waited = true {
		m.mu.Lock()
		now := m.now()
		m.sweep(now)
		e := m.entry(key, now)
		if e.failures >= m.max {
			m.mu.Unlock()
			return Attempt{Locked: e.until.Sub(now)}, nil
		}
		if e.failures+e.inFlight < m.max {
			e.inFlight++
			m.mu.Unlock()
			return Attempt{}, nil
		}
		ended := e.ended
		m.mu.Unlock()
		if !waited && m.onWait != nil {
			m.onWait()
		}
		select {
		case <-ended:
		case <-ctx.Done():
			return Attempt{}, fmt.Errorf("waiting for the attempts in flight: %w", ctx.Err())
		}
	}
}

// End gives back the place of an attempt that Begin let go ahead, and
// counts its outcome.
func (m *MemoryLockout) End(_ context.Context, key string, _ Attempt, outcome Outcome) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	e := m.entry(key, now)
	e.inFlight = max(e.inFlight-1, 0)
	switch outcome {
	case Succeeded:
		e.failures = 0
	case Failed:
		if e.failures == 0 {
			e.until = now.Add(m.window)
		}
		e.failures++
		if e.failures == m.max {
			e.until = now.Add(m.window)
		}
	}
	close(e.ended)
	e.ended = make(chan struct{})
	if e.failures == 0 && e.inFlight == 0 {
		delete(m.keys, key)
	}
	return nil
}

// Clear forgets key's failures, as a success would, without an attempt:
// for a password set by other means (a reset link), which ends the
// guessing of the old one.
func (m *MemoryLockout) Clear(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.keys[key]
	if !ok {
		return nil
	}
	e.failures = 0
	close(e.ended)
	e.ended = make(chan struct{})
	if e.inFlight == 0 {
		delete(m.keys, key)
	}
	return nil
}

// entry returns key's entry, with failures whose window has ended
// forgotten. Call it with m.mu held.
func (m *MemoryLockout) entry(key string, now time.Time) *lockoutEntry {
	e, ok := m.keys[key]
	if !ok {
		e = &lockoutEntry{ended: make(chan struct{})}
		m.keys[key] = e
	}
	if e.failures > 0 && !now.Before(e.until) {
		e.failures = 0
	}
	return e
}

func (m *MemoryLockout) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for key, e := range m.keys {
		if e.inFlight == 0 && (e.failures == 0 || !now.Before(e.until)) {
			delete(m.keys, key)
		}
	}
}
