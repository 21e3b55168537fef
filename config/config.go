// Package config loads the service's settings from the environment (and an
// optional .env file) and opens the database they name.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"tokenauth/models"
	"tokenauth/password"
)

// Config holds every setting of the service. Load fills it from the
// environment; tests build one with Default and change what they need.
type Config struct {
	DatabaseURL string
	Addr        string
	// MetricsAddr is where the Prometheus metrics are served, on a
	// listener of their own; empty serves none.
	MetricsAddr string

	TokenTTL         time.Duration
	TokenMaxTTL      time.Duration
	TokenIdleTimeout time.Duration
	TokenSliding     bool
	MaxTokensPerUser int
	TokenCacheTTL    time.Duration
	// TokenRotationMaxGrace caps the grace_seconds of a rotation.
	TokenRotationMaxGrace time.Duration
	// UserRateLimit caps each user's requests across all their tokens
	// (zero: no cap).
	UserRateLimit models.RateLimit

	AllowRegistration bool
	PasswordMinLength int
	// PasswordHashConcurrency bounds the password hashes that run at once;
	// HashQueueTimeout how long a hash waits for one of them before its
	// request is refused as overloaded (REQUEST_TIMEOUT ends the wait too,
	// if it comes first).
	PasswordHashConcurrency int
	HashQueueTimeout        time.Duration

	SecurityEventRetention time.Duration

	// SecretKey, when set, is the server's secret key (package keyring);
	// when empty, the key migrate generated and stored is used.
	SecretKey string

	LoginUserFailures int
	LoginUserWindow   time.Duration
	LoginIPPerMinute  int
	TrustedProxies    []string
	RedisURL          string

	// PublicURL is the base of every link in a mail.
	PublicURL string
	// GitHubSecretScanningKeys is a file or URL of GitHub's secret-scanning
	// public keys; empty turns the receiver off.
	GitHubSecretScanningKeys string
	// SMTPURL names the mail server; empty, mail goes to the log.
	SMTPURL  string
	MailFrom string
	// PasswordResetTTL is how long a password reset link works.
	PasswordResetTTL time.Duration
	// RequireVerifiedEmail refuses logins until the address is verified.
	RequireVerifiedEmail bool
	// ReauthMaxAge is how recently a token's holder must have proved the
	// password for sensitive actions (creating or rotating tokens,
	// logout-all, changing the email, the second factor); 0 turns the
	// requirement off.
	ReauthMaxAge time.Duration

	CORSAllowedOrigins []string
	// ExtraScopes are scopes of services behind a proxy, added to the
	// catalogue that tokens may be limited to; those services check them
	// through GET /api/auth/check?scope=... (docs/GATEWAY.md).
	ExtraScopes       []string
	MaxBodyBytes      int64
	ReadHeaderTimeout time.Duration
	RequestTimeout    time.Duration
	ShutdownGrace     time.Duration

	LogLevel  string
	LogFormat string
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		DatabaseURL:           "tokenauth.db",
		Addr:                  ":8080",
		MetricsAddr:           "127.0.0.1:9464",
		TokenTTL:              720 * time.Hour,
		TokenMaxTTL:           8760 * time.Hour,
		TokenIdleTimeout:      2160 * time.Hour,
		MaxTokensPerUser:      50,
		TokenCacheTTL:         30 * time.Second,
		TokenRotationMaxGrace: 24 * time.Hour,
		PasswordMinLength:     10,
		// One hash per core but one: the core left over serves what a
		// login does besides its hash, and every request that checks no
		// password. Measured on 2 cores, 1 slot gave 0.95 of its hashes'
		// ceiling and kept 0.84 of the API's throughput during a login
		// flood; 2 slots, 0.73 and 0.79 (docs/HASHING.md).
		PasswordHashConcurrency: max(1, runtime.NumCPU()-1),
		HashQueueTimeout:        2 * time.Second,
		SecurityEventRetention:  2160 * time.Hour,
		LoginUserFailures:       5,
		LoginUserWindow:         15 * time.Minute,
		LoginIPPerMinute:        20,
		PublicURL:               "http://localhost:8080",
		MailFrom:                "tokenauth <no-reply@localhost>",
		PasswordResetTTL:        time.Hour,
		ReauthMaxAge:            15 * time.Minute,
		MaxBodyBytes:            1 << 20,
		ReadHeaderTimeout:       5 * time.Second,
		RequestTimeout:          15 * time.Second,
		ShutdownGrace:           20 * time.Second,
		LogLevel:                "info",
		LogFormat:               "json",
	}
}

