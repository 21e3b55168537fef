// Package app is the composition root of tokenauth: New builds the whole
// application (router, token resolver, change feed, usage flusher, rate
// limits, metrics, mail outbox, webhooks, expiry notices) from a
// configuration, a database and a logger, and returns it ready to start
// and shut down. The serve command and the tests both build the service
// here, so what the tests run is what serves.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"tokenauth/auth"
	"tokenauth/clock"
	"tokenauth/config"
	"tokenauth/expiry"
	"tokenauth/keyring"
	"tokenauth/mail"
	"tokenauth/metrics"
	"tokenauth/models"
	"tokenauth/password"
	"tokenauth/routes"
	"tokenauth/secretscanning"
	"tokenauth/webhooks"
)

// defaultUsageFlushInterval is how often pending last-used times are
// written unless told otherwise.
const defaultUsageFlushInterval = 5 * time.Second

// App is the application: its parts, for the command that serves it and
// for tests that look inside.
type App struct {
	Config config.Config
	// DB is the database handle every part uses: on the app's clock, and
	// announcing the changes it commits to the resolver.
	DB *gorm.DB
	// Pool is the pgx pool under DB on PostgreSQL, nil on SQLite.
	Pool  *pgxpool.Pool
	Clock clock.Clock
	Log   *slog.Logger
	// Keyring holds the server's secret key: keyed hashes and sealed
	// secrets.
	Keyring   *keyring.Keyring
	Passwords *password.Hasher
	Resolver  *auth.Resolver
	// Feed follows the changes other processes make to the database.
	Feed    *auth.ChangeFeed
	Metrics *metrics.Metrics
	// Mail sends the mail of the outbox and answers password reset
	// requests in the background.
	Mail *mail.Outbox
	// Webhooks delivers security events to the operator's endpoints in
	// the background.
	Webhooks *webhooks.Dispatcher
	// Expiry records the notices of tokens about to expire.
	Expiry *expiry.Notifier
	// Router serves every route; it is the app's HTTP handler.
	Router *gin.Engine

	redis      *redis.Client
	ownsRedis  bool
	flushEvery time.Duration

	stop    context.CancelFunc
	workers sync.WaitGroup
}

// Option changes how New builds the application.
type Option func(*options)

type options struct {
	clock       clock.Clock
	passwords   *password.Hasher
	redis       *redis.Client
	redisPrefix string
	resources   []routes.Resource
	flushEvery  time.Duration
	mailTLS     *tls.Config
	oauthLimit  int
}

// WithClock runs the application on clk instead of the system clock, so
// that tests move time instead of sleeping.
func WithClock(clk clock.Clock) Option { return func(o *options) { o.clock = clk } }

// WithPasswordHasher hashes passwords with h (tests use cheap parameters).
func WithPasswordHasher(h *password.Hasher) Option { return func(o *options) { o.passwords = h } }

// WithRedis keeps the shared limits in client, under keys starting with
// prefix, instead of opening REDIS_URL. The caller closes the client.
func WithRedis(client *redis.Client, prefix string) Option {
	return func(o *options) { o.redis, o.redisPrefix = client, prefix }
}

// WithResources serves resources beside the service's own
// (routes.Resources).
func WithResources(resources ...routes.Resource) Option {
	return func(o *options) { o.resources = append(o.resources, resources...) }
}

// WithUsageFlushInterval writes pending last-used times every d.
func WithUsageFlushInterval(d time.Duration) Option { return func(o *options) { o.flushEvery = d } }

// WithMailTLS talks TLS to the SMTP server with cfg, such as one that
// trusts a test server's own certificate. Without it the system's roots
// decide; no setting can loosen that.
func WithMailTLS(cfg *tls.Config) Option { return func(o *options) { o.mailTLS = cfg } }

// WithOAuthClientLimit gives each resource-server client perMinute
// requests a minute on the OAuth routes instead of
// routes.DefaultOAuthClientPerMinute.
func WithOAuthClientLimit(perMinute int) Option { return func(o *options) { o.oauthLimit = perMinute } }

