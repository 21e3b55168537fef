package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"tokenauth/password"
)

// Authenticate checks a username and password. An unknown username costs a
// dummy verification so that timing does not tell it apart from a wrong
// password; both are ErrInvalidCredentials. A right password for an
// inactive account is ErrAccountDisabled.
//
// It writes nothing on success: the check it returns goes into the
// TokenSpec of the login's token, and IssueToken records the login (and
// replaces a hash made with old parameters by a current one) in the
// transaction that issues the token, provided the password is still the
// one checked.
func Authenticate(ctx context.Context, db *gorm.DB, hasher *password.Hasher, username, plain string) (*User, *PasswordCheck, error) {
	u, err := FindUserByUsername(ctx, db, username)
	if errors.Is(err, ErrNotFound) {
		if err := hasher.VerifyDummy(ctx, plain); err != nil {
			return nil, nil, err
		}
		return nil, nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, nil, err
	}
	ok, stale, err := hasher.Verify(ctx, plain, u.PasswordHash)
	if err != nil {
		return nil, nil, err
	}
	if !ok || !u.IsActive {
		reason, refusal := "wrong_password", ErrInvalidCredentials
		if ok {
			reason, refusal = "account_disabled", ErrAccountDisabled
		}
		if err := recordEvent(db.WithContext(ctx), SecurityEvent{UserID: idRef(u.ID), Type: EventLoginFailed, Reason: reason}); err != nil {
			return nil, nil, translate(err)
		}
		return nil, nil, refusal
	}
	check := &PasswordCheck{hash: u.PasswordHash}
	if stale {
		if check.rehash, err = hasher.Hash(ctx, plain); err != nil {
			return nil, nil, err
		}
	}
	return u, check, nil
}

// PasswordCheck is a password found right by Authenticate: the stored hash
// it matched and, when that hash was made with old parameters, a current
// hash of the same password.
type PasswordCheck struct {
	hash, rehash string
}

// record notes a successful login on the user, in tx: its time, and the
// current hash if one was made. It reports false, writing nothing, if the
// password is no longer the one checked (it changed since).
func (pc *PasswordCheck) record(tx *gorm.DB, userID uint, now time.Time) (bool, error) {
	// A login changes no profile field, so updated_at stays.
	updates := map[string]any{"last_login_at": now}
	if pc.rehash != "" {
		updates["password_hash"] = pc.rehash
	}
	return updateOverHash(tx, userID, pc.hash, updates)
}

// updateOverHash applies updates to the user's row, in tx, only while its
// password hash is still checked: the one a password was verified against.
// It reports whether it did; false means the password changed since. The
// update takes the user's row lock.
func updateOverHash(tx *gorm.DB, userID uint, checked string, updates map[string]any) (bool, error) {
	res := tx.Model(&User{}).Where("id = ? AND password_hash = ?", userID, checked).UpdateColumns(updates)
	return res.RowsAffected == 1, res.Error
}
