package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// ListTokens returns the user's live tokens, newest first.
func ListTokens(ctx context.Context, db *gorm.DB, userID uint, idle time.Duration) ([]APIToken, error) {
	tokens := []APIToken{}
	err := liveTokens(db.WithContext(ctx), userID, nowOf(db), idle).Order("created_at DESC, id DESC").Find(&tokens).Error
	return tokens, translate(err)
}

// FindUserToken returns the user's live token with that id. Another user's
// token, like a dead one, is ErrNotFound: its existence is not revealed.
func FindUserToken(ctx context.Context, db *gorm.DB, userID, id uint, idle time.Duration) (*APIToken, error) {
	var t APIToken
	err := liveTokens(db.WithContext(ctx), userID, nowOf(db), idle).Where("id = ?", id).Take(&t).Error
	if err != nil {
		return nil, translate(err)
	}
	return &t, nil
}

// RenameToken changes a token's name.
func RenameToken(ctx context.Context, db *gorm.DB, t *APIToken, name string) error {
	err := commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		change := Change{TokenIDs: []uint{t.ID}}
		if err := tx.Model(t).UpdateColumn("name", name).Error; err != nil {
			return change, err
		}
		return change, recordEvent(tx, SecurityEvent{UserID: idRef(t.UserID), Type: EventTokenRenamed, TokenID: idRef(t.ID)})
	})
	if err != nil {
		return err
	}
	t.Name = name
	return nil
}

// RotateToken replaces t with a new token of the same name, kind, scopes,
// expiry and authentication time (a legacy token becomes a personal one), and revokes t in the same
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
		ExpiresAt: t.ExpiresAt, AuthenticatedAt: t.AuthenticatedAt, Secret: secret}
	err = commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		change := Change{TokenIDs: []uint{t.ID}}
		res := tx.Model(&APIToken{}).Where("id = ? AND revoked_at IS NULL", t.ID).
			UpdateColumns(map[string]any{"revoked_at": nowOf(tx), "revoked_reason": RevokedByRotation})
		if res.Error != nil {
			return change, res.Error
		}
		if res.RowsAffected != 1 {
			return change, ErrNotFound
		}
		if err := tx.Create(next).Error; err != nil {
			return change, err
		}
		return change, recordEvent(tx, SecurityEvent{UserID: idRef(t.UserID), Type: EventTokenRotated, TokenID: idRef(next.ID)})
	})
	if err != nil {
		return nil, err
	}
	return next, nil
}
