package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"tokenauth/metrics"
	"tokenauth/models"
)

// LoginCounter counts failed logins per key and locks a key that has too
// many (ratelimit.MemoryLockout or ratelimit.RedisLockout). Attempt counts
// an attempt before the password is checked, so that parallel guesses
// cannot overtake the count, and returns how long the key is still locked
// (0: go ahead); Clear forgets the failures after a successful check.
type LoginCounter interface {
	Attempt(ctx context.Context, key string) (wait time.Duration, err error)
	Clear(ctx context.Context, key string) error
}

// Lockout guards every check of a user's password (logins, password
// changes) with one budget of failures per username: they all guess the
// same secret.
type Lockout struct {
	counter LoginCounter
	metrics *metrics.Metrics
}

// NewLockout returns a Lockout counting in counter and reporting the
// usernames it refuses to m as hits of the "username" limit.
func NewLockout(counter LoginCounter, m *metrics.Metrics) *Lockout {
	return &Lockout{counter: counter, metrics: m}
}

// key is what the lockout counts under for a username: the SHA-256 of its
// folded form, so that every spelling of a name shares one count, and a
// password typed into the username field is not written to Redis.
func (l *Lockout) key(username string) string {
	sum := sha256.Sum256([]byte(models.UsernameKey(username)))
	return hex.EncodeToString(sum[:])
}

// attempt counts an attempt for username and returns how long it is still
// locked. A counter that cannot answer is an outage (503), never an
// attempt let through uncounted.
func (l *Lockout) attempt(ctx context.Context, username string) (time.Duration, error) {
	wait, err := l.counter.Attempt(ctx, l.key(username))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
	if wait > 0 {
		l.metrics.RateLimitHit("username")
	}
	return wait, nil
}

// clear forgets the failures counted for username.
func (l *Lockout) clear(ctx context.Context, username string) error {
	if err := l.counter.Clear(ctx, l.key(username)); err != nil {
		return fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
	return nil
}
