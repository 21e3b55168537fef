package ratelimit

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// begin begins an attempt on key and fails the test on an error.
func begin(t *testing.T, l lockout, key string) Attempt {
	t.Helper()
	a, err := l.Begin(t.Context(), key)
	if err != nil {
		t.Fatalf("Begin(%q): %v", key, err)
	}
	return a
}

func end(t *testing.T, l lockout, key string, a Attempt, outcome Outcome) {
	t.Helper()
	if err := l.End(t.Context(), key, a, outcome); err != nil {
		t.Fatalf("End(%q): %v", key, err)
	}
}

// fail makes one attempt on key that fails, and returns how long the key
// was locked instead when it was.
func fail(t *testing.T, l lockout, key string) time.Duration {
	t.Helper()
	a := begin(t, l, key)
	if a.Locked > 0 {
		return a.Locked
	}
	end(t, l, key, a, Failed)
	return 0
}

func TestLockoutLocksAfterMaxFailures(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			const window = 400 * time.Millisecond
			l := b.lockout(t, 3, window, time.Minute)
			for i := range 3 {
				if locked := fail(t, l, "alice"); locked != 0 {
					t.Fatalf("attempt %d refused, locked for %v", i+1, locked)
				}
			}
			locked := begin(t, l, "alice").Locked
			if locked <= 0 || locked > window {
				t.Fatalf("fourth attempt: locked for %v, want within (0, %v]", locked, window)
			}
			if a := begin(t, l, "bob"); a.Locked != 0 {
				t.Fatalf("another key is locked too (%v)", a.Locked)
			}
			// Attempts while locked take no place and do not extend the lock.
			for range 3 {
				if a := begin(t, l, "alice"); a.Locked <= 0 {
					t.Fatal("locked key let an attempt go ahead")
				}
			}
			b.advance(locked)
			if a := begin(t, l, "alice"); a.Locked != 0 {
				t.Fatalf("still locked (%v) after the lock ended", a.Locked)
			}
		})
	}
}

func TestLockoutSuccessForgetsFailures(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l := b.lockout(t, 2, time.Minute, time.Minute)
			fail(t, l, "alice")
			end(t, l, "alice", begin(t, l, "alice"), Succeeded)
			// Without the success this would be the locking failure.
			if locked := fail(t, l, "alice"); locked != 0 {
				t.Fatalf("after a success: locked for %v", locked)
			}
			if locked := fail(t, l, "alice"); locked != 0 {
				t.Fatalf("second failure after a success: locked for %v", locked)
			}
			if a := begin(t, l, "alice"); a.Locked <= 0 {
				t.Fatal("not locked after two failures")
			}
		})
	}
}

func TestLockoutAbandonedAttemptsCountNothing(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l := b.lockout(t, 1, time.Minute, time.Minute)
			for i := range 3 {
				a := begin(t, l, "alice")
				if a.Locked != 0 {
					t.Fatalf("attempt %d after %d abandoned ones: locked for %v", i+1, i, a.Locked)
				}
				end(t, l, "alice", a, Abandoned)
			}
		})
	}
}

func TestLockoutLastsAWholeWindowFromTheLockingFailure(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			const window = 4 * time.Second
			l := b.lockout(t, 2, window, time.Minute)
			fail(t, l, "alice")
			b.advance(window / 2)
			fail(t, l, "alice") // locks now, for a whole window
			// Counted from the first failure, half a window (or less, had
			// the wait overrun) would be left; counted from the locking
			// one, nearly all of it.
			if locked := begin(t, l, "alice").Locked; locked <= window*3/4 || locked > window {
				t.Fatalf("lock left %v, want nearly %v", locked, window)
			}
		})
	}
}

// Parallel attempts beyond the budget wait for those in flight: failing
// ones never get more than the budget's attempts before the lock, and
// succeeding ones all go ahead.
func TestLockoutParallelAttempts(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		for _, tc := range []struct {
			outcome      Outcome
			wantAhead    int
			wantRefusals int
		}{
			{Failed, 5, 35},
			{Succeeded, 40, 0},
		} {
			name := map[Outcome]string{Failed: "failing", Succeeded: "succeeding"}[tc.outcome]
			t.Run(b.name+"/"+name, func(t *testing.T) {
				const maxFailures, parallel = 5, 40
				l := b.lockout(t, maxFailures, time.Minute, time.Minute)
				var ahead, refused atomic.Int64
				var wg sync.WaitGroup
				for range parallel {
					wg.Go(func() {
						a, err := l.Begin(context.Background(), "alice")
						if err != nil {
							t.Error(err)
							return
						}
						if a.Locked > 0 {
							refused.Add(1)
							return
						}
						ahead.Add(1)
						if err := l.End(context.Background(), "alice", a, tc.outcome); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
				if ahead.Load() != int64(tc.wantAhead) || refused.Load() != int64(tc.wantRefusals) {
					t.Fatalf("%d parallel attempts: %d went ahead and %d were refused, want %d and %d",
						parallel, ahead.Load(), refused.Load(), tc.wantAhead, tc.wantRefusals)
				}
			})
		}
	}
}

func TestLockoutWaitsForAPlaceUntilTheContextEnds(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l := b.lockout(t, 2, time.Minute, time.Minute)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// The context ends once the attempt waits.
			var waits atomic.Int64
			l.OnWait(func() { waits.Add(1); cancel() })
			fail(t, l, "alice")
			held := begin(t, l, "alice") // fills the budget with the failure
			if a, err := l.Begin(ctx, "alice"); !errors.Is(err, context.Canceled) {
				t.Fatalf("Begin with the budget full and the context done: %+v, %v; want context.Canceled", a, err)
			}
			// The place it waited for comes free: the next attempt goes ahead.
			end(t, l, "alice", held, Succeeded)
			if a := begin(t, l, "alice"); a.Locked != 0 {
				t.Fatalf("after the attempt in flight succeeded: %+v", a)
			}
			if n := waits.Load(); n != 1 {
				t.Fatalf("%d waits, want 1: the attempt whose context ended", n)
			}
		})
	}
}

