package models

import (
	"time"

	"gorm.io/gorm"
)

// Token kinds. A login token is made by POST /api/login/ and is the only kind
// whose expiry may slide; a personal token is made by POST /api/tokens/; a
// legacy token was imported from Django and keeps its old bare hex key (see
// NewLegacyToken).
const (
	KindLogin    = "login"
	KindPersonal = "personal"
	KindLegacy   = "legacy"
)

// Reasons recorded when a token is revoked.
const (
	RevokedByUser           = "user"
	RevokedByLogout         = "logout"
	RevokedByPasswordChange = "password_change"
	RevokedByLimit          = "limit"
	RevokedByOperator       = "operator"
	RevokedByRotation       = "rotation"
	RevokedByIdle           = "idle"
	RevokedByLeakReport     = "leak_report"
	// RevokedByOAuth: POST /oauth/revoke (RFC 7009), by a resource server
	// or by the token's own holder.
	RevokedByOAuth = "oauth_revoke"
)

// TokenNameMaxLength is the longest token name, in characters.
const TokenNameMaxLength = 100

// APIToken is a bearer token of a user. Only the SHA-256 of its secret is
// stored, so a copy of the database yields no usable token.
type APIToken struct {
	ID uint `gorm:"primaryKey"`
	// UserID has a second index of live tokens only (revoked_at IS NULL),
	// which the queries of a user's live tokens use: the revoked ones pile
	// up with every login that evicts one, and would otherwise be read and
	// thrown away by each login.
	UserID uint   `gorm:"not null;index;index:idx_api_tokens_user_live,where:revoked_at IS NULL"`
	User   User   `gorm:"constraint:OnDelete:CASCADE"`
	Name   string `gorm:"size:100;not null"`
	Kind   string `gorm:"size:16;not null"`
	// KeyHash is the lookup key: every authenticated request finds its token
	// by this unique index and nothing else.
	KeyHash       string `gorm:"size:64;not null;uniqueIndex" json:"-"`
	Prefix        string `gorm:"size:12;not null"`
	Scopes        Scopes `gorm:"size:500;not null"`
	CreatedAt     time.Time
	LastUsedAt    *time.Time
	ExpiresAt     *time.Time
	RevokedAt     *time.Time
	RevokedReason string `gorm:"size:32;not null;default:''"`
	// ExpiryNoticeAt is when the next notice of the token's expiry is due
	// (see RecordExpiryNotices); nil when none is to come. The index holds
	// only the tokens with a notice to come.
	ExpiryNoticeAt *time.Time `gorm:"index:idx_api_tokens_expiry_notice,where:expiry_notice_at IS NOT NULL" json:"-"`
	// AuthenticatedAt is when the token's holder last proved the password
	// (and second factor): the login that made it, a re-authentication
	// through it, or, for a token made with the API, its creator's. Nil
	// (tokens older than this column, imported ones) counts as long ago:
	// sensitive actions need it recent (see auth.Identity.RequireFreshAuth).
	AuthenticatedAt *time.Time

	// LastIP and LastUserAgent are the client of the last recorded use,
	// and Networks the last MaxNetworks networks the token was used from,
	// newest first: all written behind the requests, with LastUsedAt.
	LastIP        string      `gorm:"size:64;not null;default:''"`
	LastUserAgent string      `gorm:"size:512;not null;default:''"`
	Networks      NetworkUses `gorm:"size:1000;not null;default:''"`
	// PausedAt is when the owner switched the token off; nil while it is
	// enabled. A paused token still counts toward the limit and expires.
	PausedAt *time.Time
	// AllowedIPs, when not empty, are the only networks the token may be
	// used from.
	AllowedIPs IPNets `gorm:"size:1000;not null;default:''"`
	// Metadata is the owner's JSON object, as compact text ("" for none).
	Metadata string `gorm:"size:2048;not null;default:''"`
	// RateLimitRequests per RateLimitSeconds is the token's own budget
	// (0 = none).
	RateLimitRequests int `gorm:"not null;default:0"`
	RateLimitSeconds  int `gorm:"not null;default:0"`
	// RotatedToID is set once the token was rotated: its secret then works
	// only until its expires_at (the grace), and it is no longer listed or
	// counted as a token of its own.
	RotatedToID *uint `gorm:"index"`
	// PreviousExpiresAt, on a token made by a rotation with grace, is when
	// the secret it replaced stops working.
	PreviousExpiresAt *time.Time

	// Secret is the plain token. It exists only in memory, right after the
	// token is issued or rotated, to be shown to its owner once.
	Secret string `gorm:"-" json:"-"`
	// NewClient, right after a login, says that the login came from a
	// client (IP address and user agent) not seen for this user lately.
	NewClient bool `gorm:"-" json:"-"`
}

