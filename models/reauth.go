package models

import (
	"context"
	"time"

	"gorm.io/gorm"

	"tokenauth/password"
)

// Reauthenticate checks the password of the token's user again and, when
// it is right, records the proof on the token: its AuthenticatedAt becomes
// now, which sensitive actions require to be recent (step-up
// authentication, RFC 9470). A wrong password is a ValidationError on
// "password" (not a 401, which a client would read as a dead token) and a
// login_failed event, as a failed login is. secondFactor, when not nil,
// runs once the password is right and before anything is recorded: the
// check of the second factor of an account that has one, whose error is
// Reauthenticate's. It returns the new authentication time.
func Reauthenticate(ctx context.Context, db *gorm.DB, hasher *password.Hasher, tok *APIToken, plain string,
	secondFactor func() error) (time.Time, error) {
	var stored string
	if err := db.WithContext(ctx).Model(&User{}).Where("id = ?", tok.UserID).Select("password_hash").
		Take(&stored).Error; err != nil {
		return time.Time{}, translate(err)
	}
	ok, _, err := hasher.Verify(ctx, plain, stored)
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		if err := recordEvent(db.WithContext(ctx), SecurityEvent{UserID: idRef(tok.UserID), Type: EventLoginFailed,
			Reason: "wrong_password", TokenID: idRef(tok.ID)}); err != nil {
			return time.Time{}, translate(err)
		}
		return time.Time{}, errNotYourPassword()
	}
	if secondFactor != nil {
		if err := secondFactor(); err != nil {
			return time.Time{}, err
		}
	}
	return ProveAuthenticated(ctx, db, tok, stored)
}

// ProveAuthenticated records, on the live token tok, that its holder has
// just proved the password whose hash is checked (and the second factor,
// when the account has one): its AuthenticatedAt becomes now, and a
// reauthenticated event is written. A password changed meanwhile is the
// wrong password; a token revoked meanwhile is ErrNotFound.
func ProveAuthenticated(ctx context.Context, db *gorm.DB, tok *APIToken, checked string) (time.Time, error) {
	var now time.Time
	err := commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		change := Change{TokenIDs: []uint{tok.ID}}
		now = nowOf(tx)
		var same int64
		if err := tx.Model(&User{}).Where("id = ? AND password_hash = ?", tok.UserID, checked).Count(&same).Error; err != nil {
			return change, err
		}
		if same != 1 {
			return change, errNotYourPassword()
		}
		res := tx.Model(&APIToken{}).Where("id = ? AND revoked_at IS NULL", tok.ID).UpdateColumn("authenticated_at", now)
		if res.Error != nil {
			return change, res.Error
		}
		if res.RowsAffected != 1 {
			return change, ErrNotFound
		}
		return change, recordEvent(tx, SecurityEvent{UserID: idRef(tok.UserID), Type: EventReauthenticated, TokenID: idRef(tok.ID)})
	})
	if err != nil {
		return time.Time{}, err
	}
	tok.AuthenticatedAt = &now
	return now, nil
}

// errNotYourPassword refuses a re-authentication whose password is wrong,
// or was replaced by a change while it was being checked.
func errNotYourPassword() error {
	return invalid("password", "is not your password")
}
