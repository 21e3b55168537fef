package models

import (
	"context"
	"crypto/rand"
	"encoding/base64"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ServerSecret is a value the service keeps about itself: its generated
// secret key, and the check value that proves which key sealed its
// secrets (see package keyring).
type ServerSecret struct {
	Name  string `gorm:"primaryKey;size:64"`
	Value string `gorm:"size:512;not null"`
}

// Names of the server secrets.
const (
	SecretKeyName      = "secret_key"
	SecretKeyCheckName = "secret_key_check"
)

// EnsureSecretKey stores a fresh random secret key unless one is stored
// already. Instances migrating at once agree on one: the first insert
// wins, the others change nothing.
func EnsureSecretKey(ctx context.Context, db *gorm.DB) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	return PutServerSecretOnce(ctx, db, SecretKeyName, base64.StdEncoding.EncodeToString(key))
}

// PutServerSecretOnce stores the value under name unless a value is stored
// there already.
func PutServerSecretOnce(ctx context.Context, db *gorm.DB, name, value string) error {
	err := db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&ServerSecret{Name: name, Value: value}).Error
	return translate(err)
}

// FindServerSecret returns the value stored under name, or ErrNotFound.
func FindServerSecret(ctx context.Context, db *gorm.DB, name string) (string, error) {
	var s ServerSecret
	if err := db.WithContext(ctx).Where("name = ?", name).Take(&s).Error; err != nil {
		return "", translate(err)
	}
	return s.Value, nil
}
