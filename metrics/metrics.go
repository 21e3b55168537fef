// Package metrics exposes the service's Prometheus metrics: HTTP requests
// by route and status, login outcomes, rate-limit hits, the token cache and
// the pending last-used writes. Each Metrics has its own registry (never
// the global default), so that two apps in one process, as in the tests,
// do not share counters.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tokenauth/apierror"
	"tokenauth/controllers"
	"tokenauth/middlewares"
)

// Metrics holds the collectors of one app and the registry that serves them.
type Metrics struct {
	registry    *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	logins      *prometheus.CounterVec
	rateLimited *prometheus.CounterVec

	// series holds the request counter and latency histogram of each
	// seriesKey seen, so that a request finds its two series in one map
	// read rather than by hashing its labels twice.
	series sync.Map
}

// seriesKey names the series of a request. Its values come from short
// fixed lists (methods, routes, statuses), so the map stays small.
type seriesKey struct {
	method, route string
	status        int
}

type requestSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// Login outcomes, the values of the outcome label of tokenauth_logins_total.
const (
	LoginSucceeded   = "succeeded"
	LoginBadPassword = "invalid_credentials"
	LoginDisabled    = "account_disabled"
	LoginRateLimited = "rate_limited"
	LoginBadRequest  = "invalid_request"
	LoginError       = "error"
)

// New returns the metrics of an app whose authentication is auth (nil for
// none), with the Go runtime and process collectors.
func New(auth *middlewares.Authenticator) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauth_http_requests_total",
			Help: "HTTP requests answered, by method, route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokenauth_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method, route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "route", "status"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauth_logins_total",
			Help: "Login attempts, by outcome.",
		}, []string{"outcome"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauth_rate_limit_hits_total",
			Help: "Requests refused by a rate limit, by limit.",
		}, []string{"limit"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.logins, m.rateLimited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if auth != nil {
		m.registry.MustRegister(authCollector{auth})
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Requests counts and times every request. The route is the pattern that
// matched (so ids do not multiply the series), or "unmatched"; a method
// outside HTTP's standard ones is "other", so that a client inventing
// methods cannot make series without end.
func (m *Metrics) Requests() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		s := m.seriesOf(c)
		s.count.Inc()
		s.latency.Observe(time.Since(start).Seconds())
	}
}

func (m *Metrics) seriesOf(c *gin.Context) *requestSeries {
	key := seriesKey{method: methodLabel(c.Request.Method), route: c.FullPath(), status: c.Writer.Status()}
	if key.route == "" {
		key.route = "unmatched"
	}
	if s, ok := m.series.Load(key); ok {
		return s.(*requestSeries)
	}
	status := strconv.Itoa(key.status)
	s, _ := m.series.LoadOrStore(key, &requestSeries{
		count:   m.requests.WithLabelValues(key.method, key.route, status),
		latency: m.latency.WithLabelValues(key.method, key.route, status),
	})
	return s.(*requestSeries)
}

// methodLabel is method if HTTP defines it, else "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}

// CountLogins records the outcome of each login, read from the answer.
// Put it first on the login route, before anything that may refuse the
// request (a rate limiter), so that refusals are counted too.
func (m *Metrics) CountLogins(c *gin.Context) {
	c.Next()
	outcome := LoginSucceeded
	if len(c.Errors) > 0 {
		resp, _ := apierror.From(c.Errors.Last().Err)
		switch {
		case resp.Code == apierror.ErrInvalidCreds.Code:
			outcome = LoginBadPassword
		case resp.Code == apierror.ErrAccountOff.Code:
			outcome = LoginDisabled
		case resp.Status == http.StatusTooManyRequests:
			outcome = LoginRateLimited
		case resp.Status < http.StatusInternalServerError:
			outcome = LoginBadRequest
		default:
			outcome = LoginError
		}
	} else if c.Writer.Status() >= http.StatusBadRequest {
		outcome = LoginError
	}
	m.logins.WithLabelValues(outcome).Inc()
}

