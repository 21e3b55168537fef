package models

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
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

	// Secret is the plain token. It exists only in memory, right after the
	// token is issued or rotated, to be shown to its owner once.
	Secret string `gorm:"-" json:"-"`
	// NewClient, right after a login, says that the login came from a
	// client (IP address and user agent) not seen for this user lately.
	NewClient bool `gorm:"-" json:"-"`
}

// BeforeCreate stores the hash and display prefix of a freshly issued
// secret. It only computes; a token without a plain secret is left alone.
func (t *APIToken) BeforeCreate(*gorm.DB) error {
	if t.Secret != "" {
		t.KeyHash = HashToken(t.Secret)
		t.Prefix = t.Secret[:DisplayPrefixLength]
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
// with a use this process knows of but has not written yet (pending, when
// ok) applied over what the database said.
func (t *APIToken) Activity(pending Usage, ok bool) Usage {
	a := Usage{LastUsedAt: t.LastActive(), ExpiresAt: t.ExpiresAt}
	if ok {
		a.LastUsedAt = pending.LastUsedAt
		if pending.ExpiresAt != nil {
			a.ExpiresAt = pending.ExpiresAt
		}
	}
	return a
}

// Alive tells whether the token may authenticate at now: not revoked, not
// expired, not idle longer than idle (0 = no idle limit), judged by its
// activity.
func (t *APIToken) Alive(now time.Time, activity Usage, idle time.Duration) bool {
	switch {
	case t.RevokedAt != nil:
		return false
	case activity.ExpiresAt != nil && !now.Before(*activity.ExpiresAt):
		return false
	case idle > 0 && now.Sub(activity.LastUsedAt) >= idle:
		return false
	}
	return true
}

// TokenPolicy holds the limits that apply when tokens are issued and
// looked up.
type TokenPolicy struct {
	MaxPerUser  int
	IdleTimeout time.Duration
	// KnownClientWindow is how far back a login from the same IP address and
	// user agent makes a client known; a login from any other is marked
	// new_client.
	KnownClientWindow time.Duration
}

// TokenSpec describes a token to issue.
type TokenSpec struct {
	Name      string
	Kind      string
	Scopes    Scopes
	ExpiresAt *time.Time
	// Login is the password check a login token follows (see
	// Authenticate): the token is issued only if the password is still
	// the one checked, and the login is recorded with it.
	Login *PasswordCheck
}

// IssueToken creates a token for the user and returns it with its plain
// secret. When the user already holds policy.MaxPerUser live tokens, a
// login (evict) revokes the least recently used ones to make room and
// returns their ids; otherwise the answer is ErrTokenLimit. The user's row
// is locked for the count, so concurrent logins cannot overshoot.
func IssueToken(ctx context.Context, db *gorm.DB, userID uint, spec TokenSpec, policy TokenPolicy, evict bool) (*APIToken, []uint, error) {
	secret, err := NewTokenSecret()
	if err != nil {
		return nil, nil, err
	}
	tok := &APIToken{UserID: userID, Name: spec.Name, Kind: spec.Kind, Scopes: spec.Scopes,
		ExpiresAt: spec.ExpiresAt, Secret: secret}
	var evicted []uint
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := time.Now().UTC()
		if spec.Login != nil {
			// Recording the login takes the row lock as lockUser would. A
			// password changed since the check revoked every token but the
			// changer's: this login must not outlive it.
			current, err := spec.Login.record(tx, userID, now)
			if err != nil {
				return err
			}
			if !current {
				return ErrInvalidCredentials
			}
		} else if err := lockUser(tx, userID); err != nil {
			return err
		}
		var live []APIToken
		if err := liveTokens(tx, userID, now, policy.IdleTimeout).
			Select("id", "created_at", "last_used_at").Order("COALESCE(last_used_at, created_at), id").
			Find(&live).Error; err != nil {
			return err
		}
		if excess := len(live) - policy.MaxPerUser + 1; excess > 0 {
			if !evict {
				return ErrTokenLimit
			}
			for _, t := range live[:excess] {
				evicted = append(evicted, t.ID)
			}
			if err := revokeIDs(tx, userID, evicted, RevokedByLimit, now); err != nil {
				return err
			}
		}
		if err := tx.Create(tok).Error; err != nil {
			return err
		}
		event := SecurityEvent{UserID: userID, Type: EventTokenCreated, TokenID: tokenRef(tok.ID)}
		if spec.Kind == KindLogin {
			known, err := knownClient(tx, userID, now.Add(-policy.KnownClientWindow))
			if err != nil {
				return err
			}
			tok.NewClient = !known
			event.Type, event.NewClient = EventLoginSucceeded, !known
		}
		return recordEvent(tx, event)
	})
	if err != nil {
		return nil, nil, translate(err)
	}
	return tok, evicted, nil
}

