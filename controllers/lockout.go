package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"tokenauth/models"
)

// LoginLockout counts failed logins per username and locks a username that
// has too many (ratelimit.MemoryLockout or ratelimit.RedisLockout).
// Attempt counts an attempt before the password is checked, so that
// parallel guesses cannot overtake the count, and returns how long the
// username is still locked (0: go ahead); Clear forgets the failures after
// a successful login.
type LoginLockout interface {
	Attempt(ctx context.Context, key string) (wait time.Duration, err error)
	Clear(ctx context.Context, key string) error
}

// lockoutKey is what the lockout counts under for a username: the SHA-256
// of its folded form, so that every spelling of a name shares one count,
// and a password typed into the username field is not written to Redis.
func lockoutKey(username string) string {
	sum := sha256.Sum256([]byte(models.UsernameKey(username)))
	return hex.EncodeToString(sum[:])
}

// attemptLockout counts an attempt under key and returns how long the key
// is still locked. A lockout that cannot answer is an outage (503), never
// an attempt let through uncounted.
func attemptLockout(ctx context.Context, l LoginLockout, key string) (time.Duration, error) {
	wait, err := l.Attempt(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
	return wait, nil
}

// clearLockout forgets the failures counted under key.
func clearLockout(ctx context.Context, l LoginLockout, key string) error {
	if err := l.Clear(ctx, key); err != nil {
		return fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
	return nil
}
