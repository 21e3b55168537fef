package models

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"
)

// User is an account that logs in with a username and a password.
type User struct {
	ID uint `gorm:"primaryKey"`
	// Username is shown as the user typed it; UsernameKey is its folded form,
	// unique, so that "Alice" and "alice" are one account.
	Username     string `gorm:"size:150;not null"`
	UsernameKey  string `gorm:"size:150;not null;uniqueIndex"`
	Email        string `gorm:"size:254;not null"`
	PasswordHash string `gorm:"size:255;not null" json:"-"`
	IsActive     bool   `gorm:"not null"`
	CreatedAt    time.Time
	UpdatedAt    time.Time
	LastLoginAt  *time.Time

	// Password, when set, is hashed into PasswordHash by the save hook and
	// cleared: the plain text never reaches the database.
	Password string          `gorm:"-" json:"-"`
	hasher   *PasswordHasher `gorm:"-"`
}

// UsernameMaxLength is the longest username accepted, in characters.
const UsernameMaxLength = 150

// NewUser returns an active user whose password will be hashed by hasher
// when the user is saved.
func NewUser(hasher *PasswordHasher, username, email, password string) *User {
	u := &User{Username: norm.NFC.String(username), Email: strings.TrimSpace(email), IsActive: true}
	u.SetPassword(hasher, password)
	return u
}

// SetPassword arranges for password to replace the current one on the next
// save.
func (u *User) SetPassword(hasher *PasswordHasher, password string) {
	u.Password, u.hasher = password, hasher
}

// BeforeSave hashes a newly set password and keeps the folded username in
// step. It does nothing to an unchanged password, so saving a loaded user
// never hashes a hash.
func (u *User) BeforeSave(tx *gorm.DB) error {
	u.UsernameKey = UsernameKey(u.Username)
	if u.Password == "" {
		return nil
	}
	if u.hasher == nil {
		return errNoHasher
	}
	hash, err := u.hasher.Hash(tx.Statement.Context, u.Password)
	if err != nil {
		return err
	}
	u.PasswordHash, u.Password = hash, ""
	return nil
}

var errNoHasher = &ValidationError{Fields: map[string]string{"password": "cannot be set without a hasher"}}

// UsernameKey folds a username for comparison: Unicode compatibility
// normalisation, then lower case, so look-alike spellings of one name
// cannot become two accounts.
func UsernameKey(username string) string {
	return strings.ToLower(norm.NFKC.String(username))
}

// ValidateUsername checks the shape of a new username: 1 to 150 letters,
// digits and . @ + - _ (the set Django allows).
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
	return nil
}

// CreateUser validates and stores a new user. A username taken in any case
// is ErrConflict.
func CreateUser(ctx context.Context, db *gorm.DB, u *User, policy PasswordPolicy) error {
	if err := ValidateUsername(u.Username); err != nil {
		return err
	}
	if err := policy.Check(u.Password, u.Username); err != nil {
		return err
	}
	return translate(db.WithContext(ctx).Create(u).Error)
}

// FindUserByUsername returns the user with that username in any case.
func FindUserByUsername(ctx context.Context, db *gorm.DB, username string) (*User, error) {
	var u User
	err := db.WithContext(ctx).Where("username_key = ?", UsernameKey(username)).Take(&u).Error
	return &u, translate(err)
}

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
func Authenticate(ctx context.Context, db *gorm.DB, hasher *PasswordHasher, username, password string) (*User, *PasswordCheck, error) {
	u, err := FindUserByUsername(ctx, db, username)
	if errors.Is(err, ErrNotFound) {
		if err := hasher.VerifyDummy(ctx, password); err != nil {
			return nil, nil, err
		}
		return nil, nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, nil, err
	}
	ok, stale, err := hasher.Verify(ctx, password, u.PasswordHash)
	if err != nil {
		return nil, nil, err
	}
	if !ok || !u.IsActive {
		reason, refusal := "wrong_password", ErrInvalidCredentials
		if ok {
			reason, refusal = "account_disabled", ErrAccountDisabled
		}
		if err := recordEvent(db.WithContext(ctx), SecurityEvent{UserID: u.ID, Type: EventLoginFailed, Reason: reason}); err != nil {
			return nil, nil, translate(err)
		}
		return nil, nil, refusal
	}
	check := &PasswordCheck{hash: u.PasswordHash}
	if stale {
		if check.rehash, err = hasher.Hash(ctx, password); err != nil {
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

// UpdateEmail changes the user's email address.
func UpdateEmail(ctx context.Context, db *gorm.DB, u *User, email string) error {
	u.Email = strings.TrimSpace(email)
	return translate(db.WithContext(ctx).Model(u).Update("email", u.Email).Error)
}