// New builds the application on db, which it does not close.
func New(ctx context.Context, cfg config.Config, db *config.Database, log *slog.Logger, opts ...Option) (*App, error) {
	o := options{clock: clock.System{}, flushEvery: defaultUsageFlushInterval}
	for _, opt := range opts {
		opt(&o)
	}
	if o.flushEvery <= 0 {
		return nil, errors.New("the usage flush interval must be positive")
	}
	if least := auth.MinIdleTimeout(o.flushEvery); cfg.TokenIdleTimeout > 0 && cfg.TokenIdleTimeout < least {
		return nil, fmt.Errorf("TOKEN_IDLE_TIMEOUT: %s is too short to honour: last uses reach the database up to "+
			"a tenth of the timeout plus one usage flush interval (%s) after they happen, and other instances, "+
			"the token list and prune judge idleness by the database, so a token in use could look idle; "+
			"use at least %s (twice the flush interval), a shorter --usage-flush-interval, or 0 for no idle timeout",
			cfg.TokenIdleTimeout, o.flushEvery, least)
	}
	if o.passwords == nil {
		o.passwords = password.NewHasher(password.DefaultParams, cfg.PasswordHashConcurrency,
			password.WithQueueTimeout(cfg.HashQueueTimeout))
	}
	a := &App{Config: cfg, Clock: o.clock, Log: log, Passwords: o.passwords, Metrics: metrics.New(),
		redis: o.redis, flushEvery: o.flushEvery}
	a.DB, a.Pool = db.ORM.Session(&gorm.Session{NowFunc: o.clock.Now}), db.Pool
	kr, err := keyring.Load(ctx, a.DB, cfg.SecretKey)
	if err != nil {
		return nil, err
	}
	a.Keyring = kr
	a.Resolver = auth.NewResolver(a.DB, db.Pool, auth.Options{IdleTimeout: cfg.TokenIdleTimeout,
		Sliding: cfg.TokenSliding, TTL: cfg.TokenTTL, MaxTTL: cfg.TokenMaxTTL, CacheTTL: cfg.TokenCacheTTL,
		UserLimit: cfg.UserRateLimit, ReauthMaxAge: cfg.ReauthMaxAge})
	if err := models.ListenForChanges(a.DB, a.Resolver.Apply); err != nil {
		return nil, fmt.Errorf("following the database's changes: %w", err)
	}
	walIndex, err := db.WALIndex()
	if err != nil {
		log.Warn("every request the token cache could answer asks the database whether another process wrote it",
			"error", err.Error())
	}
	a.Feed = auth.NewChangeFeed(a.Resolver, a.DB, cfg.DatabaseURL, walIndex, log)
	a.Metrics.WatchPasswordHashes(a.Passwords.Computed)
	a.Metrics.WatchPasswordHashSlots(func() metrics.HashSlots {
		s := a.Passwords.Slots()
		return metrics.HashSlots{Size: s.Size, InUse: s.InUse, Waiting: s.Waiting, Overloaded: s.Overloaded}
	})
	a.Metrics.WatchTokenCache(func() metrics.TokenCache {
		s := a.Resolver.Stats()
		return metrics.TokenCache{Hits: s.CacheHits, Misses: s.CacheMisses, Entries: s.CacheEntries,
			Enabled: s.CacheEnabled, Invalidations: s.Invalidations, Outages: s.CacheOutages, PendingUses: s.PendingUses,
			IPRefused: s.IPRefused, RateLimited: s.RateLimited, GraceEnded: s.GraceEnded}
	})
	if a.redis == nil && cfg.RedisURL != "" {
		client, err := openRedis(ctx, cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		a.redis, a.ownsRedis = client, true
	}
	a.Resolver.UseLimiter(routes.QuotaLimiter(a.redis, o.redisPrefix))
	sender, err := mail.NewSender(cfg.SMTPURL, cfg.MailFrom, o.mailTLS, log)
	if err != nil {
		a.closeRedis()
		return nil, err
	}
	composer := mail.NewComposer(a.Keyring, cfg.PublicURL)
	a.Mail = mail.NewOutbox(a.DB, composer, sender, a.Metrics, cfg.PasswordResetTTL, mail.MailPolicy, log)
	a.Webhooks = webhooks.NewDispatcher(a.DB, a.Keyring, a.Metrics, webhooks.Policy, log)
	a.Expiry = expiry.NewNotifier(a.DB, expiryMail(cfg, composer), log)
	if err := models.ListenForQueued(a.DB, func(table string) {
		a.Mail.Wake(table)
		a.Webhooks.Wake(table)
	}); err != nil {
		a.closeRedis()
		return nil, fmt.Errorf("following the outbox: %w", err)
	}
	var scanKeys *secretscanning.Keys
	if cfg.GitHubSecretScanningKeys != "" {
		if scanKeys, err = secretscanning.Load(cfg.GitHubSecretScanningKeys, o.clock.Now); err != nil {
			a.closeRedis()
			return nil, err
		}
	}
	router, err := routes.New(routes.Deps{SecretScanning: scanKeys, DB: a.DB, Config: cfg, Clock: a.Clock, Logger: log, Passwords: a.Passwords,
		Keyring: a.Keyring, Resolver: a.Resolver, Redis: a.redis, RedisPrefix: o.redisPrefix, Metrics: a.Metrics, Mail: composer,
		OAuthClientPerMinute: o.oauthLimit, Resources: append(routes.Resources(), o.resources...)})
	if err != nil {
		a.closeRedis()
		return nil, err
	}
	a.Router = router
	return a, nil
}

// MetricsHandler serves the application's Prometheus metrics at GET
// /metrics, and nothing else. It is for a listener of its own
// (METRICS_ADDR), which serve runs: the public router does not serve the
// metrics, so the public port never exposes them.
func (a *App) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.Metrics.Handler())
	return mux
}

