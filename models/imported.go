package models

import "time"

// ImportedUser records that a user was imported from a Django database, and
// their id there. An import run again skips such a user instead of calling
// the username a conflict, and tables that still hold Django's user ids can
// be mapped to this service's.
type ImportedUser struct {
	UserID     uint `gorm:"primaryKey;autoIncrement:false"`
	User       User `gorm:"constraint:OnDelete:CASCADE"`
	DjangoID   int64
	ImportedAt time.Time `gorm:"not null"`
}

// ImportedToken records the key hash of every token imported from Django.
// It outlives the token: an import run again must not bring back a key
// that was rotated, revoked or pruned since.
type ImportedToken struct {
	KeyHash    string    `gorm:"primaryKey;size:64"`
	ImportedAt time.Time `gorm:"not null"`
}
