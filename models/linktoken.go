package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"gorm.io/gorm"
)

// Purposes of the links sent by mail. A link's token works only for its
// own purpose.
const (
	PurposePasswordReset = "password_reset"
	PurposeVerifyEmail   = "verify_email"
	PurposeChangeEmail   = "change_email"
)

// Prefixes of the secrets in links: a reset link's secret, and an email
// link's (verification and change). The format is the token format
// (package comment of tokenformat.go) with another prefix, so a secret
// of one kind is never taken for another, and a mistyped one is refused
// without a query.
const (
	ResetSecretPrefix = "tkr_"
	EmailSecretPrefix = "tke_"
)

// ErrInvalidLink is the answer for a link secret that is malformed,
// unknown, used, superseded by a newer link, expired, or voided by a
// change since it was sent (a new password, another address, a
// deactivated account). Which one is not told.
var ErrInvalidLink = errors.New("invalid or expired link")

// LinkToken is the token of a link sent by mail. Only the SHA-256 of its
// secret is stored (the secret has 256 random bits, so nobody can try them
// all: a fast hash is enough, as for API tokens); the secret itself is in
// the link and, sealed, in the mail until it is sent. A link is used once:
// using it deletes the token, and so does a newer link of the same
// purpose for the same user.
type LinkToken struct {
	ID      uint   `gorm:"primaryKey"`
	UserID  uint   `gorm:"not null;index"`
	User    User   `gorm:"constraint:OnDelete:CASCADE"`
	Purpose string `gorm:"size:16;not null"`
	KeyHash string `gorm:"size:64;not null;uniqueIndex" json:"-"`
	// Email is the address the link was sent to, which following it
	// proves.
	Email string `gorm:"size:254;not null"`
	// PasswordStamp binds a reset link to the password it replaces (the
	// SHA-256 of its hash): any change of password voids the link.
	PasswordStamp string `gorm:"size:64;not null;default:''" json:"-"`
	CreatedAt     time.Time
	ExpiresAt     time.Time `gorm:"not null;index"`
}

// Link is a link to send: its secret, generated before the transaction
// that stores its token (NewLink), when it expires, and the mail that
// carries it, sealed by the caller.
type Link struct {
	Secret    string
	ExpiresAt time.Time
	Mail      *Mail
}

// NewLinkSecret returns a fresh secret for a link, with prefix
// (ResetSecretPrefix or EmailSecretPrefix).
func NewLinkSecret(prefix string) (string, error) { return newPrefixedSecret(prefix) }

// passwordStamp is what a reset link, and the second step of a login,
// keep of the password hash they were made under: a change of password
// voids them.
func passwordStamp(hash string) string {
	sum := sha256.Sum256([]byte(hash))
	return hex.EncodeToString(sum[:])
}

// storeLinkToken stores the token of link, for purpose, in tx, and deletes
// the user's older tokens of that purpose: the newest link is the only
// one that works.
func storeLinkToken(tx *gorm.DB, userID uint, purpose, email, stamp string, link Link) error {
	if err := tx.Where("user_id = ? AND purpose = ?", userID, purpose).Delete(&LinkToken{}).Error; err != nil {
		return err
	}
	return tx.Create(&LinkToken{UserID: userID, Purpose: purpose, KeyHash: HashToken(link.Secret), Email: email,
		PasswordStamp: stamp, ExpiresAt: link.ExpiresAt}).Error
}

// findLinkToken returns the live token of secret for one of purposes,
// with its user, or ErrInvalidLink.
func findLinkToken(ctx context.Context, db *gorm.DB, secret, prefix string, purposes ...string) (*LinkToken, error) {
	if !wellFormedSecret(secret, prefix) {
		return nil, ErrInvalidLink
	}
	var t LinkToken
	err := db.WithContext(ctx).Joins("User").Where("link_tokens.key_hash = ? AND link_tokens.purpose IN ?",
		HashToken(secret), purposes).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrInvalidLink
	}
	if err != nil {
		return nil, translate(err)
	}
	if !nowOf(db).Before(t.ExpiresAt) || !t.User.IsActive {
		return nil, ErrInvalidLink
	}
	return &t, nil
}

// useLinkToken deletes t in tx: a link works once. It reports
// ErrInvalidLink if t was used (or replaced) meanwhile.
func useLinkToken(tx *gorm.DB, t *LinkToken) error {
	res := tx.Where("id = ?", t.ID).Delete(&LinkToken{})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return ErrInvalidLink
	}
	return nil
}

// PruneLinkTokens deletes the tokens of links that expired, and returns
// how many.
func PruneLinkTokens(ctx context.Context, db *gorm.DB) (int64, error) {
	res := db.WithContext(ctx).Where("expires_at <= ?", nowOf(db)).Delete(&LinkToken{})
	return res.RowsAffected, translate(res.Error)
}

// recentEvents counts the user's events of type typ since since: the
// per-account budgets of mailed links.
func recentEvents(tx *gorm.DB, userID uint, typ string, since time.Time) (int64, error) {
	var n int64
	err := tx.Model(&SecurityEvent{}).Where("user_id = ? AND type = ? AND created_at > ?", userID, typ, since).Count(&n).Error
	return n, err
}
