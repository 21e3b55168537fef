// Package ratelimit keeps the counters behind the service's throttles: a
// budget of requests per key and minute (per client IP), and a count of
// failures per key that locks the key for a window (per username), with
// the attempts in flight holding their place in it. Each
// comes in two forms with the same behaviour: in the memory of one process,
// or in Redis, so that several instances share one count.
package ratelimit

import "time"

// sweepEvery is how often the in-memory limiters drop keys that no longer
// hold anything, so that a flood of distinct keys cannot grow them without
// bound.
const sweepEvery = time.Minute
