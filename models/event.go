package models

import (
	"context"
	"encoding/hex"
	"errors"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// Security event types: what happened to an account, as its owner sees it
// in GET /api/security-events/.
const (
	EventLoginSucceeded     = "login_succeeded"
	EventLoginFailed        = "login_failed"
	EventLoginRateLimited   = "login_rate_limited"
	EventTokenCreated       = "token_created"
	EventTokenRotated       = "token_rotated"
	EventTokenRenamed       = "token_renamed"
	EventTokenRevoked       = "token_revoked"
	EventPasswordChanged    = "password_changed"
	EventAccountDeactivated = "account_deactivated"
	EventAccountActivated   = "account_activated"
	// EventTokenExpiring is recorded 7 days and 1 day before a token made
	// with the API or imported expires (Reason says which), and
	// EventTokenExpired when it has (see RecordExpiryNotices); also, with
	// Reason "rotation", when the previous secret of a rotated token was
	// refused because its grace had ended.
	EventTokenExpiring = "token_expiring"
	EventTokenExpired  = "token_expired"
	// EventTokenPaused and EventTokenResumed: the owner switched a token
	// off or on again.
	EventTokenPaused  = "token_paused"
	EventTokenResumed = "token_resumed"
	// EventTokenRestricted: a token's allowed networks or rate limit
	// changed (either way).
	EventTokenRestricted = "token_restrictions_changed"
	// EventTokenNewNetwork: a token was used from a network it had not
	// been used from before (not on its first use).
	EventTokenNewNetwork = "token_used_from_new_network"
	// EventTokenIPRefused: a token was refused outside its allowed
	// networks.
	EventTokenIPRefused = "token_ip_refused"
	// EventReauthenticated: a token's holder proved the password again
	// (POST /api/reauth/), for the sensitive actions that need a recent
	// proof.
	EventReauthenticated = "reauthenticated"
)

// EventTypes returns every type of security event, for the operator to
// choose from (tokenauth webhook add --events).
func EventTypes() []string {
	return []string{EventLoginSucceeded, EventLoginFailed, EventLoginRateLimited, EventTokenCreated, EventTokenRotated,
		EventTokenRenamed, EventTokenRevoked, EventTokenExpiring, EventTokenExpired, EventPasswordChanged,
		EventAccountDeactivated, EventAccountActivated, EventPasswordResetRequested, EventPasswordReset,
		EventEmailVerificationSent, EventEmailVerified, EventEmailChangeRequested, EventEmailChanged,
		EventReauthenticated, EventMFAEnabled, EventMFADisabled, EventRecoveryCodesRegenerated, EventRecoveryCodeUsed,
		EventMFAFailed, EventTokenPaused, EventTokenResumed, EventTokenRestricted, EventTokenNewNetwork,
		EventTokenIPRefused}
}

// SecurityEvent records one thing that happened to a user's account. It is
// written in the same transaction as the change it records, and holds
// nothing secret: no password, no token, no hash.
//
// idx_security_events_known_client indexes successful logins by user and
// client, so that telling whether a login comes from a known client is
// one probe however many events the user has.
type SecurityEvent struct {
	ID uint `gorm:"primaryKey"`
	// UserID is nil on the events of a username that no account has
	// (UsernameDigest says which).
	UserID *uint  `gorm:"index:idx_security_events_user_created,priority:1;index:idx_security_events_known_client,priority:1,where:type = 'login_succeeded'"`
	Type   string `gorm:"size:32;not null"`
	// UsernameDigest is UsernameDigest of the username a refused login
	// named, kept instead of the name: what was typed there may be a
	// password. Events of other types leave it empty.
	UsernameDigest string `gorm:"size:64;not null;default:'';index:idx_security_events_username,priority:1,where:user_id IS NULL"`
	// Reason says why a token was revoked (RevokedBy...) or a login failed.
	Reason    string `gorm:"size:32;not null;default:''"`
	TokenID   *uint
	IP        string    `gorm:"size:64;not null;default:'';index:idx_security_events_known_client,priority:2"`
	UserAgent string    `gorm:"size:512;not null;default:'';index:idx_security_events_known_client,priority:3"`
	NewClient bool      `gorm:"not null;default:false"`
	CreatedAt time.Time `gorm:"index:idx_security_events_user_created,priority:2;index;index:idx_security_events_known_client,priority:4;index:idx_security_events_username,priority:2"`
	// Detail says more where there is more to say: where a leaked token
	// was found (the source and URL of a secret-scanning report).
	Detail string `gorm:"size:500;not null;default:''"`
	// WebhooksQueued says the event has been made into webhook deliveries
	// (QueueWebhooks). The index holds only the events still to look at.
	WebhooksQueued bool `gorm:"not null;default:false;index:idx_security_events_webhooks_pending,where:webhooks_queued = false" json:"-"`
}

// Client is who made a request, as recorded in security events.
type Client struct {
	IP        string
	UserAgent string
}

type clientContextKey struct{}

// WithClient returns a context that carries the client of the request, for
// the events the models write on its behalf. Both fields come from headers
// the client chose, so they are made storable here, before anything can
// write them (see storableText): a header is cleaned rather than refused, so
// that no User-Agent can keep a failed login out of the record or turn it
// into an error that tells an existing username from an unknown one.
func WithClient(ctx context.Context, c Client) context.Context {
	c.IP = storableText(c.IP, clientIPMaxLength)
	c.UserAgent = storableText(c.UserAgent, userAgentMaxLength)
	return context.WithValue(ctx, clientContextKey{}, c)
}

func clientOf(ctx context.Context) Client {
	c, _ := ctx.Value(clientContextKey{}).(Client)
	return c
}

// The sizes of SecurityEvent's IP and UserAgent columns, in characters: what
// is kept of a client's address and User-Agent header.
const (
	clientIPMaxLength  = 64
	userAgentMaxLength = 512
)

// recordEvent writes an event with the client of the context.
func recordEvent(tx *gorm.DB, e SecurityEvent) error {
	client := clientOf(tx.Statement.Context)
	e.IP, e.UserAgent = client.IP, client.UserAgent
	return tx.Create(&e).Error
}

// AfterCreate has the event announced once its transaction commits (see
// commit): the events are the webhooks' outbox, and their worker starts on
// it at once. It only notes the table in memory.
func (e *SecurityEvent) AfterCreate(tx *gorm.DB) error {
	announceQueued(tx, EventTable)
	return nil
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

func idRef(id uint) *uint { return &id }

// RecordLoginRateLimited notes that a login was refused because its
// username is locked, with digest, the username's UsernameDigest. A
// username that no account has gets the event too, with no user: the
// same statements whether the account exists or not, so that the time of
// the answer does not tell, and the operator sees who is being guessed at
// (tokenauth events USERNAME).
func RecordLoginRateLimited(ctx context.Context, db *gorm.DB, username, digest string) error {
	e := SecurityEvent{Type: EventLoginRateLimited, UsernameDigest: digest}
	u, err := FindUserByUsername(ctx, db, username)
	switch {
	case err == nil:
		e.UserID = &u.ID
	case !errors.Is(err, ErrNotFound):
		return err
	}
	return translate(recordEvent(db.WithContext(ctx), e))
}

// UsernameDigest is the keyed hash (HMAC-SHA256, in hex) of a username's
// folded form, for where a username is kept or counted but must not be
// readable: the login lockout's keys (in Redis) and the events of refused
// logins. What is typed as a username is sometimes a password, and a plain
// hash of it would give it up to a dictionary. mac is the server's keyed
// hash (keyring.Keyring.HMAC).
func UsernameDigest(mac func(purpose string, msg []byte) []byte, username string) string {
	return hex.EncodeToString(mac("username", []byte(UsernameKey(username))))
}

// MaxCountedEvents bounds the count of a list of events: counting a
// user's every event would cost as much as the history is long, on every
// page. ListEvents and ListUsernameEvents count at most one more than
// this, so that a count above it says "more than MaxCountedEvents".
const MaxCountedEvents = 1000

// ListEvents returns a page of the user's events, newest first, and how many
// there are in all, counted up to MaxCountedEvents + 1.
func ListEvents(ctx context.Context, db *gorm.DB, userID uint, offset, limit int) ([]SecurityEvent, int64, error) {
	return listEvents(db.WithContext(ctx).Model(&SecurityEvent{}).Where("user_id = ?", userID), offset, limit)
}

// ListUsernameEvents returns a page of the events of a username that no
// account had, by its UsernameDigest, newest first, and how many there
// are in all, counted up to MaxCountedEvents + 1.
func ListUsernameEvents(ctx context.Context, db *gorm.DB, digest string, offset, limit int) ([]SecurityEvent, int64, error) {
	return listEvents(db.WithContext(ctx).Model(&SecurityEvent{}).Where("user_id IS NULL AND username_digest = ?", digest), offset, limit)
}

func listEvents(q *gorm.DB, offset, limit int) ([]SecurityEvent, int64, error) {
	var total int64
	counted := q.Session(&gorm.Session{NewDB: true}).Table("(?) AS counted",
		q.Session(&gorm.Session{}).Select("1").Limit(MaxCountedEvents+1))
	if err := counted.Count(&total).Error; err != nil {
		return nil, 0, translate(err)
	}
	events := []SecurityEvent{}
	err := q.Order("created_at DESC, id DESC").Offset(offset).Limit(limit).Find(&events).Error
	return events, total, translate(err)
}

// PruneEvents deletes events older than before and returns how many.
func PruneEvents(ctx context.Context, db *gorm.DB, before time.Time) (int64, error) {
	res := db.WithContext(ctx).Where("created_at < ?", before.UTC()).Delete(&SecurityEvent{})
	return res.RowsAffected, translate(res.Error)
}
