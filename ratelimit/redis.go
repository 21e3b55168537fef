package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// RedisRate is MemoryRate with its state in Redis, shared by every
// instance that uses the same server and prefix. It uses redis_rate's
// GCRA, which behaves as the token bucket of MemoryRate, on Redis's clock.
type RedisRate struct {
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	prefix  string
}

// NewRedisRate returns a RedisRate allowing perMinute events per key and
// minute; its keys start with prefix.
func NewRedisRate(client *redis.Client, prefix string, perMinute int) *RedisRate {
	return &RedisRate{limiter: redis_rate.NewLimiter(client), limit: redis_rate.PerMinute(perMinute), prefix: prefix}
}

// Allow spends one event of key's budget. When the budget is spent it
// spends nothing and returns how long until the next event is allowed.
func (r *RedisRate) Allow(ctx context.Context, key string) (time.Duration, error) {
	res, err := r.limiter.Allow(ctx, r.prefix+key, r.limit)
	if err != nil {
		return 0, fmt.Errorf("rate limit in Redis: %w", err)
	}
	if res.Allowed == 0 {
		return max(res.RetryAfter, time.Millisecond), nil
	}
	return 0, nil
}

// The lockout keeps three keys per key K, in one hash slot (the braces):
// {K}:failures counts failures and expires with the window (or the lock);
// {K}:in-flight is a sorted set of the attempts in flight, each scored by
// when its place expires, so that an instance that dies mid-attempt
// cannot hold a place for longer than hold; {K}:waiting is set while an
// attempt waits, so that End publishes only when someone listens.

// beginScript is MemoryLockout.Begin's decision in one atomic step on the
// Redis server, on its clock. KEYS: failures, in-flight, waiting; ARGV: the
// maximum, hold in milliseconds, the attempt's id. It answers {0, 0} when
// the attempt took a place, {1, ms} when the key is locked for ms more,
// and {2, ms} when it must wait, ms being when the first place in flight
// expires at the latest.
var beginScript = redis.NewScript(`
local now = redis.call("TIME")
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local max = tonumber(ARGV[1])
local hold = tonumber(ARGV[2])
local failures = tonumber(redis.call("GET", KEYS[1]) or "0")
if failures >= max then
  local left = redis.call("PTTL", KEYS[1])
  if left > 0 then return {1, left} end
  return {1, 1}
end
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", now)
if failures + redis.call("ZCARD", KEYS[2]) < max then
  redis.call("ZADD", KEYS[2], now + hold, ARGV[3])
  redis.call("PEXPIRE", KEYS[2], hold)
  return {0, 0}
end
redis.call("SET", KEYS[3], "1", "PX", hold)
local first = redis.call("ZRANGE", KEYS[2], 0, 0, "WITHSCORES")
return {2, math.max(tonumber(first[2]) - now, 1)}
`)

// endScript is MemoryLockout.End on the Redis server. KEYS: failures,
// in-flight, waiting; ARGV: the attempt's id, its outcome, the maximum,
// the window in milliseconds, the channel to publish on. A failure counts
// even when its place expired meanwhile: the check was made.
var endScript = redis.NewScript(`
redis.call("ZREM", KEYS[2], ARGV[1])
if ARGV[2] == "succeeded" then
  redis.call("DEL", KEYS[1])
elseif ARGV[2] == "failed" then
  local count = redis.call("INCR", KEYS[1])
  if count == 1 or count == tonumber(ARGV[3]) then
    redis.call("PEXPIRE", KEYS[1], ARGV[4])
  end
end
if redis.call("DEL", KEYS[3]) == 1 then
  redis.call("PUBLISH", ARGV[5], "")
end
return 0
`)

// clearScript is MemoryLockout.Clear on the Redis server. KEYS: failures,
// waiting; ARGV: the channel to publish on.
var clearScript = redis.NewScript(`
redis.call("DEL", KEYS[1])
if redis.call("DEL", KEYS[2]) == 1 then
  redis.call("PUBLISH", ARGV[1], "")
end
return 0
`)

// RedisLockout is MemoryLockout with its state in Redis, shared by every
// instance that uses the same server and prefix. An attempt waiting for a
// place hears the end of the attempts in flight, on any instance, through
// Redis's publish and subscribe; it polls nothing.
type RedisLockout struct {
	client  *redis.Client
	max     int
	window  time.Duration
	hold    time.Duration
	prefix  string
	wakeups *wakeups
	onWait  func()
}