// WriteTimeout is how long the server gives itself to write a response
// (routes.NewHTTPServer). REQUEST_TIMEOUT must end a request's waits
// before it, or a slow request would be cut off without an answer.
const WriteTimeout = 30 * time.Second

// UnknownSetting is a key of the .env file that is no setting: most
// likely a misspelt one, which would otherwise be ignored in silence.
type UnknownSetting struct {
	Key string
	// Like is the setting spelt most like Key, when one is close.
	Like string
}

// Load reads the configuration from the environment, through lookupEnv
// (os.LookupEnv). Values from a .env file at envFile (if it exists) fill in
// what the environment does not set; a setting set to empty counts as not
// set, except METRICS_ADDR, which empty turns off. A bad value is an error
// that names the setting; nothing is created or opened to find it. The
// keys of the .env file that are no setting come back apart, to be warned
// about.
func Load(lookupEnv func(string) (string, bool), envFile string) (Config, []UnknownSetting, error) {
	file, err := readDotEnv(envFile)
	if err != nil {
		return Config{}, nil, err
	}
	p := parser{env: lookupEnv, file: file, known: map[string]bool{}}
	c := Default()
	p.str("DATABASE_URL", &c.DatabaseURL)
	p.str("ADDR", &c.Addr)
	p.strOrEmpty("METRICS_ADDR", &c.MetricsAddr)
	p.duration("TOKEN_TTL", &c.TokenTTL, false)
	p.duration("TOKEN_MAX_TTL", &c.TokenMaxTTL, false)
	p.duration("TOKEN_IDLE_TIMEOUT", &c.TokenIdleTimeout, true)
	p.boolean("TOKEN_SLIDING", &c.TokenSliding)
	p.integer("MAX_TOKENS_PER_USER", &c.MaxTokensPerUser, 1, 100000)
	p.duration("TOKEN_CACHE_TTL", &c.TokenCacheTTL, true)
	p.duration("TOKEN_ROTATION_MAX_GRACE", &c.TokenRotationMaxGrace, true)
	p.rateLimit("USER_RATE_LIMIT", &c.UserRateLimit)
	p.boolean("ALLOW_REGISTRATION", &c.AllowRegistration)
	p.integer("PASSWORD_MIN_LENGTH", &c.PasswordMinLength, 1, password.MaxLength)
	p.integer("PASSWORD_HASH_CONCURRENCY", &c.PasswordHashConcurrency, 1, 256)
	p.duration("HASH_QUEUE_TIMEOUT", &c.HashQueueTimeout, false)
	p.duration("SECURITY_EVENT_RETENTION", &c.SecurityEventRetention, false)
	p.str("SECRET_KEY", &c.SecretKey)
	p.integer("LOGIN_USER_FAILURES", &c.LoginUserFailures, 1, 1000000)
	p.duration("LOGIN_USER_WINDOW", &c.LoginUserWindow, false)
	p.integer("LOGIN_IP_PER_MINUTE", &c.LoginIPPerMinute, 1, 1000000)
	p.list("TRUSTED_PROXIES", &c.TrustedProxies)
	p.str("REDIS_URL", &c.RedisURL)
	p.str("PUBLIC_URL", &c.PublicURL)
	p.str("SMTP_URL", &c.SMTPURL)
	p.str("GITHUB_SECRET_SCANNING_KEYS", &c.GitHubSecretScanningKeys)
	p.str("MAIL_FROM", &c.MailFrom)
	p.duration("PASSWORD_RESET_TTL", &c.PasswordResetTTL, false)
	p.boolean("REQUIRE_VERIFIED_EMAIL", &c.RequireVerifiedEmail)
	p.duration("REAUTH_MAX_AGE", &c.ReauthMaxAge, true)
	p.list("CORS_ALLOWED_ORIGINS", &c.CORSAllowedOrigins)
	p.list("EXTRA_SCOPES", &c.ExtraScopes)
	var maxBody int
	p.integer("MAX_BODY_BYTES", &maxBody, 1, 1<<30)
	if maxBody > 0 {
		c.MaxBodyBytes = int64(maxBody)
	}
	p.duration("READ_HEADER_TIMEOUT", &c.ReadHeaderTimeout, false)
	p.duration("REQUEST_TIMEOUT", &c.RequestTimeout, false)
	p.duration("SHUTDOWN_GRACE", &c.ShutdownGrace, true)
	p.oneOf("LOG_LEVEL", &c.LogLevel, "debug", "info", "warn", "error")
	p.oneOf("LOG_FORMAT", &c.LogFormat, "json", "text")
	if p.err == nil {
		p.err = c.validate()
	}
	return c, unknownSettings(file, p.known), p.err
}

