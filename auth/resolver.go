// Package auth resolves bearer tokens at request time: it checks a secret's
// format, finds its token through a cache, decides whether the token may
// authenticate, records its use and slides its expiry. It knows nothing of
// HTTP frameworks: the Gin middleware, the gateway check and token
// introspection all call Resolve with plain values.
//
// The cache stays true through one way in, Apply: the models announce
// every change they commit in this process, and a ChangeFeed brings those
// that other processes commit.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"

	"tokenauth/models"
	"tokenauth/ratelimit"
)

// Why a request is not authenticated. Any other error from Resolve means
// the answer could not be found (a database outage).
var (
	// ErrNoToken: no Authorization header, or another scheme than Bearer.
	ErrNoToken = errors.New("no bearer token")
	// ErrMalformedHeader: several Authorization headers, or a Bearer
	// header without exactly one token.
	ErrMalformedHeader = errors.New("malformed Authorization header")
	// ErrInvalidToken: a token that is malformed, unknown, expired, idle,
	// revoked, paused, or whose user is deactivated. Which of them is not
	// told.
	ErrInvalidToken = errors.New("invalid token")
	// ErrIPNotAllowed: a live token used from outside its allowed
	// networks.
	ErrIPNotAllowed = errors.New("token not allowed from this address")
)

// Refused tells whether err is a reason a request is not authenticated
// (or not allowed: see ErrIPNotAllowed and RateLimitedError), rather than
// a failure to find out.
func Refused(err error) bool {
	var limited *RateLimitedError
	return errors.Is(err, ErrNoToken) || errors.Is(err, ErrMalformedHeader) || errors.Is(err, ErrInvalidToken) ||
		errors.Is(err, ErrIPNotAllowed) || errors.As(err, &limited)
}

// cacheSize bounds the token cache: 10,000 entries of about 1 KiB each.
const cacheSize = 10000

// maxUsageGranularity is the longest a token's last use may go unrecorded.
// Writing it at most once a minute per token loses nothing that people
// read ("last used" is read in minutes); a shorter idle timeout records
// more often (see usageGranularity).
const maxUsageGranularity = time.Minute

// usageGranularity is how stale the recorded last use of a token in use
// may be under the idle timeout idle: a tenth of it, at most a minute. A
// token used more often than its idle timeout is then always seen in use,
// however short the timeout.
func usageGranularity(idle time.Duration) time.Duration {
	if idle <= 0 {
		return maxUsageGranularity
	}
	return min(idle/10, maxUsageGranularity)
}

// MinIdleTimeout is the shortest idle timeout that can be honoured when
// pending uses are written every flushEvery. A use reaches the database at
// most a granularity (a tenth of the timeout) plus one flush interval after
// it happens, and what the database holds is what other instances, the
// token list and the operator's prune judge idleness by. At twice the
// flush interval, that delay is at most 0.6 of the timeout, which leaves
// the write itself time to finish before a token in use could look idle
// anywhere.
func MinIdleTimeout(flushEvery time.Duration) time.Duration { return 2 * flushEvery }

// Options are the settings that govern tokens at request time.
type Options struct {
	// IdleTimeout: a token unused this long stops working (0 = never).
	IdleTimeout time.Duration
	// Sliding moves a used login token's expiry to now + TTL, never past
	// its creation + MaxTTL.
	Sliding     bool
	TTL, MaxTTL time.Duration
	// CacheTTL is how long a successful lookup is reused (0 = no cache).
	CacheTTL time.Duration
	// UserLimit caps each user's requests across all their tokens (zero:
	// none).
	UserLimit models.RateLimit
	// ReauthMaxAge is how recent a token's proof of the password must be
	// for sensitive actions (0 = any; see Identity.RequireFreshAuth).
	ReauthMaxAge time.Duration
}

// Request is what Resolve needs to know of a request.
type Request struct {
	// Secret is the bearer token as the client sent it.
	Secret string
	// IP is the client's address, as far as the service trusts proxies.
	IP        string
	UserAgent string
	Now       time.Time
	// HolderUnknown says that the token's holder is not the caller, as in
	// token introspection, where a resource server asks about a token it
	// was sent: IP and UserAgent are empty, and the token's allowed
	// networks are not applied (they cannot be judged).
	HolderUnknown bool
}

