package middlewares

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
	"tokenauth/models"
)

// RateLimiter spends one event of a key's budget, or says how long until
// the key may try again (ratelimit.MemoryRate or ratelimit.RedisRate).
type RateLimiter interface {
	Allow(ctx context.Context, key string) (wait time.Duration, err error)
}

// LimitByClientIP answers 429 rate_limited, with Retry-After, to a client
// IP over its budget in l; scope names the budget, so that one limiter can
// keep several. The client IP is Gin's: the peer address, or what
// X-Forwarded-For says when the peer is one of TRUSTED_PROXIES. A limiter
// that cannot answer (Redis down) stops the request with 503: letting it
// through would switch the brute-force protection off.
func LimitByClientIP(l RateLimiter, scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		wait, err := l.Allow(c.Request.Context(), scope+":"+clientKey(c.ClientIP()))
		switch {
		case err != nil:
			apierror.Abort(c, fmt.Errorf("%w: %w", models.ErrUnavailable, err))
		case wait > 0:
			apierror.Abort(c, apierror.RateLimited(wait))
		}
	}
}

// clientKey is the unit a budget belongs to: one IPv4 address, or one IPv6
// /64, the block a single customer usually gets (counting IPv6 addresses
// one by one would give every client 2^64 budgets).
func clientKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	prefix, _ := addr.Prefix(64)
	return prefix.String()
}
