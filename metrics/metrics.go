// Package metrics holds the service's Prometheus metrics: HTTP requests by
// route and status, login outcomes, rate-limit hits, the token cache, the
// pending last-used writes, the mail outbox, webhooks and leak reports. It
// is a leaf: the places that count report to it, and it imports none of
// them. Each Metrics has its own registry
// (never the global default), so that two apps in one process, as in the
// tests, do not share counters.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors of one app and the registry that serves them.
type Metrics struct {
	registry    *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	logins      *prometheus.CounterVec
	reauths     *prometheus.CounterVec
	mfaChanges  *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	loginWaits  prometheus.Counter
	checks      *prometheus.CounterVec
	// checksAllowed is checks' allowed series, resolved once: it is
	// counted on every check that passes.
	checksAllowed prometheus.Counter
	introspects   *prometheus.CounterVec
	mailSent      prometheus.Counter
	mailRetries   prometheus.Counter
	mailFailed    prometheus.Counter
	mailPending   prometheus.Gauge
	mailGivenUp   prometheus.Gauge

	webhookAttempts *prometheus.CounterVec
	webhookPending  prometheus.Gauge
	webhookGivenUp  prometheus.Gauge
	leakReports     *prometheus.CounterVec

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
	LoginUnverified  = "email_not_verified"
	LoginRateLimited = "rate_limited"
	LoginBadRequest  = "invalid_request"
	LoginError       = "error"
	// LoginMFARequired: the password was right, and the account's second
	// factor is asked for next (POST /api/login/mfa/).
	LoginMFARequired = "mfa_required"
	LoginBadMFACode  = "invalid_mfa_code"
	LoginBadMFAToken = "invalid_mfa_token"
)