// Identity is who made a request: the token and its user.
type Identity struct {
	// Token is the request's own copy: a handler may change it freely.
	// Token.User is the user; it carries what requests need, not the
	// password hash (see models.FindTokenByHash).
	Token models.APIToken
	// ExpiresAt is when the token expires now, a sliding expiry applied.
	ExpiresAt *time.Time
	// expiresHeader is ExpiresAt formatted, shared with the cache entry
	// when the expiry did not slide (net/http only reads header values).
	expiresHeader []string
	memo          *atomic.Value
	// Limits are the rate limits the request counted against (nil for a
	// token without any).
	Limits Limits
	// stale says that the token's proof of the password is older than
	// reauthMaxAge at the time of the request.
	stale        bool
	reauthMaxAge time.Duration
}

// Memo is a slot shared by every request whose token comes from the same
// lookup (one cache entry), for a value derived once from the token as
// stored, such as the headers the forward-auth check answers with. What
// is kept there must not depend on the request, nor on ExpiresAt (which
// slides); it goes when the entry does.
func (id *Identity) Memo() *atomic.Value { return id.memo }

// User returns the user the token belongs to.
func (id *Identity) User() *models.User { return &id.Token.User }

// ExpiresHeader returns the value of the Token-Expires-At header, or nil
// for a token that does not expire.
func (id *Identity) ExpiresHeader() []string {
	if id.ExpiresAt == nil {
		return nil
	}
	if id.expiresHeader == nil {
		id.expiresHeader = []string{id.ExpiresAt.UTC().Format(time.RFC3339)}
	}
	return id.expiresHeader
}

// Resolver turns bearer secrets into identities. It owns the token cache
// and the record of token use.
type Resolver struct {
	db    *gorm.DB
	pool  *pgxpool.Pool // nil on SQLite
	usage *usageRecorder
	cache *tokenCache // nil when Options.CacheTTL is 0
	opts  Options
	// granularity is how stale a recorded last use may be.
	granularity time.Duration
	// catchUp, when set, applies what other processes committed since the
	// last request, before the cache answers one (see sqliteWatch).
	catchUp func(context.Context) error

	// limiter keeps the budgets of rate-limited tokens and users.
	limiter ratelimit.QuotaLimiter
	// refusals remembers the refusals outside allowed networks recently
	// recorded, so that a client retrying cannot write an event per try.
	refusals *refusalLog

	hits, misses, invalidations, outages atomic.Uint64
	ipRefused, rateLimited, graceEnded   atomic.Uint64
}

// NewResolver returns a Resolver reading tokens from db (through pool,
// when there is one: see models.FindTokenByHash). Its cache starts
// switched off: a cached answer is safe only while changes made by other
// processes are followed, so the cache comes on when a ChangeFeed follows
// them.
func NewResolver(db *gorm.DB, pool *pgxpool.Pool, opts Options) *Resolver {
	r := &Resolver{db: db, pool: pool, usage: newUsageRecorder(db), opts: opts, granularity: usageGranularity(opts.IdleTimeout),
		limiter: ratelimit.NewMemoryQuota(), refusals: newRefusalLog()}
	if opts.CacheTTL > 0 {
		r.cache = newTokenCache(cacheSize, opts.CacheTTL)
		r.cache.setEnabled(false)
	}
	return r
}