// NewRedisLockout returns a RedisLockout that locks a key for window after
// maxFailures failed attempts within window; its keys start with prefix.
// An attempt's place in flight expires after hold, should its instance
// die before it ends: make hold longer than any attempt takes.
func NewRedisLockout(client *redis.Client, prefix string, maxFailures int, window, hold time.Duration) *RedisLockout {
	return &RedisLockout{client: client, max: maxFailures, window: window, hold: hold, prefix: prefix,
		wakeups: newWakeups(client, prefix+"ended:")}
}

func (r *RedisLockout) keys(key string) []string {
	base := r.prefix + "{" + key + "}"
	return []string{base + ":failures", base + ":in-flight", base + ":waiting"}
}

// OnWait has f called whenever an attempt starts waiting for a place (once
// per attempt). Set it before the lockout is used.
func (r *RedisLockout) OnWait(f func()) { r.onWait = f }

// Begin takes a place in key's budget for an attempt; see
// MemoryLockout.Begin.
func (r *RedisLockout) Begin(ctx context.Context, key string) (Attempt, error) {
	id := make([]byte, 16)
	_, _ = rand.Read(id) // crypto/rand.Read does not fail on supported platforms
	a := Attempt{id: hex.EncodeToString(id)}
	state, ms, err := r.begin(ctx, key, a.id)
	if err != nil || state != mustWait {
		return r.answer(a, state, ms), err
	}
	if r.onWait != nil {
		r.onWait()
	}
	// Listen before asking again: an end published in between is heard.
	w, err := r.wakeups.listen(ctx, key)
	if err != nil {
		return Attempt{}, err
	}
	defer func() { r.wakeups.stop(w) }()
	for {
		state, ms, err := r.begin(ctx, key, a.id)
		if err != nil || state != mustWait {
			return r.answer(a, state, ms), err
		}
		// Besides an end, the first place in flight expiring (its instance
		// died) can make room.
		expiry := time.NewTimer(ms)
		select {
		case <-w.wake:
		case <-expiry.C:
		case <-w.sub.gone:
			// The subscription broke: listen anew, then ask again.
			r.wakeups.stop(w)
			again, err := r.wakeups.listen(ctx, key)
			if err != nil {
				expiry.Stop()
				return Attempt{}, err
			}
			w = again
		case <-ctx.Done():
			expiry.Stop()
			return Attempt{}, fmt.Errorf("waiting for the attempts in flight: %w", ctx.Err())
		}
		expiry.Stop()
	}
}

// The states beginScript answers besides 0, a place taken.
const (
	locked   = 1
	mustWait = 2
)

func (r *RedisLockout) begin(ctx context.Context, key, id string) (state int64, wait time.Duration, err error) {
	res, err := beginScript.Run(ctx, r.client, r.keys(key), r.max, r.hold.Milliseconds(), id).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("login lockout in Redis: %w", err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("login lockout in Redis: unexpected answer %v", res)
	}
	return res[0], time.Duration(res[1]) * time.Millisecond, nil
}

func (r *RedisLockout) answer(a Attempt, state int64, ms time.Duration) Attempt {
	if state == locked {
		a.Locked, a.id = ms, ""
	}
	return a
}

// End gives back the place of an attempt that Begin let go ahead, and
// counts its outcome.
func (r *RedisLockout) End(ctx context.Context, key string, a Attempt, outcome Outcome) error {
	name := map[Outcome]string{Succeeded: "succeeded", Failed: "failed", Abandoned: "abandoned"}[outcome]
	err := endScript.Run(ctx, r.client, r.keys(key), a.id, name, r.max, r.window.Milliseconds(),
		r.wakeups.channel(key)).Err()
	if err != nil {
		return fmt.Errorf("login lockout in Redis: %w", err)
	}
	return nil
}

// Clear forgets key's failures; see MemoryLockout.Clear.
func (r *RedisLockout) Clear(ctx context.Context, key string) error {
	keys := r.keys(key)
	if err := clearScript.Run(ctx, r.client, []string{keys[0], keys[2]}, r.wakeups.channel(key)).Err(); err != nil {
		return fmt.Errorf("login lockout in Redis: %w", err)
	}
	return nil
}