// FindTokenByHash returns the token with that key hash and its user, in one
// indexed query. It does not judge whether the token is alive.
//
// It reads what authenticating a request and serving it need, and nothing
// else (see lookupSkips): no secret leaves the database on the way, so
// none sits in the token cache, and a narrower row is faster to fetch and
// decode. KeyHash is the one it was given, and the user's ID the token's
// UserID.
//
// This is the query of every request the token cache does not answer, so
// it is written by hand and scanned without reflection: through GORM's
// Joins it cost nearly three times the allocations and a good part of the
// request's CPU. On PostgreSQL opened by config.OpenDatabase it goes one
// step further and runs on the pgx pool under GORM, in pgx's binary
// protocol: GORM's statement building and database/sql's row conversion
// were a third of the server's CPU per uncached request (scanPgx says how
// it scans). That path does not pass through GORM's callbacks; on SQLite,
// or on a connection pool of another kind, the query still does.
// TestFindTokenByHashReadsEveryColumn keeps the column list in step with
// the models, and TestFindTokenByHashMatchesTheORM the result.
func FindTokenByHash(ctx context.Context, db *gorm.DB, keyHash string) (*APIToken, error) {
	t := APIToken{KeyHash: keyHash}
	var err error
	if pool, ok := PgxPool(db); ok {
		err = t.scanPgx(pool.QueryRow(ctx, tokenByHashSQL+"$1", keyHash))
	} else {
		u := &t.User
		err = db.WithContext(ctx).Raw(tokenByHashSQL+"?", keyHash).Row().Scan(&t.ID, &t.UserID, &t.Name, &t.Kind,
			&t.Prefix, &t.Scopes, &t.CreatedAt, &t.LastUsedAt, &t.ExpiresAt, &t.RevokedAt,
			&u.Username, &u.Email, &u.IsActive, &u.CreatedAt, &u.LastLoginAt)
	}
	if errors.Is(err, sql.ErrNoRows) { // pgx.ErrNoRows is one too
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, translate(err)
	}
	t.User.ID = t.UserID
	return &t, nil
}

// scanPgx reads the lookup's row into t. It scans into the types pgx
// decodes directly (int64, string, pgtype.Timestamptz), all in one
// allocation: for uint, named and pointer types pgx plans a wrapper per
// column on every query, which cost a third of the lookup's allocations.
func (t *APIToken) scanPgx(row pgx.Row) error {
	var r struct {
		id, userID                          int64
		scopes                              string
		created, lastUsed, expires, revoked pgtype.Timestamptz
		userCreated, lastLogin              pgtype.Timestamptz
	}
	u := &t.User
	if err := row.Scan(&r.id, &r.userID, &t.Name, &t.Kind, &t.Prefix, &r.scopes, &r.created, &r.lastUsed, &r.expires,
		&r.revoked, &u.Username, &u.Email, &u.IsActive, &r.userCreated, &r.lastLogin); err != nil {
		return err
	}
	t.ID, t.UserID = uint(r.id), uint(r.userID)
	if err := t.Scopes.Scan(r.scopes); err != nil {
		return err
	}
	t.CreatedAt, u.CreatedAt = r.created.Time, r.userCreated.Time
	t.LastUsedAt, t.ExpiresAt, t.RevokedAt = timeOrNil(&r.lastUsed), timeOrNil(&r.expires), timeOrNil(&r.revoked)
	u.LastLoginAt = timeOrNil(&r.lastLogin)
	return nil
}

// timeOrNil points at ts's time, or is nil for NULL.
func timeOrNil(ts *pgtype.Timestamptz) *time.Time {
	if !ts.Valid {
		return nil
	}
	return &ts.Time
}

// tokenByHashSQL selects, in the order FindTokenByHash scans them, the
// columns of a token and of its user that a request needs; the
// placeholder of the key hash follows.
const tokenByHashSQL = `SELECT t.id, t.user_id, t.name, t.kind, t.prefix, t.scopes, t.created_at,
	t.last_used_at, t.expires_at, t.revoked_at,
	u.username, u.email, u.is_active, u.created_at, u.last_login_at
FROM api_tokens t JOIN users u ON u.id = t.user_id
WHERE t.key_hash = `