// Resolve finds who the secret authenticates at req.Now. It returns
// ErrInvalidToken when the secret authenticates nobody; any other error
// means the database could not answer.
func (r *Resolver) Resolve(ctx context.Context, req Request) (*Identity, error) {
	legacy := false
	if !models.WellFormedToken(req.Secret) {
		// A key imported from Django has no prefix or checksum: its shape
		// earns it the one lookup any unknown token gets.
		if legacy = models.LegacyTokenShape(req.Secret); !legacy {
			return nil, ErrInvalidToken
		}
	}
	f, err := r.lookup(ctx, req.Secret, req.Now)
	if err != nil {
		return nil, refusal(err)
	}
	e := f.entry
	noted := e.noted.Load()
	activity := e.token.Activity(noted)
	ok := r.live(e.token, legacy, activity, req.Now)
	if !ok && !f.fresh {
		// A cached entry knows the uses and slid expiries of this process
		// only; other instances write theirs without announcing them.
		// Before a token is refused as idle or expired, the database has
		// its say.
		if f, err = r.load(ctx, f.key); err != nil {
			return nil, refusal(err)
		}
		e = f.entry
		noted = e.noted.Load()
		activity = e.token.Activity(noted)
		ok = r.live(e.token, legacy, activity, req.Now)
	}
	if !ok {
		if graceEnded(e.token, activity, req.Now) {
			if err := r.endGrace(ctx, e.token, req); err != nil {
				return nil, err
			}
		}
		return nil, ErrInvalidToken
	}
	if f.fresh && r.cache != nil {
		r.cache.add(f.gen, f.key, e, req.Now)
	}
	if len(e.token.AllowedIPs) > 0 && !req.HolderUnknown && !e.token.AllowedIPs.Contains(req.IP) {
		return nil, r.refuseIP(ctx, e.token, req)
	}
	var limits Limits
	if !e.token.RateLimit().IsZero() || !r.opts.UserLimit.IsZero() {
		var err error
		if limits, err = r.spend(ctx, e.token, req.Now); err != nil {
			return nil, err
		}
	}
	expires := activity.ExpiresAt
	if noted == nil || req.Now.Sub(noted.LastUsedAt) >= r.granularity || !knownNetwork(noted, req.IP) {
		expires = r.recordUse(e, noted, expires, req)
	}
	id := &Identity{Token: *e.token, ExpiresAt: expires, Limits: limits, memo: &e.memo}
	id.judgeFreshness(e.token, req.Now, r.opts.ReauthMaxAge)
	if expires == e.token.ExpiresAt {
		id.expiresHeader = e.expiresHeader
	}
	return id, nil
}

// knownNetwork tells whether the token was used from the network of ip
// before, as far as this process noted: a use from a network it has not
// noted is recorded at once, not at the next granularity, and the write of
// the use merges it with the networks stored (which the lookup does not
// read: decoding them cost a twentieth of an uncached request). The same
// address as the last noted use settles it without parsing. noted is the
// last use noted, not nil.
func knownNetwork(noted *models.Usage, ip string) bool {
	if noted.IP == ip {
		return true
	}
	p, ok := models.NetworkOf(ip)
	if !ok {
		return true // nothing to record
	}
	return noted.Networks.Has(p)
}

// graceEnded tells whether t is the previous secret of a rotated token
// whose grace has ended (and which nothing else has killed yet).
func graceEnded(t *models.APIToken, activity models.Usage, now time.Time) bool {
	return t.RotatedToID != nil && t.RevokedAt == nil && activity.ExpiresAt != nil && !now.Before(*activity.ExpiresAt)
}

// endGrace revokes the previous secret of a rotated token whose grace has
// ended, with an event, on its first use after the grace: once, whatever
// the instance (see models.ExpireRotated).
func (r *Resolver) endGrace(ctx context.Context, t *models.APIToken, req Request) error {
	r.graceEnded.Add(1)
	ctx = models.WithClient(ctx, models.Client{IP: req.IP, UserAgent: req.UserAgent})
	return models.ExpireRotated(ctx, r.db, t)
}

// refuseIP records that t was used from outside its allowed networks (at
// most once a minute per token and network) and returns the refusal.
func (r *Resolver) refuseIP(ctx context.Context, t *models.APIToken, req Request) error {
	r.ipRefused.Add(1)
	if r.refusals.first(t.ID, req.IP, req.Now) {
		ctx = models.WithClient(ctx, models.Client{IP: req.IP, UserAgent: req.UserAgent})
		if err := models.RecordTokenEvent(ctx, r.db, t, models.EventTokenIPRefused); err != nil {
			return err
		}
	}
	return ErrIPNotAllowed
}