// Start runs the background work until Shutdown: writing last-used times
// behind the requests, following the changes other processes make (the
// token cache is on only while they are followed), the mail outbox, the
// webhooks and the notices of expiry.
func (a *App) Start(ctx context.Context) {
	ctx, a.stop = context.WithCancel(context.WithoutCancel(ctx))
	a.workers.Go(func() {
		a.Resolver.RunUsageFlusher(ctx, a.flushEvery, func(err error) {
			a.Log.Warn("token usage not written yet; will retry", "error", err.Error())
		})
	})
	a.workers.Go(func() { a.Feed.Run(ctx) })
	a.workers.Go(func() { a.Mail.Run(ctx) })
	a.workers.Go(func() { a.Webhooks.Run(ctx) })
	a.workers.Go(func() { a.Expiry.Run(ctx) })
}

// expiryMail is the composer of the expiry notices' mail: none unless a
// mail server is configured (with SMTP_URL empty, mail goes to the log,
// and three notices per token there would be noise).
func expiryMail(cfg config.Config, composer *mail.Composer) *mail.Composer {
	if cfg.SMTPURL == "" {
		return nil
	}
	return composer
}

// Shutdown stops the background work, writing what is pending (unsent
// mail stays in the outbox for the next start), and closes
// what the application opened (not the database). Call it once the
// server has stopped taking requests, so that their uses are written too.
func (a *App) Shutdown() {
	if a.stop != nil {
		a.stop()
		a.workers.Wait()
	}
	a.closeRedis()
}

func (a *App) closeRedis() {
	if a.ownsRedis {
		_ = a.redis.Close()
	}
}

// openRedis connects to the Redis of url and checks that it answers, so
// that a wrong URL stops start-up instead of every login. Timeouts not set
// in the URL are short: a login waits for Redis.
func openRedis(ctx context.Context, url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = time.Second
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = time.Second
	}
	client := redis.NewClient(opts)
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("REDIS_URL: Redis does not answer: %w", err)
	}
	return client, nil
}