// New returns the metrics of an app, with the Go runtime and process
// collectors.
func New() *Metrics {
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
		reauths: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauth_reauthentications_total",
			Help: "Re-authentications (POST /api/reauth/, step-up), by outcome.",
		}, []string{"outcome"}),
		mfaChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauth_mfa_changes_total",
			Help: "Changes of users' second factors, by change.",
		}, []string{"change"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauth_rate_limit_hits_total",
			Help: "Requests refused by a rate limit, by limit.",
		}, []string{"limit"}),
		loginWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokenauth_login_waits_total",
			Help: "Password checks that waited for other checks of the same username in flight.",
		}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauth_gateway_checks_total",
			Help: "Forward-auth checks (/api/auth/check) answered, by outcome: allowed, or the X-Auth-Error code.",
		}, []string{"outcome"}),
		introspects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauth_introspections_total",
			Help: "Token introspections (POST /oauth/introspect), by outcome: active, inactive, invalid_client, invalid_request, rate_limited, error.",
		}, []string{"outcome"}),

		mailSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokenauth_mail_sent_total",
			Help: "Mails the mail server accepted (or, with SMTP_URL empty, wrote to the log).",
		}),
		mailRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokenauth_mail_retries_total",
			Help: "Attempts to send a mail that failed and will be tried again.",
		}),
		mailFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokenauth_mail_failed_total",
			Help: "Mails given up after their last attempt (tokenauth mail lists them).",
		}),
		mailPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tokenauth_mail_pending",
			Help: "Mails in the outbox waiting to be sent, as last counted by the outbox worker.",
		}),
		mailGivenUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tokenauth_mail_given_up",
			Help: "Mails in the outbox given up and not pruned yet, as last counted by the outbox worker.",
		}),
		webhookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauth_webhook_attempts_total",
			Help: "Attempts to deliver a webhook, by outcome: delivered, retried (failed, will be tried again), failed (given up).",
		}, []string{"outcome"}),
		webhookPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tokenauth_webhook_pending",
			Help: "Webhook deliveries waiting to be made, as last counted by the webhook worker.",
		}),
		webhookGivenUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tokenauth_webhook_given_up",
			Help: "Webhook deliveries given up and not pruned yet (tokenauth webhook list), as last counted.",
		}),
		leakReports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauth_leak_reports_total",
			Help: "Tokens reported by GitHub secret scanning, by label: true_positive (a live token, revoked), false_positive.",
		}, []string{"label"}),
	}
	for _, outcome := range []string{WebhookDelivered, WebhookRetried, WebhookFailed} {
		m.webhookAttempts.WithLabelValues(outcome)
	}
	for _, label := range []string{LeakTruePositive, LeakFalsePositive} {
		m.leakReports.WithLabelValues(label)
	}
	m.checksAllowed = m.checks.WithLabelValues(CheckAllowed)
	m.registry.MustRegister(m.requests, m.latency, m.logins, m.reauths, m.mfaChanges, m.rateLimited, m.loginWaits,
		m.checks, m.introspects,
		m.mailSent, m.mailRetries, m.mailFailed, m.mailPending, m.mailGivenUp,
		m.webhookAttempts, m.webhookPending, m.webhookGivenUp, m.leakReports,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// ObserveRequest counts and times one answered request. route is the
// pattern that matched (so ids do not multiply the series), "" for none;
// a method outside HTTP's standard ones is counted as "other", so that a
// client inventing methods cannot make series without end.
func (m *Metrics) ObserveRequest(method, route string, status int, took time.Duration) {
	s := m.seriesOf(seriesKey{method: methodLabel(method), route: route, status: status})
	s.count.Inc()
	s.latency.Observe(took.Seconds())
}

func (m *Metrics) seriesOf(key seriesKey) *requestSeries {
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

// Login counts a login attempt with its outcome (one of the Login...
// constants).
func (m *Metrics) Login(outcome string) {
	m.logins.WithLabelValues(outcome).Inc()
}

// Re-authentication outcomes, the values of the outcome label of
// tokenauth_reauthentications_total.
const (
	ReauthSucceeded   = "succeeded"
	ReauthBadPassword = "invalid_password"
	ReauthBadCode     = "invalid_code"
	ReauthRateLimited = "rate_limited"
	ReauthBadRequest  = "invalid_request"
	ReauthError       = "error"
)

// Reauth counts a re-authentication with its outcome (one of the Reauth...
// constants).
func (m *Metrics) Reauth(outcome string) {
	m.reauths.WithLabelValues(outcome).Inc()
}

// Changes of a second factor, the values of the change label of
// tokenauth_mfa_changes_total.
const (
	MFAEnrolled         = "enrolled"
	MFADisabled         = "disabled"
	MFACodesRegenerated = "recovery_codes_regenerated"
)

// MFAChange counts a change of a user's second factor (one of the MFA...
// constants).
func (m *Metrics) MFAChange(change string) {
	m.mfaChanges.WithLabelValues(change).Inc()
}

// RateLimitHit counts a request refused by the limit named limit.
func (m *Metrics) RateLimitHit(limit string) {
	m.rateLimited.WithLabelValues(limit).Inc()
}

// CheckAllowed is the outcome of a forward-auth check that let the
// request through; a refusal's outcome is its error code.
const CheckAllowed = "allowed"

// GatewayCheck counts a forward-auth check with its outcome: CheckAllowed
// or the code of the refusal (a stable code from a short list).
func (m *Metrics) GatewayCheck(outcome string) {
	if outcome == CheckAllowed {
		m.checksAllowed.Inc()
		return
	}
	m.checks.WithLabelValues(outcome).Inc()
}

// Introspection outcomes, the values of the outcome label of
// tokenauth_introspections_total.
const (
	IntrospectActive        = "active"
	IntrospectInactive      = "inactive"
	IntrospectInvalidClient = "invalid_client"
	IntrospectBadRequest    = "invalid_request"
	IntrospectRateLimited   = "rate_limited"
	// IntrospectError: the answer could not be found (a database outage).
	IntrospectError = "error"
)

// Introspection counts an introspection request with its outcome (one of
// the Introspect... constants).
func (m *Metrics) Introspection(outcome string) {
	m.introspects.WithLabelValues(outcome).Inc()
}

// LoginWaited counts a password check that waited for the checks of the
// same username in flight before it could go ahead or be refused.
func (m *Metrics) LoginWaited() {
	m.loginWaits.Inc()
}

// WatchPasswordHashes has computed, the count of password hashes run so
// far, read at each scrape.
func (m *Metrics) WatchPasswordHashes(computed func() uint64) {
	m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tokenauth_password_hashes_total",
		Help: "Password hashes computed: new passwords, verifications, and the dummy verifications of unknown usernames.",
	}, func() float64 { return float64(computed()) }))
}

// Outcomes of an attempt to send a mail, for MailAttempt.
const (
	MailSent    = "sent"
	MailRetried = "retried"
	MailFailed  = "failed"
)

// MailAttempt counts an attempt to send a mail by its outcome (one of the
// Mail... constants).
func (m *Metrics) MailAttempt(outcome string) {
	switch outcome {
	case MailSent:
		m.mailSent.Inc()
	case MailRetried:
		m.mailRetries.Inc()
	case MailFailed:
		m.mailFailed.Inc()
	}
}

// MailOutbox records how many mails wait in the outbox and how many were
// given up.
func (m *Metrics) MailOutbox(pending, givenUp int64) {
	m.mailPending.Set(float64(pending))
	m.mailGivenUp.Set(float64(givenUp))
}

// Outcomes of an attempt to deliver a webhook, for WebhookAttempt.
const (
	WebhookDelivered = "delivered"
	WebhookRetried   = "retried"
	WebhookFailed    = "failed"
)

// WebhookAttempt counts an attempt to deliver a webhook by its outcome
// (one of the Webhook... constants).
func (m *Metrics) WebhookAttempt(outcome string) { m.webhookAttempts.WithLabelValues(outcome).Inc() }

// WebhookOutbox records how many webhook deliveries wait and how many were
// given up.
func (m *Metrics) WebhookOutbox(pending, givenUp int64) {
	m.webhookPending.Set(float64(pending))
	m.webhookGivenUp.Set(float64(givenUp))
}

