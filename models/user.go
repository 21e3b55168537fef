package models

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"

	"tokenauth/password"
)

// User is an account that logs in with a username and a password.
type User struct {
	ID uint `gorm:"primaryKey"`
	// Username is shown as the user typed it; UsernameKey is its folded form,
	// unique, so that "Alice" and "alice" are one account.
	Username    string `gorm:"size:150;not null"`
	UsernameKey string `gorm:"size:150;not null;uniqueIndex"`
	Email       string `gorm:"size:254;not null"`
	// EmailKey is the address folded to lower case, for finding accounts
	// by address (a password reset) in an index. An address may be held
	// by several accounts, but verified by one at most: the partial
	// unique index refuses a second.
	EmailKey     string `gorm:"size:254;not null;default:'';index;uniqueIndex:idx_users_verified_email,where:email_verified_at IS NOT NULL"`
	PasswordHash string `gorm:"size:255;not null" json:"-"`
	IsActive     bool   `gorm:"not null"`
	CreatedAt    time.Time
	UpdatedAt    time.Time
	LastLoginAt  *time.Time
	// EmailVerifiedAt is when the user proved they read mail sent to
	// Email (nil: not yet). Changing the address clears it.
	EmailVerifiedAt *time.Time
	// MFAEnabledAt is when the user turned the second factor on (nil:
	// off). The credential itself is a TOTPCredential.
	MFAEnabledAt *time.Time `gorm:"column:mfa_enabled_at"`
}

// MFAEnabled tells whether logins of the user need a second factor.
func (u *User) MFAEnabled() bool { return u.MFAEnabledAt != nil }

// UsernameMaxLength is the longest username accepted, in characters.
const UsernameMaxLength = 150

// NewUser validates a new active account and hashes its password: the
// named step that runs before any transaction opens, so that no
// transaction (on SQLite, the one writer's lock) is held while argon2id
// runs or waits for a slot. The plain password goes no further.
func NewUser(ctx context.Context, hasher *password.Hasher, policy PasswordPolicy, username, email, plain string) (*User, error) {
	u := &User{Username: norm.NFC.String(username), Email: email, IsActive: true}
	if err := ValidateUsername(u.Username); err != nil {
		return nil, err
	}
	if email != "" {
		if err := ValidateEmail(email); err != nil {
			return nil, err
		}
	}
	if err := policy.Check(plain, u.Username); err != nil {
		return nil, err
	}
	hash, err := hasher.Hash(ctx, plain)
	if err != nil {
		return nil, err
	}
	u.PasswordHash = hash
	return u, nil
}

// BeforeSave keeps the folded username and address in step with the
// username and address. It only computes.
func (u *User) BeforeSave(*gorm.DB) error {
	u.UsernameKey = UsernameKey(u.Username)
	u.EmailKey = EmailKey(u.Email)
	return nil
}

// EmailKey folds an address for comparison: trimmed and in lower case.
// The local part is case-sensitive in theory only; no provider people use
// tells Alice@ from alice@, and a reset must find either.
func EmailKey(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// EmailVerified tells whether the user proved their current address.
func (u *User) EmailVerified() bool { return u.EmailVerifiedAt != nil }

// UsernameKey folds a username for comparison: Unicode compatibility
// normalisation, then lower case, so look-alike spellings of one name
// cannot become two accounts.
func UsernameKey(username string) string {
	return strings.ToLower(norm.NFKC.String(username))
}

// ValidateUsername checks the shape of a new username: 1 to 150 letters,
// digits and . @ + - _ (the set Django allows), and no more than 150
// characters once folded (see UsernameKeyFits).
func ValidateUsername(username string) error {
	if username == "" {
		return invalid("username", "is required")
	}
	if utf8.RuneCountInString(username) > UsernameMaxLength {
		return invalid("username", "must be at most 150 characters")
	}
	for _, r := range username {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune(".@+-_", r) {
			return invalid("username", "may contain only letters, digits and . @ + - _")
		}
	}
	if !UsernameKeyFits(username) {
		return invalid("username", "must be at most 150 characters once normalised (NFKC, lower case)")
	}
	return nil
}

// EmailRule is the go-playground/validator rule an email address must
// pass. The API's request structs name the same rule in their binding tags
// (email,max=254), and a test holds the operator's createuser and the API
// to the same answers.
const EmailRule = "email,max=254"

// ValidateEmail checks an email address by EmailRule, with the API's
// messages for its two parts.
func ValidateEmail(email string) error {
	err := validator.New().Var(email, EmailRule)
	var verrs validator.ValidationErrors
	switch {
	case err == nil:
		return nil
	case errors.As(err, &verrs) && verrs[0].Tag() == "max":
		return invalid("email", "must be at most 254 characters")
	case errors.As(err, &verrs):
		return invalid("email", "must be a valid email address")
	}
	return err
}

// UsernameKeyFits tells whether the folded form of username (UsernameKey)
// fits its column. Folding can lengthen a name many times over: U+FDFA, one
// letter, becomes 18, so ten of them make 180 characters that PostgreSQL
// refuses to store and SQLite would store past the limit.
func UsernameKeyFits(username string) bool {
	return utf8.RuneCountInString(UsernameKey(username)) <= UsernameMaxLength
}

// CreateUser stores a user made by NewUser. A username taken in any case
// is ErrConflict.
func CreateUser(ctx context.Context, db *gorm.DB, u *User) error {
	return translate(db.WithContext(ctx).Create(u).Error)
}

// FindUserByUsername returns the user with that username in any case.
func FindUserByUsername(ctx context.Context, db *gorm.DB, username string) (*User, error) {
	var u User
	err := db.WithContext(ctx).Where("username_key = ?", UsernameKey(username)).Take(&u).Error
	return &u, translate(err)
}