// BeforeCreate stores the hash and display prefix of a freshly issued
// secret, and when the first notice of the token's expiry is due. It only
// computes; a token without a plain secret keeps its hash.
func (t *APIToken) BeforeCreate(tx *gorm.DB) error {
	if t.Secret != "" {
		t.KeyHash = HashToken(t.Secret)
		t.Prefix = t.Secret[:DisplayPrefixLength]
	}
	if t.ExpiresAt != nil && t.ExpiryNoticeAt == nil && wantsExpiryNotices(t.Kind) {
		t.ExpiryNoticeAt = firstExpiryNotice(*t.ExpiresAt, nowOf(tx))
	}
	return nil
}

// LastActive is when the token was last used, or made if never used.
func (t *APIToken) LastActive() time.Time {
	if t.LastUsedAt != nil {
		return *t.LastUsedAt
	}
	return t.CreatedAt
}

// Activity returns when the token was last active and when it expires,
// from what the database said and a use this process knows of but may not
// have written yet (noted, when not nil): the later of each, since another
// instance may have written a later use, or slid the expiry further, than
// this process noted.
func (t *APIToken) Activity(noted *Usage) Usage {
	a := Usage{LastUsedAt: t.LastActive(), ExpiresAt: t.ExpiresAt}
	if noted != nil {
		if noted.LastUsedAt.After(a.LastUsedAt) {
			a.LastUsedAt = noted.LastUsedAt
		}
		if noted.ExpiresAt != nil && a.ExpiresAt != nil && noted.ExpiresAt.After(*a.ExpiresAt) {
			a.ExpiresAt = noted.ExpiresAt
		}
	}
	return a
}

// Alive tells whether the token may authenticate at now: not revoked, not
// paused, not expired, not idle longer than idle (0 = no idle limit),
// judged by its activity.
func (t *APIToken) Alive(now time.Time, activity Usage, idle time.Duration) bool {
	switch {
	case t.RevokedAt != nil, t.PausedAt != nil:
		return false
	case activity.ExpiresAt != nil && !now.Before(*activity.ExpiresAt):
		return false
	case idle > 0 && now.Sub(activity.LastUsedAt) >= idle:
		return false
	}
	return true
}

// RateLimit returns the token's own budget (zero for none).
func (t *APIToken) RateLimit() RateLimit {
	return RateLimit{Requests: t.RateLimitRequests, Period: time.Duration(t.RateLimitSeconds) * time.Second}
}

func (t *APIToken) setRateLimit(r RateLimit) {
	if r.IsZero() {
		t.RateLimitRequests, t.RateLimitSeconds = 0, 0
		return
	}
	t.RateLimitRequests, t.RateLimitSeconds = r.Requests, int(r.Period/time.Second)
}

// liveTokens selects the user's tokens that still work at now.
func liveTokens(db *gorm.DB, userID uint, now time.Time, idle time.Duration) *gorm.DB {
	q := db.Model(&APIToken{}).Where("user_id = ? AND revoked_at IS NULL AND rotated_to_id IS NULL AND (expires_at IS NULL OR expires_at > ?)", userID, now)
	if idle > 0 {
		q = q.Where("COALESCE(last_used_at, created_at) > ?", now.Add(-idle))
	}
	return q
}