// A waiting attempt goes ahead as soon as the one in flight ends.
func TestLockoutWaiterGoesAheadWhenAPlaceComesFree(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l := b.lockout(t, 1, time.Minute, time.Minute)
			first := begin(t, l, "alice")
			second := make(chan Attempt, 1)
			go func() {
				a, err := l.Begin(context.Background(), "alice")
				if err != nil {
					t.Error(err)
				}
				second <- a
			}()
			end(t, l, "alice", first, Succeeded)
			if a := <-second; a.Locked != 0 {
				t.Fatalf("the second attempt was refused: %+v", a)
			}
		})
	}
}

func TestMemorySweepsForgottenKeys(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := NewMemoryRate(10)
	r.now = clock.Now
	lk := NewMemoryLockout(3, time.Minute)
	lk.now = clock.Now
	for i := range 1000 {
		key := "k" + string(rune('a'+i%26)) + hex.EncodeToString([]byte{byte(i), byte(i >> 8)})
		allow(t, r, key)
		fail(t, lk, key)
	}
	held := begin(t, lk, "in flight")
	clock.Advance(2 * time.Minute)
	allow(t, r, "fresh")
	fail(t, lk, "fresh")
	if n := len(r.buckets); n != 1 {
		t.Errorf("rate buckets after everything refilled: %d, want 1", n)
	}
	// An attempt in flight keeps its key, however long it takes.
	if n := len(lk.keys); n != 2 {
		t.Errorf("lockout keys after every window ended: %d, want 2 (one in flight, one fresh)", n)
	}
	end(t, lk, "in flight", held, Succeeded)
	if _, ok := lk.keys["in flight"]; ok {
		t.Error("a key with no failure and nothing in flight is kept")
	}
}

// The place of an attempt whose instance died expires after hold: the
// username is not locked for longer, and nothing was counted.
func TestRedisLockoutPlaceOfADeadInstanceExpires(t *testing.T) {
	t.Parallel()
	if !redisConfigured() {
		t.Skip("no TEST_REDIS_URL: this is a test of the Redis form only")
	}
	client, prefix := testRedis(t), testPrefix(t)
	const hold = 300 * time.Millisecond
	dead := NewRedisLockout(client, prefix, 1, time.Minute, hold)
	alive := NewRedisLockout(client, prefix, 1, time.Minute, hold)
	var waits atomic.Int64
	alive.OnWait(func() { waits.Add(1) })
	if a := begin(t, dead, "alice"); a.Locked != 0 {
		t.Fatalf("first attempt refused: %+v", a)
	}
	// The instance dies here: its attempt never ends.
	if a := begin(t, alive, "alice"); a.Locked != 0 || waits.Load() != 1 {
		t.Fatalf("attempt after a dead instance's: %+v after %d waits, want one that waited and went ahead", a, waits.Load())
	}
}

// Waiting for an attempt in flight on another instance costs a fixed
// number of commands, however long it waits: the end is published, not
// polled for.
func TestRedisLockoutWaitingPollsNothing(t *testing.T) {
	t.Parallel()
	if !redisConfigured() {
		t.Skip("no TEST_REDIS_URL: this is a test of the Redis form only")
	}
	prefix := testPrefix(t)
	counted := testRedis(t)
	var scripts atomic.Int64
	counted.AddHook(scriptCounter{&scripts})
	first := NewRedisLockout(testRedis(t), prefix, 1, time.Minute, time.Minute)
	second := NewRedisLockout(counted, prefix, 1, time.Minute, time.Minute)
	var waits atomic.Int64
	second.OnWait(func() { waits.Add(1) })

	held := begin(t, first, "alice")
	done := make(chan Attempt, 1)
	go func() {
		a, err := second.Begin(context.Background(), "alice")
		if err != nil {
			t.Error(err)
		}
		done <- a
	}()
	// One try, then listening, then one more try before it waits.
	waitUntil(t, func() bool { return scripts.Load() >= 2 })
	// A poller would show itself here, at any interval under a second.
	time.Sleep(time.Second)
	if n := scripts.Load(); n != 2 {
		t.Fatalf("%d scripts run while waiting, want 2", n)
	}
	end(t, first, "alice", held, Succeeded)
	if a := <-done; a.Locked != 0 || waits.Load() != 1 {
		t.Fatalf("the waiting attempt: %+v after %d waits, want one that waited and went ahead", a, waits.Load())
	}
	if n := scripts.Load(); n != 3 {
		t.Fatalf("%d scripts run to wait for one end, want 3", n)
	}
}

// redisConfigured tells whether this run has a Redis (TEST_REDIS_URL;
// .ci/run sets it), as backends does.
func redisConfigured() bool { return os.Getenv("TEST_REDIS_URL") != "" }

// scriptCounter counts the scripts a client runs.
type scriptCounter struct{ n *atomic.Int64 }

func (scriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c scriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			// Script.Run falls back from EVALSHA to EVAL once per server:
			// count the script, not the fallback.
			err := next(ctx, cmd)
			if name == "eval" || !redis.HasErrorPrefix(err, "NOSCRIPT") {
				c.n.Add(1)
			}
			return err
		}
		return next(ctx, cmd)
	}
}

func (scriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// waitUntil polls cond until it holds, for at most ten seconds.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