func (c Config) validate() error {
	if err := checkDatabaseURL(c.DatabaseURL); err != nil {
		return err
	}
	if err := checkListenAddress(c.Addr); err != nil {
		return fmt.Errorf("ADDR: %w", err)
	}
	if c.RequestTimeout >= WriteTimeout {
		return fmt.Errorf("REQUEST_TIMEOUT: %s is not under the server's write timeout (%s): a request that waited that long could not be answered", c.RequestTimeout, WriteTimeout)
	}
	if c.TokenTTL > c.TokenMaxTTL {
		return errors.New("TOKEN_TTL: must not be longer than TOKEN_MAX_TTL")
	}
	if c.SecretKey != "" && len(c.SecretKey) < minSecretKeyLength {
		// The key itself is not repeated here: it is a secret.
		return fmt.Errorf("SECRET_KEY: must be at least %d characters of high entropy (such as openssl rand -base64 32)", minSecretKeyLength)
	}
	for _, proxy := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(proxy); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(proxy); err != nil {
			return fmt.Errorf("TRUSTED_PROXIES: %q is neither an IP address nor a CIDR range", proxy)
		}
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") &&
		!strings.HasPrefix(c.RedisURL, "unix://") {
		// The URL may hold a password: it is not repeated here.
		return errors.New("REDIS_URL: must be a redis://, rediss:// or unix:// URL")
	}
	if err := c.checkMail(); err != nil {
		return err
	}
	if c.ReauthMaxAge > 0 && c.ReauthMaxAge < time.Second {
		// Clients are told the age in whole seconds (max_age of RFC 9470).
		return fmt.Errorf("REAUTH_MAX_AGE: %s is under a second; use 0 to turn re-authentication off, or 1s or more", c.ReauthMaxAge)
	}
	if c.MetricsAddr != "" {
		if err := checkListenAddress(c.MetricsAddr); err != nil {
			return fmt.Errorf("METRICS_ADDR: %w; empty serves no metrics", err)
		}
	}
	for _, scope := range c.ExtraScopes {
		if !models.ValidScopeName(scope) {
			return fmt.Errorf("EXTRA_SCOPES: %q is not a scope name: 1 to 64 letters, digits and . _ - : / (such as billing:read)", scope)
		}
	}
	for _, origin := range c.CORSAllowedOrigins {
		if origin == "*" || !strings.HasPrefix(origin, "http://") && !strings.HasPrefix(origin, "https://") {
			return fmt.Errorf("CORS_ALLOWED_ORIGINS: %q is not an origin like https://app.example.com", origin)
		}
	}
	return nil
}

// minSecretKeyLength is the shortest SECRET_KEY accepted (keyring.MinKeyLength).
const minSecretKeyLength = 32

// checkListenAddress checks the form of a listen address, host:port; the
// host may be empty (every interface) and the port 0 (any free one).
func checkListenAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		var addrErr *net.AddrError
		if errors.As(err, &addrErr) {
			err = errors.New(addrErr.Err)
		}
		return fmt.Errorf("%q is not HOST:PORT, such as :8080 or 127.0.0.1:8080 (%v)", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has no port number from 0 to 65535 (such as :8080 or 127.0.0.1:8080)", addr)
	}
	return nil
}

// unknownSettings returns the keys of the .env file that no setting read,
// in order, each with the setting spelt most like it.
func unknownSettings(file map[string]string, known map[string]bool) []UnknownSetting {
	var unknown []UnknownSetting
	for key := range file {
		if known[key] {
			continue
		}
		u := UnknownSetting{Key: key}
		best := 3 // at most two edits away, or no suggestion
		for setting := range known {
			if d := editDistance(key, setting); d < best || d == best && setting < u.Like {
				u.Like, best = setting, d
			}
		}
		unknown = append(unknown, u)
	}
	sort.Slice(unknown, func(i, j int) bool { return unknown[i].Key < unknown[j].Key })
	return unknown
}

