package middlewares

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/config"
	"tokenauth/models"
)

// usageGranularity is how stale a token's last-used time may be. Writing it
// at most once a minute per token loses nothing that matters: idle timeouts
// are counted in hours or days, and people read "last used" in minutes.
const usageGranularity = time.Minute

// cacheSize bounds the token cache: 10,000 entries of about 1 KiB each.
const cacheSize = 10000

// Authenticator resolves bearer tokens to users. It owns the cache of
// lookups and the record of token use, so everything that revokes a token
// or changes a user tells it through ForgetTokens and ForgetUser. Changes
// made by other processes reach it through a ChangeFeed, without which
// the cache stays off (see NewAuthenticator).
type Authenticator struct {
	db      *gorm.DB
	usage   *models.UsageRecorder
	cache   *tokenCache // nil when TOKEN_CACHE_TTL is 0
	idle    time.Duration
	sliding bool
	ttl     time.Duration
	maxTTL  time.Duration

	hits, misses, invalidations, outages atomic.Uint64

	// cacheControl is the Cache-Control of every authenticated response,
	// one value shared by all of them rather than allocated per request
	// (net/http only reads header values).
	cacheControl []string
}

// NewAuthenticator returns an Authenticator reading tokens from db and
// recording their use in usage. Its cache starts switched off: a cached
// answer is safe only while changes made by other processes (another
// instance, an operator subcommand) are followed, so the cache comes on
// when a ChangeFeed starts following them.
func NewAuthenticator(db *gorm.DB, cfg config.Config, usage *models.UsageRecorder) *Authenticator {
	a := &Authenticator{db: db, usage: usage, idle: cfg.TokenIdleTimeout,
		sliding: cfg.TokenSliding, ttl: cfg.TokenTTL, maxTTL: cfg.TokenMaxTTL, cacheControl: []string{"no-store"}}
	if cfg.TokenCacheTTL > 0 {
		a.cache = newTokenCache(cacheSize, cfg.TokenCacheTTL)
		a.cache.setEnabled(false)
	}
	return a
}

// Identify reads the Authorization header and, for a live token, puts the
// token and its user on the context. A bad or missing token attaches
// nothing but the reason, which RequireAuth reports; only a database that
// cannot answer stops the request here.
func (a *Authenticator) Identify() gin.HandlerFunc {
	return func(c *gin.Context) {
		secret, authErr := bearerToken(c.Request.Header.Values("Authorization"))
		if authErr != nil {
			c.Set(authErrorKey, authErr)
			return
		}
		legacy := false
		if !models.WellFormedToken(secret) {
			// A key imported from Django has no prefix or checksum: its
			// shape earns it the one lookup any unknown token gets.
			if legacy = models.LegacyTokenShape(secret); !legacy {
				c.Set(authErrorKey, apierror.ErrInvalidToken)
				return
			}
		}
		now := time.Now().UTC()
		e, err := a.lookup(c.Request.Context(), secret, now)
		if errors.Is(err, models.ErrNotFound) {
			c.Set(authErrorKey, apierror.ErrInvalidToken)
			return
		}
		if err != nil {
			apierror.Abort(c, err)
			return
		}
		tok := e.token
		if legacy && tok.Kind != models.KindLegacy {
			c.Set(authErrorKey, apierror.ErrInvalidToken)
			return
		}
		noted := e.noted.Load()
		var activity models.Usage
		if noted != nil {
			activity = tok.Activity(*noted, true)
		} else {
			activity = tok.Activity(models.Usage{}, false)
		}
		if !tok.User.IsActive || !tok.Alive(now, activity, a.idle) {
			c.Set(authErrorKey, apierror.ErrInvalidToken)
			return
		}
		expires := activity.ExpiresAt
		if noted == nil || now.Sub(noted.LastUsedAt) >= usageGranularity {
			expires = a.recordUse(e, noted, expires, now)
		}
		if a.cache != nil {
			// What the cache holds is shared by concurrent requests: each
			// gets a copy. Without a cache, every lookup is the request's.
			own := *tok
			tok = &own
		}
		setToken(c, tok)
		h := c.Writer.Header()
		h["Cache-Control"] = a.cacheControl
		switch {
		case expires == nil:
		case expires == tok.ExpiresAt:
			h["Token-Expires-At"] = e.expiresHeader
		default: // moved by sliding expiry
			h.Set("Token-Expires-At", expires.UTC().Format(time.RFC3339))
		}
	}
}

// recordUse notes the use and, for a sliding login token, moves its expiry
// to now + TOKEN_TTL, never past created_at + TOKEN_MAX_TTL. It returns
// the expiry that now applies. Of the requests that find the same last use
// at once, one records: the others see it replaced and leave it.
func (a *Authenticator) recordUse(e *cacheEntry, prev *models.Usage, expires *time.Time, now time.Time) *time.Time {
	t := e.token
	use := &models.Usage{LastUsedAt: now}
	if a.sliding && t.Kind == models.KindLogin && expires != nil {
		next := now.Add(a.ttl)
		if limit := t.CreatedAt.Add(a.maxTTL); next.After(limit) {
			next = limit
		}
		if next.After(*expires) {
			use.ExpiresAt, expires = &next, &next
		}
	}
	if use.ExpiresAt == nil && prev != nil {
		use.ExpiresAt = prev.ExpiresAt // an earlier slide stays in force
	}
	if e.noted.CompareAndSwap(prev, use) {
		a.usage.Record(t.ID, *use)
	}
	return expires
}

