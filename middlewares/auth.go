package middlewares

import (
	"errors"
	"slices"
	"strings"
	"time"

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
// or changes a user tells it through ForgetTokens and ForgetUser.
type Authenticator struct {
	db      *gorm.DB
	usage   *models.UsageRecorder
	cache   *tokenCache // nil when TOKEN_CACHE_TTL is 0
	idle    time.Duration
	sliding bool
	ttl     time.Duration
	maxTTL  time.Duration
}

// NewAuthenticator returns an Authenticator reading tokens from db and
// recording their use in usage.
func NewAuthenticator(db *gorm.DB, cfg config.Config, usage *models.UsageRecorder) *Authenticator {
	a := &Authenticator{db: db, usage: usage, idle: cfg.TokenIdleTimeout,
		sliding: cfg.TokenSliding, ttl: cfg.TokenTTL, maxTTL: cfg.TokenMaxTTL}
	if cfg.TokenCacheTTL > 0 {
		a.cache = newTokenCache(cacheSize, cfg.TokenCacheTTL)
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
		tok, err := a.lookup(c, models.HashToken(secret), now)
		if errors.Is(err, models.ErrNotFound) {
			c.Set(authErrorKey, apierror.ErrInvalidToken)
			return
		}
		if err != nil {
			apierror.Abort(c, err)
			return
		}
		if legacy && tok.Kind != models.KindLegacy {
			c.Set(authErrorKey, apierror.ErrInvalidToken)
			return
		}
		pending, known := a.usage.Pending(tok.ID)
		activity := tok.Activity(pending, known)
		if !tok.User.IsActive || !tok.Alive(now, activity, a.idle) {
			c.Set(authErrorKey, apierror.ErrInvalidToken)
			return
		}
		expires := activity.ExpiresAt
		neverUsed := tok.LastUsedAt == nil && !known
		if neverUsed || now.Sub(activity.LastUsedAt) >= usageGranularity {
			expires = a.recordUse(tok, expires, now)
		}
		setToken(c, tok)
		c.Header("Cache-Control", "no-store")
		if expires != nil {
			c.Header("Token-Expires-At", expires.UTC().Format(time.RFC3339))
		}
	}
}

// recordUse notes the use and, for a sliding login token, moves its expiry
// to now + TOKEN_TTL, never past created_at + TOKEN_MAX_TTL. It returns
// the expiry that now applies.
func (a *Authenticator) recordUse(t *models.APIToken, expires *time.Time, now time.Time) *time.Time {
	use := models.Usage{LastUsedAt: now}
	if a.sliding && t.Kind == models.KindLogin && expires != nil {
		next := now.Add(a.ttl)
		if limit := t.CreatedAt.Add(a.maxTTL); next.After(limit) {
			next = limit
		}
		if next.After(*expires) {
			use.ExpiresAt, expires = &next, &next
		}
	}
	a.usage.Record(t.ID, use)
	return expires
}

// lookup finds the token by the hash of its secret, through the cache.
func (a *Authenticator) lookup(c *gin.Context, keyHash string, now time.Time) (*models.APIToken, error) {
	if a.cache == nil {
		return models.FindTokenByHash(c.Request.Context(), a.db, keyHash)
	}
	if t, ok := a.cache.get(keyHash, now); ok {
		return t, nil
	}
	gen := a.cache.begin()
	t, err := models.FindTokenByHash(c.Request.Context(), a.db, keyHash)
	if err == nil && t.RevokedAt == nil && t.User.IsActive {
		a.cache.add(gen, keyHash, t, now)
	}
	return t, err
}

// ForgetTokens drops what this process remembers of the tokens, so that
// their next request reaches the database.
func (a *Authenticator) ForgetTokens(ids ...uint) {
	if a.cache == nil || len(ids) == 0 {
		return
	}
	a.cache.forget(func(t *models.APIToken) bool { return slices.Contains(ids, t.ID) })
}

// ForgetUser drops what this process remembers of every token of the user.
func (a *Authenticator) ForgetUser(userID uint) {
	if a.cache == nil {
		return
	}
	a.cache.forget(func(t *models.APIToken) bool { return t.UserID == userID })
}

// LastUsed returns when the token was last used as far as this process
// knows, which may be ahead of the database.
func (a *Authenticator) LastUsed(t *models.APIToken) *time.Time {
	if u, ok := a.usage.Pending(t.ID); ok {
		return &u.LastUsedAt
	}
	return t.LastUsedAt
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
	fields := strings.Fields(rest)
	if len(fields) != 1 {
		return "", apierror.ErrInvalidAuthzn
	}
	return fields[0], nil
}
