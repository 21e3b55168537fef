package models

import (
	"context"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm"
)

// ErrNoEmail refuses to mail a user who has no address.
var ErrNoEmail = errors.New("the account has no email address")

// ErrAlreadyVerified refuses to send a verification link for an address
// that is verified already.
var ErrAlreadyVerified = errors.New("the email address is verified already")

// TooManyLinksError refuses a link because the account was sent its
// budget of them within the last hour; RetryAfter says when one more may
// go.
type TooManyLinksError struct {
	RetryAfter time.Duration
}

func (e *TooManyLinksError) Error() string { return "too many links mailed to this account lately" }

// budget checks, in tx, that the user was sent fewer than limit links of
// the event type typ within the last hour.
func budget(tx *gorm.DB, userID uint, typ string, limit int) error {
	since := nowOf(tx).Add(-time.Hour)
	n, err := recentEvents(tx, userID, typ, since)
	if err != nil || n < int64(limit) {
		return err
	}
	var oldest []time.Time
	if err := tx.Model(&SecurityEvent{}).Where("user_id = ? AND type = ? AND created_at > ?", userID, typ, since).
		Order("created_at").Limit(1).Pluck("created_at", &oldest).Error; err != nil {
		return err
	}
	wait := time.Hour
	if len(oldest) == 1 {
		wait = oldest[0].Sub(since)
	}
	return &TooManyLinksError{RetryAfter: max(wait, time.Second)}
}

// CreateUserWithVerification stores a user made by NewUser, as CreateUser
// does, and in the same transaction the verification link of their
// address and its mail.
func CreateUserWithVerification(ctx context.Context, db *gorm.DB, u *User, link Link) error {
	return commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		if err := tx.Create(u).Error; err != nil {
			return Change{}, err
		}
		return Change{}, sendVerification(tx, u, link)
	})
}

// sendVerification stores the token of a verification link for the
// user's address and queues its mail, in tx.
func sendVerification(tx *gorm.DB, u *User, link Link) error {
	if err := storeLinkToken(tx, u.ID, PurposeVerifyEmail, u.Email, "", link); err != nil {
		return err
	}
	link.Mail.UserID = &u.ID
	if err := queueMail(tx, link.Mail); err != nil {
		return err
	}
	return recordEvent(tx, SecurityEvent{UserID: idRef(u.ID), Type: EventEmailVerificationSent})
}

// RequestVerification sends a link that verifies the user's address, at
// most limit an hour (else a TooManyLinksError). The link's mail is
// addressed to u.Email, the address the request saw: if the account's
// address changed meanwhile it is ErrConflict. A user without an address
// is ErrNoEmail, one already verified ErrAlreadyVerified.
func RequestVerification(ctx context.Context, db *gorm.DB, u *User, link Link, limit int) error {
	return commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		var current User
		if err := lockedUser(tx, u.ID, &current); err != nil {
			return Change{}, err
		}
		switch {
		case current.Email == "":
			return Change{}, ErrNoEmail
		case current.Email != u.Email:
			return Change{}, ErrConflict
		case current.EmailVerifiedAt != nil:
			return Change{}, ErrAlreadyVerified
		}
		if err := budget(tx, u.ID, EventEmailVerificationSent, limit); err != nil {
			return Change{}, err
		}
		return Change{}, sendVerification(tx, &current, link)
	})
}

// lockedUser reads the user's row into dst, holding its lock for the rest
// of tx (SQLite's transactions are exclusive anyway).
func lockedUser(tx *gorm.DB, userID uint, dst *User) error {
	if err := lockUser(tx, userID); err != nil {
		return err
	}
	return tx.Where("id = ?", userID).Take(dst).Error
}

// RequestEmailChange starts changing the user's address to email: the
// address stays as it is until the link mailed to the new one (link) is
// followed; a notice without a link goes to the old address, if there is
// one. An address that another account verified is ErrConflict. A newer
// request replaces an older one, at most limit an hour.
func RequestEmailChange(ctx context.Context, db *gorm.DB, u *User, email string, link Link, notice *Mail, limit int) error {
	email = strings.TrimSpace(email)
	return commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		var current User
		if err := lockedUser(tx, u.ID, &current); err != nil {
			return Change{}, err
		}
		taken, err := verifiedElsewhere(tx, u.ID, EmailKey(email))
		if err != nil {
			return Change{}, err
		}
		if taken {
			return Change{}, ErrConflict
		}
		if err := budget(tx, u.ID, EventEmailChangeRequested, limit); err != nil {
			return Change{}, err
		}
		if err := storeLinkToken(tx, u.ID, PurposeChangeEmail, email, "", link); err != nil {
			return Change{}, err
		}
		link.Mail.UserID = &u.ID
		if err := queueMail(tx, link.Mail); err != nil {
			return Change{}, err
		}
		if notice != nil && current.Email != "" {
			notice.UserID, notice.Recipient = &u.ID, current.Email
			if err := queueMail(tx, notice); err != nil {
				return Change{}, err
			}
		}
		return Change{}, recordEvent(tx, SecurityEvent{UserID: idRef(u.ID), Type: EventEmailChangeRequested})
	})
}

