package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"tokenauth/keyring"
	"tokenauth/metrics"
	"tokenauth/models"
	"tokenauth/password"
	"tokenauth/ratelimit"
)

// LoginCounter counts failed password checks per key and locks a key that
// has too many (ratelimit.MemoryLockout or ratelimit.RedisLockout). Begin
// takes a place in the key's budget before a check, waiting while the
// checks in flight fill it, so that parallel guesses cannot overtake the
// count while parallel right passwords all get their turn; End gives the
// place back with what the check found.
type LoginCounter interface {
	Begin(ctx context.Context, key string) (ratelimit.Attempt, error)
	End(ctx context.Context, key string, a ratelimit.Attempt, outcome ratelimit.Outcome) error
	// Clear forgets the failures of key, without an attempt.
	Clear(ctx context.Context, key string) error
}

// Lockout guards every check of a user's password (logins, password
// changes) with one budget of failures per username: they all guess the
// same secret.
type Lockout struct {
	counter LoginCounter
	keys    *keyring.Keyring
	metrics *metrics.Metrics
}

// NewLockout returns a Lockout counting in counter under keys made with
// keys, and reporting to m the usernames it refuses, as hits of the
// "username" limit.
func NewLockout(counter LoginCounter, keys *keyring.Keyring, m *metrics.Metrics) *Lockout {
	return &Lockout{counter: counter, keys: keys, metrics: m}
}

// endTimeout bounds giving a place back, which runs even when the request
// has run out of time: a place not given back in Redis holds the budget
// until it expires.
const endTimeout = 2 * time.Second

// lockRefusal is a check refused because its username is locked.
type lockRefusal struct {
	wait time.Duration
	// digest is the username's models.UsernameDigest, for its event.
	digest string
}

// guard runs check, a check of username's password, as one attempt on
// the username's budget. It waits, within ctx, while the checks in flight
// fill the budget, and refuses (returning a lockRefusal, without running
// check) while the username is locked. check reports what it found, and
// its error is guard's.
//
// The key is the username's keyed hash (models.UsernameDigest), so that
// every spelling of a name shares one count, and neither the name nor a
// plain hash of it (a password typed as a username would be found by
// dictionary) is written to Redis. A counter that cannot answer is an
// outage (503), never a check let through uncounted.
func (l *Lockout) guard(ctx context.Context, username string, check func() (ratelimit.Outcome, error)) (*lockRefusal, error) {
	key := models.UsernameDigest(l.keys.HMAC, username)
	attempt, err := l.counter.Begin(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
	if attempt.Locked > 0 {
		l.metrics.RateLimitHit("username")
		return &lockRefusal{wait: attempt.Locked, digest: key}, nil
	}
	// The place is given back however check ends, a panic included: in
	// memory nothing else would.
	ended := false
	defer func() {
		if !ended {
			_ = l.end(ctx, key, attempt, ratelimit.Failed)
		}
	}()
	outcome, checkErr := check()
	ended = true
	if err := l.end(ctx, key, attempt, outcome); err != nil {
		// Unrecorded, a failure would not count and a success would not
		// clear the failures: neither answer stands.
		return nil, fmt.Errorf("%w: %w", models.ErrUnavailable, errors.Join(err, checkErr))
	}
	return nil, checkErr
}

// end gives back the place of attempt with its outcome. It runs even when
// the request has run out of time, within endTimeout.
func (l *Lockout) end(ctx context.Context, key string, attempt ratelimit.Attempt, outcome ratelimit.Outcome) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	return l.counter.End(ctx, key, attempt, outcome)
}

// clear forgets the failures counted for username: its password was set by
// other means (a reset link), which ends the guessing of the old one.
func (l *Lockout) clear(ctx context.Context, username string) error {
	if err := l.counter.Clear(ctx, models.UsernameDigest(l.keys.HMAC, username)); err != nil {
		return fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
	return nil
}

// outcomeOf tells what a password check that ended with err found: a
// success (err is nil), no guess at all (it could not get a password-hash
// slot in time, so no password was compared), or otherwise a failure. A
// wrong password, a right one for a disabled account, and anything that
// went wrong after the hash (an outage, the request's deadline) all count
// as failures: the password may have been compared.
func outcomeOf(err error) ratelimit.Outcome {
	switch {
	case err == nil:
		return ratelimit.Succeeded
	case errors.Is(err, password.ErrNoSlot):
		return ratelimit.Abandoned
	}
	return ratelimit.Failed
}
