package ratelimit

import (
	"context"
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

// lockoutScript is MemoryLockout.Attempt in one atomic step on the Redis
// server: KEYS[1] is the key's count, ARGV the maximum and the window in
// milliseconds. It answers the milliseconds the lock still lasts, or 0 when
// the attempt may go ahead. The count expires with the window, so nothing
// outlives it.
var lockoutScript = redis.NewScript(`
local count = tonumber(redis.call("GET", KEYS[1]) or "0")
local max = tonumber(ARGV[1])
if count >= max then
  local left = redis.call("PTTL", KEYS[1])
  if left > 0 then return left end
  return 1
end
count = redis.call("INCR", KEYS[1])
if count == 1 or count == max then
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
`)

// RedisLockout is MemoryLockout with its state in Redis, shared by every
// instance that uses the same server and prefix.
type RedisLockout struct {
	client *redis.Client
	max    int
	window time.Duration
	prefix string
}

// NewRedisLockout returns a RedisLockout that locks a key for window after
// maxFailures failed attempts within window; its keys start with prefix.
func NewRedisLockout(client *redis.Client, prefix string, maxFailures int, window time.Duration) *RedisLockout {
	return &RedisLockout{client: client, max: maxFailures, window: window, prefix: prefix}
}

// Attempt counts an attempt on key as a failure before it is made; see
// MemoryLockout.Attempt.
func (r *RedisLockout) Attempt(ctx context.Context, key string) (time.Duration, error) {
	left, err := lockoutScript.Run(ctx, r.client, []string{r.prefix + key}, r.max, r.window.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("login lockout in Redis: %w", err)
	}
	return time.Duration(left) * time.Millisecond, nil
}

// Clear forgets key's attempts.
func (r *RedisLockout) Clear(ctx context.Context, key string) error {
	if err := r.client.Del(ctx, r.prefix+key).Err(); err != nil {
		return fmt.Errorf("login lockout in Redis: %w", err)
	}
	return nil
}
