package controllers

import (
	"context"
	"time"
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