// Labels of a reported leak, for LeakReport: GitHub's own.
const (
	LeakTruePositive  = "true_positive"
	LeakFalsePositive = "false_positive"
)

// LeakReport counts a token reported by GitHub secret scanning.
func (m *Metrics) LeakReport(label string) { m.leakReports.WithLabelValues(label).Inc() }

// TokenCache is what the token cache reports at each scrape.
type TokenCache struct {
	Hits, Misses  uint64
	Entries       int
	Enabled       bool
	Invalidations uint64
	Outages       uint64
	PendingUses   int
	// IPRefused, RateLimited and GraceEnded count the live tokens refused
	// by their policy: outside their allowed networks, over a rate limit,
	// and previous secrets used after their grace.
	IPRefused, RateLimited, GraceEnded uint64
}

// WatchTokenCache has stats read at each scrape, so that the request path
// pays for nothing more than the atomic counters the cache keeps.
func (m *Metrics) WatchTokenCache(stats func() TokenCache) {
	m.registry.MustRegister(tokenCacheCollector(stats))
}

type tokenCacheCollector func() TokenCache

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
		"Changes to users and tokens applied to the cache: made by this process, or announced by others (instances, operator commands).", nil, nil)
	outagesDesc = prometheus.NewDesc("tokenauth_token_cache_outages_total",
		"Times the token cache was switched off because changes made elsewhere could no longer be followed.", nil, nil)
	pendingDesc = prometheus.NewDesc("tokenauth_token_usage_pending",
		"Tokens whose last use is not written to the database yet.", nil, nil)
	policyRefusalsDesc = prometheus.NewDesc("tokenauth_token_policy_refusals_total",
		"Requests with a live token refused by its policy: ip_not_allowed, rate_limited, grace_ended (a rotated token's previous secret).",
		[]string{"reason"}, nil)
)

func (c tokenCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cacheHitsDesc, cacheMissesDesc, cacheEntriesDesc, cacheEnabledDesc,
		invalidationsDesc, outagesDesc, pendingDesc, policyRefusalsDesc} {
		ch <- d
	}
}

func (c tokenCacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c()
	enabled := 0.0
	if s.Enabled {
		enabled = 1
	}
	ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(cacheEntriesDesc, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(cacheEnabledDesc, prometheus.GaugeValue, enabled)
	ch <- prometheus.MustNewConstMetric(invalidationsDesc, prometheus.CounterValue, float64(s.Invalidations))
	ch <- prometheus.MustNewConstMetric(outagesDesc, prometheus.CounterValue, float64(s.Outages))
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(s.PendingUses))
	ch <- prometheus.MustNewConstMetric(policyRefusalsDesc, prometheus.CounterValue, float64(s.IPRefused), "ip_not_allowed")
	ch <- prometheus.MustNewConstMetric(policyRefusalsDesc, prometheus.CounterValue, float64(s.RateLimited), "rate_limited")
	ch <- prometheus.MustNewConstMetric(policyRefusalsDesc, prometheus.CounterValue, float64(s.GraceEnded), "grace_ended")
}

// HashSlots is what the password hasher reports at each scrape.
type HashSlots struct {
	Size           int
	InUse, Waiting int64
	Overloaded     uint64
}

// WatchPasswordHashSlots has stats read at each scrape.
func (m *Metrics) WatchPasswordHashSlots(stats func() HashSlots) {
	m.registry.MustRegister(hashSlotsCollector(stats))
}

type hashSlotsCollector func() HashSlots

var (
	hashSlotsDesc = prometheus.NewDesc("tokenauth_password_hash_slots",
		"Password hashes that may run at once (PASSWORD_HASH_CONCURRENCY).", nil, nil)
	hashInUseDesc = prometheus.NewDesc("tokenauth_password_hash_slots_in_use",
		"Password hashes running now.", nil, nil)
	hashWaitingDesc = prometheus.NewDesc("tokenauth_password_hash_waiting",
		"Password hashes waiting for a slot now.", nil, nil)
	hashOverloadedDesc = prometheus.NewDesc("tokenauth_password_hash_overloaded_total",
		"Requests refused with 503 overloaded after waiting HASH_QUEUE_TIMEOUT for a password-hash slot.", nil, nil)
)

func (c hashSlotsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{hashSlotsDesc, hashInUseDesc, hashWaitingDesc, hashOverloadedDesc} {
		ch <- d
	}
}

func (c hashSlotsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c()
	ch <- prometheus.MustNewConstMetric(hashSlotsDesc, prometheus.GaugeValue, float64(s.Size))
	ch <- prometheus.MustNewConstMetric(hashInUseDesc, prometheus.GaugeValue, float64(s.InUse))
	ch <- prometheus.MustNewConstMetric(hashWaitingDesc, prometheus.GaugeValue, float64(s.Waiting))
	ch <- prometheus.MustNewConstMetric(hashOverloadedDesc, prometheus.CounterValue, float64(s.Overloaded))
}
