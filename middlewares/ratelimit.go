package middlewares

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
	"tokenauth/metrics"
	"tokenauth/models"
)

// RateLimiter spends one event of a key's budget, or says how long until
// the key may try again (ratelimit.MemoryRate or ratelimit.RedisRate).
type RateLimiter interface {
	Allow(ctx context.Context, key string) (wait time.Duration, err error)
}

// LimitByClientIP answers 429 rate_limited, with Retry-After, to a client
// IP over its budget in l, and counts the refusal in m as a hit of the
// "ip" limit; budget names the budget, so that one limiter can keep
// several. The client IP is Gin's: the peer address, or what
// X-Forwarded-For says when the peer is one of TRUSTED_PROXIES. A limiter
// that cannot answer (Redis down) stops the request with 503: letting it
// through would switch the brute-force protection off.
func LimitByClientIP(l RateLimiter, budget string, m *metrics.Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		wait, err := l.Allow(c.Request.Context(), budget+":"+ClientNetwork(ClientIP(c)))
		switch {
		case err != nil:
			apierror.Abort(c, fmt.Errorf("%w: %w", models.ErrUnavailable, err))
		case wait > 0:
			m.RateLimitHit("ip")
			apierror.Abort(c, apierror.RateLimited(wait))
		}
	}
}

// ClientNetwork is the unit a client's budget belongs to: one IPv4
// address, or one IPv6 /64, the block a single customer usually gets
// (counting IPv6 addresses one by one would give every client 2^64
// budgets).
func ClientNetwork(ip string) string {
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