// PendingEmail returns the address the user asked to change to and has
// not confirmed yet, or "".
func PendingEmail(ctx context.Context, db *gorm.DB, userID uint) (string, error) {
	var emails []string
	err := db.WithContext(ctx).Model(&LinkToken{}).
		Where("user_id = ? AND purpose = ? AND expires_at > ?", userID, PurposeChangeEmail, nowOf(db)).
		Order("id DESC").Limit(1).Pluck("email", &emails).Error
	if err != nil || len(emails) == 0 {
		return "", translate(err)
	}
	return emails[0], nil
}

// ConfirmEmail follows an email link: a verification link marks the
// address it was sent to verified, if it is still the account's; a change
// link makes the address it was sent to the account's, verified, unless
// another account verified it meanwhile (ErrConflict, and the link stays
// usable). Anything else is ErrInvalidLink. It returns the user as it is
// now.
func ConfirmEmail(ctx context.Context, db *gorm.DB, secret string) (*User, error) {
	t, err := findLinkToken(ctx, db, secret, EmailSecretPrefix, PurposeVerifyEmail, PurposeChangeEmail)
	if err != nil {
		return nil, err
	}
	u := &t.User
	key := EmailKey(t.Email)
	if t.Purpose == PurposeVerifyEmail && key != u.EmailKey {
		return nil, ErrInvalidLink // the address changed since the link was sent
	}
	err = commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		change := Change{UserIDs: []uint{u.ID}}
		if err := useLinkToken(tx, t); err != nil {
			return change, err
		}
		taken, err := verifiedElsewhere(tx, u.ID, key)
		if err != nil {
			return change, err
		}
		if taken {
			return change, ErrConflict
		}
		now := nowOf(tx)
		updates := map[string]any{"email": t.Email, "email_key": key, "email_verified_at": now, "updated_at": now}
		q := tx.Model(&User{}).Where("id = ?", u.ID)
		if t.Purpose == PurposeVerifyEmail {
			q = q.Where("email_key = ?", key)
		}
		res := q.UpdateColumns(updates)
		if res.Error != nil {
			return change, res.Error
		}
		if res.RowsAffected != 1 {
			return change, ErrInvalidLink
		}
		// Links for the old address, or for an address no longer pending,
		// are void.
		if err := tx.Where("user_id = ? AND purpose IN ?", u.ID, []string{PurposeVerifyEmail, PurposeChangeEmail}).
			Delete(&LinkToken{}).Error; err != nil {
			return change, err
		}
		event := EventEmailVerified
		if t.Purpose == PurposeChangeEmail {
			event = EventEmailChanged
		}
		if err := recordEvent(tx, SecurityEvent{UserID: idRef(u.ID), Type: event}); err != nil {
			return change, err
		}
		u.Email, u.EmailKey, u.EmailVerifiedAt, u.UpdatedAt = t.Email, key, &now, now
		return change, nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// SetEmail sets the user's address at once, as an operator does: marked
// verified when verified is true (refused with ErrConflict if another
// account verified it), else unverified. Pending links for the old
// address or a pending change are void.
func SetEmail(ctx context.Context, db *gorm.DB, u *User, email string, verified bool) error {
	email = strings.TrimSpace(email)
	key := EmailKey(email)
	return commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		change := Change{UserIDs: []uint{u.ID}}
		now := nowOf(tx)
		updates := map[string]any{"email": email, "email_key": key, "email_verified_at": nil, "updated_at": now}
		if verified {
			taken, err := verifiedElsewhere(tx, u.ID, key)
			if err != nil {
				return change, err
			}
			if taken {
				return change, ErrConflict
			}
			updates["email_verified_at"] = now
		}
		if err := tx.Model(&User{}).Where("id = ?", u.ID).UpdateColumns(updates).Error; err != nil {
			return change, err
		}
		if err := tx.Where("user_id = ? AND purpose IN ?", u.ID, []string{PurposeVerifyEmail, PurposeChangeEmail}).
			Delete(&LinkToken{}).Error; err != nil {
			return change, err
		}
		u.Email, u.EmailKey = email, key
		u.EmailVerifiedAt = nil
		if verified {
			u.EmailVerifiedAt = &now
		}
		return change, recordEvent(tx, SecurityEvent{UserID: idRef(u.ID), Type: EventEmailChanged})
	})
}

// BackfillEmailKeys fills the folded address of users stored before it
// existed, so that a reset finds them.
func BackfillEmailKeys(ctx context.Context, db *gorm.DB) error {
	for after := uint(0); ; {
		var users []User
		if err := db.WithContext(ctx).Select("id", "email").Where("id > ? AND email_key = '' AND email <> ''", after).
			Order("id").Limit(500).Find(&users).Error; err != nil {
			return translate(err)
		}
		if len(users) == 0 {
			return nil
		}
		for _, u := range users {
			after = u.ID
			if err := db.WithContext(ctx).Model(&User{}).Where("id = ?", u.ID).
				UpdateColumn("email_key", EmailKey(u.Email)).Error; err != nil {
				return translate(err)
			}
		}
	}
}