// lookup finds the token by the hash of its secret, through the cache. The
// entry it returns carries the last use this process knows of, which may
// be ahead of the database.
func (a *Authenticator) lookup(ctx context.Context, secret string, now time.Time) (*cacheEntry, error) {
	// Hashed from a stack copy: converting the secret itself would allocate.
	// Every secret that gets this far (a token, or a key imported from
	// Django) fits.
	var buf [64]byte
	if len(secret) > len(buf) {
		return nil, models.ErrNotFound
	}
	key := sha256.Sum256(buf[:copy(buf[:], secret)])
	var gen uint64
	if a.cache != nil {
		if e, ok := a.cache.get(key, now); ok {
			a.hits.Add(1)
			return e, nil
		}
		gen = a.cache.begin()
	}
	a.misses.Add(1)
	t, err := models.FindTokenByHash(ctx, a.db, hex.EncodeToString(key[:]))
	if err != nil {
		return nil, err
	}
	e := &cacheEntry{token: t}
	if t.ExpiresAt != nil {
		e.expiresHeader = []string{t.ExpiresAt.UTC().Format(time.RFC3339)}
	}
	if u, ok := a.usage.Pending(t.ID); ok {
		e.noted.Store(&u)
	} else if t.LastUsedAt != nil {
		e.noted.Store(&models.Usage{LastUsedAt: *t.LastUsedAt})
	}
	if a.cache != nil && t.RevokedAt == nil && t.User.IsActive {
		a.cache.add(gen, key, e, now)
	}
	return e, nil
}

// ForgetTokens drops what this process remembers of the tokens, so that
// their next request reaches the database.
func (a *Authenticator) ForgetTokens(ids ...uint) {
	if a.cache == nil || len(ids) == 0 {
		return
	}
	a.cache.forgetTokens(ids)
}

// ForgetUser drops what this process remembers of every token of the user.
func (a *Authenticator) ForgetUser(userID uint) {
	if a.cache == nil {
		return
	}
	a.cache.forgetUsers([]uint{userID})
}

// apply drops what a change made by another process may have made wrong.
func (a *Authenticator) apply(ch models.Change) {
	a.invalidations.Add(1)
	if a.cache == nil {
		return
	}
	switch {
	case ch.All:
		a.cache.purge()
	case len(ch.UserIDs) > 0:
		a.cache.forgetUsers(ch.UserIDs)
	default:
		a.cache.forgetTokens(ch.TokenIDs)
	}
}

// setCaching switches the cache on, when changes made by other processes
// are followed, or off (and empty) when they might be missed.
func (a *Authenticator) setCaching(on bool) {
	if a.cache == nil {
		return
	}
	if !on && a.cache.enabled() {
		a.outages.Add(1)
	}
	a.cache.setEnabled(on)
}

// LastUsed returns when the token was last used as far as this process
// knows, which may be ahead of the database.
func (a *Authenticator) LastUsed(t *models.APIToken) *time.Time {
	if u, ok := a.usage.Pending(t.ID); ok {
		return &u.LastUsedAt
	}
	return t.LastUsedAt
}

// AuthStats counts what an Authenticator did since it was made.
type AuthStats struct {
	CacheHits uint64
	// CacheMisses counts the lookups that went to the database: every
	// lookup while the cache is off.
	CacheMisses uint64
	// CacheEntries is the number of lookups remembered now.
	CacheEntries int
	// CacheEnabled is false when TOKEN_CACHE_TTL is 0, and while changes
	// made by other processes cannot be followed.
	CacheEnabled bool
	// Invalidations counts the changes made by other processes that were
	// announced to this one.
	Invalidations uint64
	// CacheOutages counts the times the cache was switched off because
	// such changes could no longer be followed.
	CacheOutages uint64
	// PendingUses is the number of tokens whose last use is not written
	// to the database yet.
	PendingUses int
}

// Stats returns the counters of the Authenticator.
func (a *Authenticator) Stats() AuthStats {
	s := AuthStats{CacheHits: a.hits.Load(), CacheMisses: a.misses.Load(),
		Invalidations: a.invalidations.Load(), CacheOutages: a.outages.Load(), PendingUses: a.usage.Len()}
	if a.cache != nil {
		s.CacheEntries, s.CacheEnabled = a.cache.len(), a.cache.enabled()
	}
	return s
}

// RequireAuth stops a request that Identify could not authenticate, with
// 401 and the WWW-Authenticate header of RFC 6750 (or 400 for a malformed
// Authorization header).
func RequireAuth() gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := CurrentToken(c); ok {
			return
		}
		if v, ok := c.Get(authErrorKey); ok {
			if err, ok := v.(*apierror.Error); ok {
				apierror.Abort(c, err)
				return
			}
		}
		apierror.Abort(c, apierror.ErrAuthRequired)
	}
}

// RequireScope is RequireAuth, then 403 insufficient_scope unless the
// token grants scope.
func RequireScope(scope string) gin.HandlerFunc {
	requireAuth := RequireAuth()
	return func(c *gin.Context) {
		requireAuth(c)
		if c.IsAborted() {
			return
		}
		if t, _ := CurrentToken(c); !t.Scopes.Allows(scope) {
			apierror.Abort(c, apierror.InsufficientScope(scope))
		}
	}
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header. The scheme is case-insensitive (RFC 7235). No header, or another
// scheme, is 401 authentication_required; several headers, a Bearer with
// no token or with more than one, is 400 invalid_request.
func bearerToken(values []string) (string, *apierror.Error) {
	switch len(values) {
	case 0:
		return "", apierror.ErrAuthRequired
	case 1:
	default:
		return "", apierror.ErrInvalidAuthzn
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", apierror.ErrAuthRequired
	}
	// One credential, without spaces inside (strings.Fields' rule, without
	// the slice it allocates).
	token := strings.TrimSpace(rest)
	if token == "" || strings.IndexFunc(token, unicode.IsSpace) >= 0 {
		return "", apierror.ErrInvalidAuthzn
	}
	return token, nil
}
