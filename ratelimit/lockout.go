package ratelimit

import "time"

// A lockout (MemoryLockout, RedisLockout) counts the failed attempts on
// each key and locks a key that has too many. Attempts in flight hold a
// place in the key's budget from Begin to End, so that parallel attempts
// cannot overtake the count: while the failures plus the attempts in
// flight fill the budget, Begin waits for one of them to end instead of
// refusing, and only failures lock. A parallel burst of wrong guesses thus
// gets at most the budget's attempts before the lock, and a parallel burst
// of right ones all go ahead, each in turn.

// Attempt is what Begin answers: an attempt that may go ahead, or how long
// the key is still locked.
type Attempt struct {
	// Locked, when positive, is how long the key stays locked: the
	// attempt is refused and holds nothing (End is not called).
	Locked time.Duration
	// id names the attempt's place in flight, for End.
	id string
}

// Outcome is how an attempt ended.
type Outcome int

const (
	// Abandoned attempts were never made (the check could not run): they
	// free their place and count nothing.
	Abandoned Outcome = iota
	// Failed attempts count as failures; the one that fills the budget
	// locks the key for a whole window.
	Failed
	// Succeeded attempts forget the key's failures.
	Succeeded
)
