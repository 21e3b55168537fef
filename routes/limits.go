package routes

import (
	"github.com/redis/go-redis/v9"

	"tokenauth/config"
	"tokenauth/controllers"
	"tokenauth/middlewares"
	"tokenauth/ratelimit"
)

// defaultRedisPrefix starts every key the service writes to Redis, so that
// it can share a server with other applications.
const defaultRedisPrefix = "tokenauth:"

// loginLimits returns the per-client-IP budget and the per-username lockout
// of logins: in Redis when there is a client, so that every instance counts
// together, else in this process's memory.
func loginLimits(cfg config.Config, client *redis.Client, prefix string) (middlewares.RateLimiter, controllers.LoginCounter) {
	if client == nil {
		return ratelimit.NewMemoryRate(cfg.LoginIPPerMinute),
			ratelimit.NewMemoryLockout(cfg.LoginUserFailures, cfg.LoginUserWindow)
	}
	if prefix == "" {
		prefix = defaultRedisPrefix
	}
	return ratelimit.NewRedisRate(client, prefix+"ip:", cfg.LoginIPPerMinute),
		ratelimit.NewRedisLockout(client, prefix+"login-user:", cfg.LoginUserFailures, cfg.LoginUserWindow)
}