// lookupSkips are the columns FindTokenByHash leaves out, each with the
// reason; every other column is read.
var lookupSkips = map[string]string{
	"api_tokens.key_hash":       "the caller knows it: it is the argument",
	"users.id":                  "the same as api_tokens.user_id, which is read",
	"api_tokens.revoked_reason": "a revoked token never authenticates",
	"users.password_hash":       "a secret: checked only against a fresh read (see ChangePassword)",
	"users.username_key":        "used to find users by name, never by a request",
	"users.updated_at":          "bookkeeping no request reads",
}

// PgxPool returns the pgx pool that db's connections come from, when its
// connection pool lends one out (config.OpenDatabase's does on
// PostgreSQL).
func PgxPool(db *gorm.DB) (*pgxpool.Pool, bool) {
	conns, ok := db.Statement.ConnPool.(interface{ PgxPool() *pgxpool.Pool })
	if !ok {
		return nil, false
	}
	return conns.PgxPool(), true
}

// ListTokens returns the user's live tokens, newest first.
func ListTokens(ctx context.Context, db *gorm.DB, userID uint, idle time.Duration) ([]APIToken, error) {
	tokens := []APIToken{}
	err := liveTokens(db.WithContext(ctx), userID, time.Now().UTC(), idle).Order("created_at DESC, id DESC").Find(&tokens).Error
	return tokens, translate(err)
}

// FindUserToken returns the user's live token with that id. Another user's
// token, like a dead one, is ErrNotFound: its existence is not revealed.
func FindUserToken(ctx context.Context, db *gorm.DB, userID, id uint, idle time.Duration) (*APIToken, error) {
	var t APIToken
	err := liveTokens(db.WithContext(ctx), userID, time.Now().UTC(), idle).Where("id = ?", id).Take(&t).Error
	if err != nil {
		return nil, translate(err)
	}
	return &t, nil
}

// RenameToken changes a token's name.
func RenameToken(ctx context.Context, db *gorm.DB, t *APIToken, name string) error {
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(t).UpdateColumn("name", name).Error; err != nil {
			return err
		}
		return recordEvent(tx, SecurityEvent{UserID: t.UserID, Type: EventTokenRenamed, TokenID: tokenRef(t.ID)})
	})
	if err != nil {
		return translate(err)
	}
	t.Name = name
	return nil
}

// RotateToken replaces t with a new token of the same name, kind, scopes and
// expiry (a legacy token becomes a personal one), and revokes t in the same
// transaction: exactly one of the two secrets works at any moment. A token
// revoked meanwhile is ErrNotFound.
func RotateToken(ctx context.Context, db *gorm.DB, t *APIToken) (*APIToken, error) {
	secret, err := NewTokenSecret()
	if err != nil {
		return nil, err
	}
	kind := t.Kind
	if kind == KindLegacy {
		// The new secret is in this service's format: nothing legacy is left.
		kind = KindPersonal
	}
	next := &APIToken{UserID: t.UserID, Name: t.Name, Kind: kind, Scopes: t.Scopes,
		ExpiresAt: t.ExpiresAt, Secret: secret}
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&APIToken{}).Where("id = ? AND revoked_at IS NULL", t.ID).
			UpdateColumns(map[string]any{"revoked_at": time.Now().UTC(), "revoked_reason": RevokedByRotation})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrNotFound
		}
		if err := tx.Create(next).Error; err != nil {
			return err
		}
		return recordEvent(tx, SecurityEvent{UserID: t.UserID, Type: EventTokenRotated, TokenID: tokenRef(next.ID)})
	})
	if err != nil {
		return nil, translate(err)
	}
	return next, nil
}

// RevokeQuery selects the live tokens of one user to revoke: one token
// (TokenID), or all of them but ExceptID (0 = none excepted).
type RevokeQuery struct {
	UserID   uint
	TokenID  uint
	ExceptID uint
	Reason   string
}

// RevokeTokens revokes the tokens q selects and returns their ids.
func RevokeTokens(ctx context.Context, db *gorm.DB, q RevokeQuery) ([]uint, error) {
	var ids []uint
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		ids, err = revokeWhere(tx, q)
		return err
	})
	return ids, translate(err)
}

func revokeWhere(tx *gorm.DB, q RevokeQuery) ([]uint, error) {
	sel := tx.Model(&APIToken{}).Where("user_id = ? AND revoked_at IS NULL", q.UserID)
	if q.TokenID != 0 {
		sel = sel.Where("id = ?", q.TokenID)
	}
	if q.ExceptID != 0 {
		sel = sel.Where("id <> ?", q.ExceptID)
	}
	var ids []uint
	if err := sel.Pluck("id", &ids).Error; err != nil {
		return nil, err
	}
	return ids, revokeIDs(tx, q.UserID, ids, q.Reason, time.Now().UTC())
}