// live is the one decision of whether a token may authenticate at now: its
// user is active, a legacy-shaped secret found a legacy token, and the
// token itself is alive (models.APIToken.Alive).
func (r *Resolver) live(t *models.APIToken, legacy bool, activity models.Usage, now time.Time) bool {
	return t.User.IsActive && (!legacy || t.Kind == models.KindLegacy) && t.Alive(now, activity, r.opts.IdleTimeout)
}

// recordUse notes the use (when, from which client and network) and, for a
// sliding login token, moves its expiry
// to now + TTL, never past created_at + MaxTTL. It returns the expiry that
// now applies. Of the requests that find the same last use at once, one
// records: the others see it replaced and leave it.
func (r *Resolver) recordUse(e *cacheEntry, prev *models.Usage, expires *time.Time, req Request) *time.Time {
	t, now := e.token, req.Now
	use := &models.Usage{LastUsedAt: now, IP: req.IP, UserAgent: req.UserAgent}
	if p, ok := models.NetworkOf(req.IP); ok {
		use.Networks = models.NetworkUses{{Network: p, LastUsedAt: now}}
	}
	if prev != nil {
		use.Networks = prev.Networks.Merge(use.Networks)
	}
	// The previous secret of a rotated token never slides past its grace.
	if r.opts.Sliding && t.Kind == models.KindLogin && t.RotatedToID == nil && expires != nil {
		next := now.Add(r.opts.TTL)
		if limit := t.CreatedAt.Add(r.opts.MaxTTL); next.After(limit) {
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
		r.usage.record(t.ID, *use)
	}
	return expires
}

// found is the answer of a lookup: its entry and, for one fresh from the
// database, what adding it to the cache takes (the key, and the cache's
// generation when the lookup started).
type found struct {
	entry *cacheEntry
	fresh bool
	gen   uint64
	key   cacheKey
}

// lookup finds the token by the hash of its secret, through the cache. The
// entry it returns carries the last use this process knows of, which may
// be ahead of the database. An entry fresh from the database is not
// cached here: Resolve adds it once the token is judged live.
func (r *Resolver) lookup(ctx context.Context, secret string, now time.Time) (found, error) {
	// Hashed from a stack copy: converting the secret itself would allocate.
	// Every secret that gets this far (a token, or a key imported from
	// Django) fits.
	var buf [64]byte
	if len(secret) > len(buf) {
		return found{}, models.ErrNotFound
	}
	key := sha256.Sum256(buf[:copy(buf[:], secret)])
	if r.cache != nil {
		if r.catchUp != nil {
			if err := r.catchUp(ctx); err != nil {
				return found{}, err
			}
		}
		if e, ok := r.cache.get(key, now); ok {
			r.hits.Add(1)
			return found{entry: e, key: key}, nil
		}
	}
	return r.load(ctx, key)
}

// load finds the token whose secret hashes to key in the database.
func (r *Resolver) load(ctx context.Context, key cacheKey) (found, error) {
	f := found{key: key, fresh: true}
	if r.cache != nil {
		f.gen = r.cache.begin()
	}
	r.misses.Add(1)
	t, err := models.FindTokenByHash(ctx, r.db, r.pool, hex.EncodeToString(key[:]))
	if err != nil {
		return found{}, err
	}
	e := &cacheEntry{token: t}
	if t.ExpiresAt != nil {
		e.expiresHeader = []string{t.ExpiresAt.UTC().Format(time.RFC3339)}
	}
	if u, ok := r.usage.pending(t.ID); ok {
		e.noted.Store(&u)
	} else if t.LastUsedAt != nil {
		e.noted.Store(&models.Usage{LastUsedAt: *t.LastUsedAt})
	}
	f.entry = e
	return f, nil
}

// refusal is err as Resolve returns it: a token the database does not
// know authenticates nobody.
func refusal(err error) error {
	if errors.Is(err, models.ErrNotFound) {
		return ErrInvalidToken
	}
	return err
}

// Apply drops what a committed change may have made wrong: the one way in
// for changes, whether this process made them (models.ListenForChanges)
// or another announced them (ChangeFeed).
func (r *Resolver) Apply(ch models.Change) {
	r.invalidations.Add(1)
	if r.cache == nil {
		return
	}
	if ch.All {
		r.cache.purge()
		return
	}
	if len(ch.UserIDs) > 0 {
		r.cache.forgetUsers(ch.UserIDs)
	}
	if len(ch.TokenIDs) > 0 {
		r.cache.forgetTokens(ch.TokenIDs)
	}
}

// setCaching switches the cache on, when changes made by other processes
// are followed, or off (and empty) when they might be missed.
func (r *Resolver) setCaching(on bool) {
	if r.cache == nil {
		return
	}
	if !on && r.cache.enabled() {
		r.outages.Add(1)
	}
	r.cache.setEnabled(on)
}

// Activity is a token's record of use as far as this process knows, which
// may be ahead of the database.
type Activity struct {
	LastUsedAt    *time.Time
	LastIP        string
	LastUserAgent string
	// Networks are the last networks the token was used from, newest
	// first.
	Networks models.NetworkUses
}

// Activity returns t's record of use, its pending use included.
func (r *Resolver) Activity(t *models.APIToken) Activity {
	a := Activity{LastUsedAt: t.LastUsedAt, LastIP: t.LastIP, LastUserAgent: t.LastUserAgent, Networks: t.Networks}
	if u, ok := r.usage.pending(t.ID); ok {
		if a.LastUsedAt == nil || u.LastUsedAt.After(*a.LastUsedAt) {
			a.LastUsedAt = &u.LastUsedAt
			if u.IP != "" {
				a.LastIP, a.LastUserAgent = u.IP, u.UserAgent
			}
		}
		a.Networks = a.Networks.Merge(u.Networks)
	}
	return a
}

// FlushUsage writes every use not yet in the database. Uses that could not
// be written stay pending for the next flush.
func (r *Resolver) FlushUsage(ctx context.Context) error { return r.usage.flush(ctx) }

// RunUsageFlusher writes pending uses every interval until ctx ends, then
// once more with a fresh deadline, so that a graceful stop loses nothing.
func (r *Resolver) RunUsageFlusher(ctx context.Context, interval time.Duration, onError func(error)) {
	r.usage.run(ctx, interval, onError)
}

// Stats counts what a Resolver did since it was made.
type Stats struct {
	CacheHits uint64
	// CacheMisses counts the lookups that went to the database: every
	// lookup while the cache is off.
	CacheMisses uint64
	// CacheEntries is the number of lookups remembered now.
	CacheEntries int
	// CacheEnabled is false when the cache is configured off, and while
	// changes made by other processes cannot be followed.
	CacheEnabled bool
	// Invalidations counts the changes applied (see Apply).
	Invalidations uint64
	// CacheOutages counts the times the cache was switched off because
	// changes made by other processes could no longer be followed.
	CacheOutages uint64
	// PendingUses is the number of tokens whose last use is not written
	// to the database yet.
	PendingUses int
	// IPRefused counts the requests refused outside a token's allowed
	// networks; RateLimited those refused over a rate limit; GraceEnded
	// the uses of a rotated token's previous secret after its grace.
	IPRefused, RateLimited, GraceEnded uint64
}

// Stats returns the counters of the Resolver.
func (r *Resolver) Stats() Stats {
	s := Stats{CacheHits: r.hits.Load(), CacheMisses: r.misses.Load(),
		Invalidations: r.invalidations.Load(), CacheOutages: r.outages.Load(), PendingUses: r.usage.len(),
		IPRefused: r.ipRefused.Load(), RateLimited: r.rateLimited.Load(), GraceEnded: r.graceEnded.Load()}
	if r.cache != nil {
		s.CacheEntries, s.CacheEnabled = r.cache.len(), r.cache.enabled()
	}
	return s
}
