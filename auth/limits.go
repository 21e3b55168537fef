package auth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"tokenauth/models"
	"tokenauth/ratelimit"
)

// Limit is the state of one rate limit after a request: which budget
// ("token" or "user"), how large, and what is left of it.
type Limit struct {
	Name   string
	Quota  models.RateLimit
	Result ratelimit.QuotaResult
}

// Limits are the rate limits a request counted against.
type Limits []Limit

// PolicyHeader is the value of the RateLimit-Policy header
// (draft-ietf-httpapi-ratelimit-headers-09 and later: a structured-field
// list of the policies, each with its quota q and window w in seconds),
// or "" when no limit applies.
func (ls Limits) PolicyHeader() string {
	var b strings.Builder
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q;q=%d;w=%d", l.Name, l.Quota.Requests, int64(l.Quota.Period/time.Second))
	}
	return b.String()
}

// StateHeader is the value of the RateLimit header: for each policy, the
// requests remaining r and the seconds t until the budget is whole again
// (rounded up), or "" when no limit applies.
func (ls Limits) StateHeader() string {
	var b strings.Builder
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q;r=%d;t=%d", l.Name, l.Result.Remaining, ceilSeconds(l.Result.Reset))
	}
	return b.String()
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// RateLimitedError refuses a request over a rate limit: the token's own,
// or its user's.
type RateLimitedError struct {
	// RetryAfter is how long until a request is allowed.
	RetryAfter time.Duration
	// Limits are the limits as they stand, the refusing one included.
	Limits Limits
}

func (e *RateLimitedError) Error() string {
	return "rate limited for " + e.RetryAfter.String()
}

// LimitsOf returns the limits of a refusal over a rate limit (nil for any
// other error), for the headers of the 429.
func LimitsOf(err error) Limits {
	var limited *RateLimitedError
	if errors.As(err, &limited) {
		return limited.Limits
	}
	return nil
}

// UseLimiter keeps the budgets of rate-limited tokens and users in l (in
// Redis, to share them between instances) instead of this process's
// memory.
func (r *Resolver) UseLimiter(l ratelimit.QuotaLimiter) { r.limiter = l }

// spend counts the request against the token's own budget and its user's,
// whichever exist. A limiter that cannot answer is an outage, not a
// refusal.
func (r *Resolver) spend(ctx context.Context, t *models.APIToken, now time.Time) (Limits, error) {
	limits := make(Limits, 0, 2)
	var retry time.Duration
	check := func(name string, id uint, q models.RateLimit) error {
		res, err := r.limiter.AllowQuota(ctx, name+":"+strconv.FormatUint(uint64(id), 10),
			ratelimit.Quota{Requests: q.Requests, Period: q.Period}, now)
		if err != nil {
			return fmt.Errorf("%w: %w", models.ErrUnavailable, err)
		}
		limits = append(limits, Limit{Name: name, Quota: q, Result: res})
		if !res.Allowed {
			retry = max(retry, res.RetryAfter)
		}
		return nil
	}
	if q := t.RateLimit(); !q.IsZero() {
		if err := check("token", t.ID, q); err != nil {
			return nil, err
		}
	}
	if q := r.opts.UserLimit; !q.IsZero() && retry == 0 {
		if err := check("user", t.UserID, q); err != nil {
			return nil, err
		}
	}
	if retry > 0 {
		r.rateLimited.Add(1)
		return nil, &RateLimitedError{RetryAfter: retry, Limits: limits}
	}
	return limits, nil
}

// refusalEvery is how often a refusal outside the allowed networks is
// recorded per token and client network.
const refusalEvery = time.Minute

type refusalKey struct {
	token   uint
	network string
}

// refusalLog bounds the events of refused clients: a client that keeps
// trying from outside a token's networks is recorded once a minute.
type refusalLog struct {
	mu   sync.Mutex
	seen *lru.Cache[refusalKey, time.Time]
}

func newRefusalLog() *refusalLog {
	seen, err := lru.New[refusalKey, time.Time](4096)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &refusalLog{seen: seen}
}

// first tells whether a refusal of the token from ip at now is the first
// of its network in refusalEvery, and notes it.
func (l *refusalLog) first(tokenID uint, ip string, now time.Time) bool {
	network := ip
	if p, ok := models.NetworkOf(ip); ok {
		network = p.String()
	}
	k := refusalKey{tokenID, network}
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.seen.Get(k); ok && now.Sub(last) < refusalEvery {
		return false
	}
	l.seen.Add(k, now)
	return true
}
