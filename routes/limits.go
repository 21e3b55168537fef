package routes

import (
	"time"

	"github.com/redis/go-redis/v9"

	"tokenauth/config"
	"tokenauth/controllers"
	"tokenauth/metrics"
	"tokenauth/middlewares"
	"tokenauth/ratelimit"
)

// defaultRedisPrefix starts every key the service writes to Redis, so that
// it can share a server with other applications.
const defaultRedisPrefix = "tokenauth:"

// loginLimits returns the per-client-IP budget and the per-username lockout
// of logins: in Redis when there is a client, so that every instance counts
// together, else in this process's memory. The lockout counts its waits in
// m.
func loginLimits(cfg config.Config, client *redis.Client, prefix string, m *metrics.Metrics) (middlewares.RateLimiter, controllers.LoginCounter) {
	if client == nil {
		lockout := ratelimit.NewMemoryLockout(cfg.LoginUserFailures, cfg.LoginUserWindow)
		lockout.OnWait(m.LoginWaited)
		return ratelimit.NewMemoryRate(cfg.LoginIPPerMinute), lockout
	}
	if prefix == "" {
		prefix = defaultRedisPrefix
	}
	lockout := ratelimit.NewRedisLockout(client, prefix+"login-user:", cfg.LoginUserFailures, cfg.LoginUserWindow,
		cfg.RequestTimeout+lockoutHoldMargin)
	lockout.OnWait(m.LoginWaited)
	return ratelimit.NewRedisRate(client, prefix+"ip:", cfg.LoginIPPerMinute), lockout
}

// lockoutHoldMargin is how much longer than its request a password check
// holds its place in the shared lockout, should its instance die: a check
// ends within its request's deadline and one more password hash.
const lockoutHoldMargin = 5 * time.Second

// QuotaLimiter returns where the budgets of rate-limited tokens and users
// are kept: in Redis when there is a client, so that every instance
// counts together, else in this process's memory.
func QuotaLimiter(client *redis.Client, prefix string) ratelimit.QuotaLimiter {
	if client == nil {
		return ratelimit.NewMemoryQuota()
	}
	if prefix == "" {
		prefix = defaultRedisPrefix
	}
	return ratelimit.NewRedisQuota(client, prefix+"quota:")
}
