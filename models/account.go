package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// ChangePassword checks the current password against the stored hash (read
// here: the user a request carries holds none), applies the policy to the
// new one, stores its hash and revokes every other token of the user, in
// one transaction. It returns the ids of the revoked tokens. A wrong
// current password is a ValidationError on current_password: the caller's
// token is fine, only the input is wrong. Of concurrent changes from the
// same current password, one wins: to the others it is no longer current.
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
		return nil, errNotCurrentPassword()
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
		// A change that committed meanwhile made the current password a
		// former one.
		current, err := updateOverHash(tx, u.ID, stored, map[string]any{"password_hash": hash, "updated_at": time.Now().UTC()})
		if err != nil {
			return err
		}
		if !current {
			return errNotCurrentPassword()
		}
		if err := recordEvent(tx, SecurityEvent{UserID: u.ID, Type: EventPasswordChanged}); err != nil {
			return err
		}
		revoked, err = revokeWhere(tx, RevokeQuery{UserID: u.ID, ExceptID: keepTokenID, Reason: RevokedByPasswordChange})
		return err
	})
	if err != nil {
		return nil, translate(err)
	}
	u.PasswordHash = hash
	return revoked, nil
}

// errNotCurrentPassword refuses a password change whose current password
// is wrong, or was replaced by another change while it was being checked.
func errNotCurrentPassword() error {
	return invalid("current_password", "is not your current password")
}

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