// revokeIDs revokes the user's tokens with those ids and records an event
// for each.
func revokeIDs(tx *gorm.DB, userID uint, ids []uint, reason string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	if err := tx.Model(&APIToken{}).Where("id IN ? AND user_id = ? AND revoked_at IS NULL", ids, userID).
		UpdateColumns(map[string]any{"revoked_at": now, "revoked_reason": reason}).Error; err != nil {
		return err
	}
	client := clientOf(tx.Statement.Context)
	events := make([]SecurityEvent, len(ids))
	for i, id := range ids {
		events[i] = SecurityEvent{UserID: userID, Type: EventTokenRevoked, Reason: reason, TokenID: tokenRef(id),
			IP: client.IP, UserAgent: truncate(client.UserAgent, userAgentMaxLength)}
	}
	return tx.Create(&events).Error
}

// RevokeLeaked revokes the live tokens whose key hashes are given, whoever
// owns them, recording a leak report for each. It returns the revoked ids.
func RevokeLeaked(ctx context.Context, db *gorm.DB, keyHashes []string) ([]uint, error) {
	if len(keyHashes) == 0 {
		return nil, nil
	}
	var revoked []uint
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var found []APIToken
		if err := tx.Select("id", "user_id").Where("key_hash IN ? AND revoked_at IS NULL", keyHashes).Find(&found).Error; err != nil {
			return err
		}
		now := time.Now().UTC()
		for userID, ids := range idsByUser(found) {
			if err := revokeIDs(tx, userID, ids, RevokedByLeakReport, now); err != nil {
				return err
			}
			revoked = append(revoked, ids...)
		}
		return nil
	})
	return revoked, translate(err)
}

func idsByUser(tokens []APIToken) map[uint][]uint {
	out := map[uint][]uint{}
	for _, t := range tokens {
		out[t.UserID] = append(out[t.UserID], t.ID)
	}
	return out
}

// knownClient tells whether the user logged in from the client of the
// transaction's context since the given time.
func knownClient(tx *gorm.DB, userID uint, since time.Time) (bool, error) {
	client := clientOf(tx.Statement.Context)
	// EXISTS stops at the first match. (COUNT with LIMIT 1 counted every
	// match: the cost of a login grew with the user's logins from that
	// client.)
	var known bool
	// The event type is written into the query, not bound: the partial
	// index idx_security_events_known_client (see SecurityEvent) serves
	// only a query whose type is known when it is planned.
	err := tx.Raw(`SELECT EXISTS (SELECT 1 FROM security_events
		WHERE user_id = ? AND type = '`+EventLoginSucceeded+`' AND ip = ? AND user_agent = ? AND created_at > ?)`,
		userID, client.IP, truncate(client.UserAgent, userAgentMaxLength), since).
		Scan(&known).Error
	return known, err
}

// PruneTokens deletes tokens that can never work again: revoked, expired,
// or idle longer than idle (0 = no idle limit). A token that dies of
// idleness leaves a token_revoked event with reason idle, so its owner
// learns why it stopped. It returns how many tokens were deleted.
func PruneTokens(ctx context.Context, db *gorm.DB, idle time.Duration) (int64, error) {
	now := time.Now().UTC()
	var deleted int64
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if idle > 0 {
			var idleTokens []APIToken
			if err := tx.Select("id", "user_id").
				Where("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) AND COALESCE(last_used_at, created_at) <= ?", now, now.Add(-idle)).
				Find(&idleTokens).Error; err != nil {
				return err
			}
			for userID, ids := range idsByUser(idleTokens) {
				if err := revokeIDs(tx, userID, ids, RevokedByIdle, now); err != nil {
					return err
				}
			}
		}
		res := tx.Where("revoked_at IS NOT NULL OR (expires_at IS NOT NULL AND expires_at <= ?)", now).Delete(&APIToken{})
		deleted = res.RowsAffected
		return res.Error
	})
	return deleted, translate(err)
}

// liveTokens selects the user's tokens that still work at now.
func liveTokens(db *gorm.DB, userID uint, now time.Time, idle time.Duration) *gorm.DB {
	q := db.Model(&APIToken{}).Where("user_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)", userID, now)
	if idle > 0 {
		q = q.Where("COALESCE(last_used_at, created_at) > ?", now.Add(-idle))
	}
	return q
}

// lockUser takes the user's row lock for the rest of the transaction, so
// that decisions about the user's tokens are made one at a time. SQLite has
// no row locks; there the transaction itself is exclusive.
func lockUser(tx *gorm.DB, userID uint) error {
	var u User
	return tx.Clauses(clause.Locking{Strength: "UPDATE"}).Select("id").Where("id = ?", userID).Take(&u).Error
}