// authCollector reads the Authenticator's counters at each scrape, so that
// the request path pays for nothing more than the atomic counters it keeps.
type authCollector struct {
	auth *middlewares.Authenticator
}

var (
	cacheHitsDesc = prometheus.NewDesc("tokenauth_token_cache_hits_total",
		"Token lookups answered from the in-process cache.", nil, nil)
	cacheMissesDesc = prometheus.NewDesc("tokenauth_token_cache_misses_total",
		"Token lookups that went to the database (every lookup while the cache is off).", nil, nil)
	cacheEntriesDesc = prometheus.NewDesc("tokenauth_token_cache_entries",
		"Token lookups remembered now.", nil, nil)
	cacheEnabledDesc = prometheus.NewDesc("tokenauth_token_cache_enabled",
		"1 while the token cache is on; 0 when configured off or while changes made elsewhere cannot be followed.", nil, nil)
	invalidationsDesc = prometheus.NewDesc("tokenauth_token_cache_invalidations_received_total",
		"Changes made by other processes (instances, operator commands) announced to this one.", nil, nil)
	outagesDesc = prometheus.NewDesc("tokenauth_token_cache_outages_total",
		"Times the token cache was switched off because changes made elsewhere could no longer be followed.", nil, nil)
	pendingDesc = prometheus.NewDesc("tokenauth_token_usage_pending",
		"Tokens whose last use is not written to the database yet.", nil, nil)
)

func (a authCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cacheHitsDesc, cacheMissesDesc, cacheEntriesDesc, cacheEnabledDesc,
		invalidationsDesc, outagesDesc, pendingDesc} {
		ch <- d
	}
}

func (a authCollector) Collect(ch chan<- prometheus.Metric) {
	s := a.auth.Stats()
	enabled := 0.0
	if s.CacheEnabled {
		enabled = 1
	}
	ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(s.CacheHits))
	ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, float64(s.CacheMisses))
	ch <- prometheus.MustNewConstMetric(cacheEntriesDesc, prometheus.GaugeValue, float64(s.CacheEntries))
	ch <- prometheus.MustNewConstMetric(cacheEnabledDesc, prometheus.GaugeValue, enabled)
	ch <- prometheus.MustNewConstMetric(invalidationsDesc, prometheus.CounterValue, float64(s.Invalidations))
	ch <- prometheus.MustNewConstMetric(outagesDesc, prometheus.CounterValue, float64(s.CacheOutages))
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(s.PendingUses))
}

// CountRateLimiter returns l, counting each refusal as a hit of the limit
// named limit.
func (m *Metrics) CountRateLimiter(limit string, l middlewares.RateLimiter) middlewares.RateLimiter {
	return countedLimiter{RateLimiter: l, hit: m.rateLimited.WithLabelValues(limit)}
}

type countedLimiter struct {
	middlewares.RateLimiter
	hit prometheus.Counter
}

func (l countedLimiter) Allow(ctx context.Context, key string) (time.Duration, error) {
	wait, err := l.RateLimiter.Allow(ctx, key)
	if err == nil && wait > 0 {
		l.hit.Inc()
	}
	return wait, err
}

// CountLockout returns l, counting each login refused by it as a hit of
// the limit named limit.
func (m *Metrics) CountLockout(limit string, l controllers.LoginLockout) controllers.LoginLockout {
	return countedLockout{LoginLockout: l, hit: m.rateLimited.WithLabelValues(limit)}
}

type countedLockout struct {
	controllers.LoginLockout
	hit prometheus.Counter
}

func (l countedLockout) Attempt(ctx context.Context, key string) (time.Duration, error) {
	wait, err := l.LoginLockout.Attempt(ctx, key)
	if err == nil && wait > 0 {
		l.hit.Inc()
	}
	return wait, err
}
