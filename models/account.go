package models

import (
	"context"

	"gorm.io/gorm"

	"tokenauth/password"
)

// ChangePassword checks the current password against the stored hash (read
// here: the user a request carries holds none), applies the policy to the
// new one, hashes it before any transaction opens, then stores the hash
// and revokes every other token of the user in one transaction. A wrong
// current password is a ValidationError on current_password: the caller's
// token is fine, only the input is wrong. Of concurrent changes from the
// same current password, one wins: to the others it is no longer current.
func ChangePassword(ctx context.Context, db *gorm.DB, hasher *password.Hasher, policy PasswordPolicy,
	u *User, current, next string, keepTokenID uint) error {
	var stored string
	if err := db.WithContext(ctx).Model(&User{}).Where("id = ?", u.ID).Select("password_hash").
		Take(&stored).Error; err != nil {
		return translate(err)
	}
	ok, _, err := hasher.Verify(ctx, current, stored)
	if err != nil {
		return err
	}
	if !ok {
		return errNotCurrentPassword()
	}
	if err := policy.check("new_password", next, u.Username); err != nil {
		return err
	}
	hash, err := hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	err = commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		change := Change{UserIDs: []uint{u.ID}, TokenIDs: []uint{keepTokenID}}
		// A change that committed meanwhile made the current password a
		// former one.
		current, err := updateOverHash(tx, u.ID, stored, map[string]any{"password_hash": hash, "updated_at": nowOf(tx)})
		if err != nil {
			return change, err
		}
		if !current {
			return change, errNotCurrentPassword()
		}
		if err := recordEvent(tx, SecurityEvent{UserID: idRef(u.ID), Type: EventPasswordChanged}); err != nil {
			return change, err
		}
		// The current password was the proof a re-authentication asks
		// for, unless the account has a second factor: then a
		// re-authentication asks for a code too, which a password change
		// does not carry.
		if !u.MFAEnabled() {
			if err := tx.Model(&APIToken{}).Where("id = ?", keepTokenID).UpdateColumn("authenticated_at", nowOf(tx)).Error; err != nil {
				return change, err
			}
		}
		_, err = revokeWhere(tx, RevokeQuery{UserID: u.ID, ExceptID: keepTokenID, Reason: RevokedByPasswordChange})
		return change, err
	})
	if err != nil {
		return err
	}
	u.PasswordHash = hash
	return nil
}

// errNotCurrentPassword refuses a password change whose current password
// is wrong, or was replaced by another change while it was being checked.
func errNotCurrentPassword() error {
	return invalid("current_password", "is not your current password")
}

// SetActive activates or deactivates a user, and records which. Deactivating
// revokes nothing (reactivation brings the tokens back), but a deactivated
// user's tokens are refused on their next request.
func SetActive(ctx context.Context, db *gorm.DB, u *User, active bool) error {
	event := EventAccountDeactivated
	if active {
		event = EventAccountActivated
	}
	err := commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		change := Change{UserIDs: []uint{u.ID}}
		if err := tx.Model(u).UpdateColumns(map[string]any{"is_active": active, "updated_at": nowOf(tx)}).Error; err != nil {
			return change, err
		}
		return change, recordEvent(tx, SecurityEvent{UserID: idRef(u.ID), Type: event})
	})
	if err != nil {
		return err
	}
	u.IsActive = active
	return nil
}
