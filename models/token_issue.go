package models

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

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
	// AllowedIPs, Metadata and RateLimit are the token's policy (see
	// APIToken); their zero values are none.
	AllowedIPs IPNets
	Metadata   string
	RateLimit  RateLimit
	// Login is the password check a login token follows (see
	// Authenticate): the token is issued only if the password is still
	// the one checked, and the login is recorded with it. A login token is
	// authenticated at the time it is issued.
	Login *PasswordCheck
	// AuthenticatedAt, for a token that is not a login's, is when its
	// creator last proved the password: the creating token's
	// AuthenticatedAt, which the new token inherits.
	AuthenticatedAt *time.Time
}

// IssueToken creates a token for the user and returns it with its plain
// secret, generated before the transaction opens. When the user already
// holds policy.MaxPerUser live tokens, a login (evict) revokes the least
// recently used ones to make room; otherwise the answer is ErrTokenLimit.
// The user's row is locked for the count, so concurrent logins cannot
// overshoot.
func IssueToken(ctx context.Context, db *gorm.DB, userID uint, spec TokenSpec, policy TokenPolicy, evict bool) (*APIToken, error) {
	secret, err := NewTokenSecret()
	if err != nil {
		return nil, err
	}
	tok := &APIToken{UserID: userID, Name: spec.Name, Kind: spec.Kind, Scopes: spec.Scopes,
		ExpiresAt: spec.ExpiresAt, AuthenticatedAt: spec.AuthenticatedAt, Secret: secret, AllowedIPs: spec.AllowedIPs,
		Metadata: spec.Metadata}
	tok.setRateLimit(spec.RateLimit)
	err = commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		now := nowOf(tx)
		var change Change
		if spec.Login != nil {
			// Recording the login takes the row lock as lockUser would. A
			// password changed since the check revoked every token but the
			// changer's: this login must not outlive it.
			current, err := spec.Login.record(tx, userID, now)
			if err != nil {
				return change, err
			}
			if !current {
				return change, ErrInvalidCredentials
			}
			change.UserIDs = []uint{userID} // its last login changed
			tok.AuthenticatedAt = &now
		} else if err := lockUser(tx, userID); err != nil {
			return change, err
		}
		var live []APIToken
		if err := liveTokens(tx, userID, now, policy.IdleTimeout).
			Select("id", "created_at", "last_used_at").Order("COALESCE(last_used_at, created_at), id").
			Find(&live).Error; err != nil {
			return change, err
		}
		if excess := len(live) - policy.MaxPerUser + 1; excess > 0 {
			if !evict {
				return change, ErrTokenLimit
			}
			for _, t := range live[:excess] {
				change.TokenIDs = append(change.TokenIDs, t.ID)
			}
			if err := revokeIDs(tx, userID, change.TokenIDs, RevokedByLimit, now); err != nil {
				return change, err
			}
		}
		if err := tx.Create(tok).Error; err != nil {
			return change, err
		}
		event := SecurityEvent{UserID: idRef(userID), Type: EventTokenCreated, TokenID: idRef(tok.ID)}
		if spec.Kind == KindLogin {
			known, err := knownClient(tx, userID, now.Add(-policy.KnownClientWindow))
			if err != nil {
				return change, err
			}
			tok.NewClient = !known
			event.Type, event.NewClient = EventLoginSucceeded, !known
		}
		return change, recordEvent(tx, event)
	})
	if err != nil {
		return nil, err
	}
	return tok, nil
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
		userID, client.IP, client.UserAgent, since).
		Scan(&known).Error
	return known, err
}

// lockUser takes the user's row lock for the rest of the transaction, so
// that decisions about the user's tokens are made one at a time. SQLite has
// no row locks; there the transaction itself is exclusive.
func lockUser(tx *gorm.DB, userID uint) error {
	var u User
	return tx.Clauses(clause.Locking{Strength: "UPDATE"}).Select("id").Where("id = ?", userID).Take(&u).Error
}
