package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// ChangePassword checks the current password against the stored hash (read
// here: the user a request carries holds none), applies the policy to the
// new one, stores its hash and revokes every other token of the user, in
// one transaction. Of concurrent changes from the same current password,
// one wins: the others find it is no longer current. It returns the ids of the revoked tokens. A wrong
// current password is a ValidationError on current_password: the caller's
// token is fine, only the input is wrong.
func ChangePassword(ctx context.Context, db *gorm.DB, hasher *PasswordHasher, policy PasswordPolicy,
	u *User, current, next string, keepTokenID uint) ([]uint, error) {
	var stored string
	if err := db.WithContext(ctx).Model(&User{}).Where("id = ?", u.ID).Select("password_hash").
		Take(&stored).Error; err != nil {
		return nil, translate(err)
	}
	ok, _, err := hasher.Verify(ctx, current, stored)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, invalid("current_password", "is not your current password")
	}
	if err := policy.check("new_password", next, u.Username); err != nil {
		return nil, err
	}
	hash, err := hasher.Hash(ctx, next)
	if err != nil {
		return nil, err
	}
	var revoked []uint
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Only over the hash the current password was checked against: a
		// change that committed meanwhile made that password a former one.
		res := tx.Model(&User{}).Where("id = ? AND password_hash = ?", u.ID, stored).
			UpdateColumns(map[string]any{"password_hash": hash, "updated_at": time.Now().UTC()})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errPasswordChanged
		}
		if err := recordEvent(tx, SecurityEvent{UserID: u.ID, Type: EventPasswordChanged}); err != nil {
			return err
		}
		var err error
		revoked, err = revokeWhere(tx, RevokeQuery{UserID: u.ID, ExceptID: keepTokenID, Reason: RevokedByPasswordChange})
		return err
	})
	if errors.Is(err, errPasswordChanged) {
		return nil, invalid("current_password", "is not your current password")
	}
	if err != nil {
		return nil, translate(err)
	}
	u.PasswordHash = hash
	return revoked, nil
}

// errPasswordChanged ends a password change whose current password was
// replaced by another change while it was being checked.
var errPasswordChanged = errors.New("the password changed during the change")

// SetActive activates or deactivates a user. Deactivating revokes nothing
// (reactivation brings the tokens back), but a deactivated user's tokens
// are refused on their next request.
func SetActive(ctx context.Context, db *gorm.DB, u *User, active bool) error {
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(u).UpdateColumns(map[string]any{"is_active": active, "updated_at": time.Now().UTC()}).Error; err != nil {
			return err
		}
		if active {
			return nil
		}
		return recordEvent(tx, SecurityEvent{UserID: u.ID, Type: EventAccountDeactivated})
	})
	if err != nil {
		return translate(err)
	}
	u.IsActive = active
	return nil
}