// editDistance is the Levenshtein distance of two ASCII keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// parser reads typed settings, from the environment and then the .env
// file, notes which keys are settings, and keeps the first error.
type parser struct {
	env   func(string) (string, bool)
	file  map[string]string
	known map[string]bool
	err   error
}

// get returns the setting, unless it is empty.
func (p *parser) get(key string) (string, bool) {
	p.known[key] = true
	if p.err != nil {
		return "", false
	}
	v, _ := p.env(key)
	if v = strings.TrimSpace(v); v == "" {
		v = strings.TrimSpace(p.file[key])
	}
	return v, v != ""
}

// strOrEmpty reads a setting that empty turns off: set in the
// environment, even to empty, it wins over the file.
func (p *parser) strOrEmpty(key string, dst *string) {
	p.known[key] = true
	if p.err != nil {
		return
	}
	if v, ok := p.env(key); ok {
		*dst = strings.TrimSpace(v)
	} else if v, ok := p.file[key]; ok {
		*dst = strings.TrimSpace(v)
	}
}

func (p *parser) fail(key, value, want string) {
	p.err = fmt.Errorf("%s: %q is not %s", key, value, want)
}

func (p *parser) str(key string, dst *string) {
	if v, ok := p.get(key); ok {
		*dst = v
	}
}

func (p *parser) duration(key string, dst *time.Duration, zeroAllowed bool) {
	v, ok := p.get(key)
	if !ok {
		return
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		p.fail(key, v, "a duration such as 90s, 15m or 720h")
	case d < 0 || d == 0 && !zeroAllowed:
		p.fail(key, v, "a positive duration")
	default:
		*dst = d
	}
}

// rateLimit reads a budget such as "1000/1h" (requests/period, the period
// from 1s to 24h, or second, minute, hour, day); empty is none.
func (p *parser) rateLimit(key string, dst *models.RateLimit) {
	v, ok := p.get(key)
	if !ok {
		return
	}
	r, err := ParseRateLimit(v)
	if err != nil {
		p.fail(key, v, err.Error())
		return
	}
	*dst = r
}

// ParseRateLimit reads a budget spelt requests/period, such as "1000/1h".
func ParseRateLimit(v string) (models.RateLimit, error) {
	n, per, ok := strings.Cut(v, "/")
	requests, err := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err != nil || requests < 1 || requests > 1000000000 {
		return models.RateLimit{}, errors.New(`a number of requests from 1 and a period, such as "1000/1h"`)
	}
	period, err := models.ParsePeriod(strings.TrimSpace(per))
	if err != nil {
		return models.RateLimit{}, errors.New(`a number of requests and a period from 1s to 24h, such as "1000/1h"`)
	}
	return models.RateLimit{Requests: requests, Period: period}, nil
}

func (p *parser) boolean(key string, dst *bool) {
	v, ok := p.get(key)
	if !ok {
		return
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(key, v, "true or false")
		return
	}
	*dst = b
}

func (p *parser) integer(key string, dst *int, lo, hi int) {
	v, ok := p.get(key)
	if !ok {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.fail(key, v, fmt.Sprintf("a whole number from %d to %d", lo, hi))
		return
	}
	*dst = n
}

func (p *parser) list(key string, dst *[]string) {
	v, ok := p.get(key)
	if !ok {
		return
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	*dst = out
}

func (p *parser) oneOf(key string, dst *string, allowed ...string) {
	v, ok := p.get(key)
	if !ok {
		return
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			*dst = a
			return
		}
	}
	p.fail(key, v, "one of "+strings.Join(allowed, ", "))
}

// readDotEnv reads KEY=VALUE lines; a missing file is not an error.
func readDotEnv(path string) (map[string]string, error) {
	values := map[string]string{}
	if path == "" {
		return values, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return values, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for n := 1; scanner.Scan(); n++ {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return nil, fmt.Errorf("%s line %d: expected KEY=VALUE", path, n)
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		values[strings.TrimSpace(key)] = value
	}
	return values, scanner.Err()
}
