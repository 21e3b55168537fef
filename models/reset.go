package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"tokenauth/password"
)

// Security event types of the email feature.
const (
	EventPasswordResetRequested = "password_reset_requested"
	EventPasswordReset          = "password_reset"
	EventEmailVerificationSent  = "email_verification_sent"
	EventEmailVerified          = "email_verified"
	EventEmailChangeRequested   = "email_change_requested"
	EventEmailChanged           = "email_changed"
)

// ResetRequestTable is the table of password reset requests.
const ResetRequestTable = "password_reset_requests"

// PasswordResetRequest is a request for a password reset link, as anyone
// may make it: an address or a username, which may name no account. The
// request answers after storing it, the same statement whatever it names,
// so neither its answer nor its work tells whether an account exists; a
// worker then looks for the accounts, and mails their links (package
// mail). The row is deleted in the transaction that issues the links.
type PasswordResetRequest struct {
	ID        uint   `gorm:"primaryKey"`
	Email     string `gorm:"size:254;not null;default:''"`
	Username  string `gorm:"size:150;not null;default:''"`
	IP        string `gorm:"size:64;not null;default:''"`
	UserAgent string `gorm:"size:512;not null;default:''"`
	CreatedAt time.Time
	Delivery
}

// DeliveryRow returns the request's id and delivery state.
func (r *PasswordResetRequest) DeliveryRow() (uint, *Delivery) { return r.ID, &r.Delivery }

// QueueResetRequest stores a request for a reset link for the accounts of
// email, or of username, with the client of ctx.
func QueueResetRequest(ctx context.Context, db *gorm.DB, email, username string) error {
	client := clientOf(ctx)
	r := &PasswordResetRequest{Email: email, Username: username, IP: client.IP,
		UserAgent: truncate(client.UserAgent, userAgentMaxLength)}
	return commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		return Change{}, enqueue(tx, r, &r.Delivery)
	})
}

// ResetAccounts returns the accounts a reset request names: every active
// account with its address, or the active account with its username, if
// it has an address to mail.
func ResetAccounts(ctx context.Context, db *gorm.DB, r *PasswordResetRequest) ([]User, error) {
	users := []User{}
	q := db.WithContext(ctx).Where("is_active AND email_key <> ''")
	if r.Email != "" {
		q = q.Where("email_key = ?", EmailKey(r.Email))
	} else {
		q = q.Where("username_key = ?", UsernameKey(r.Username))
	}
	err := q.Order("id").Find(&users).Error
	return users, translate(err)
}

// ResetLink is a reset link to issue to a user found by ResetAccounts.
type ResetLink struct {
	User *User
	Link
}

// IssueResetLinks stores the tokens of links and queues their mails, and
// deletes the request r, in one transaction: whatever happens, a request
// is answered once. An account that was sent limit links within the last
// hour gets none (the request's answer, long given, said nothing of it
// either). A link is bound to the password the account had when it was
// found: a change since voids it. It returns how many links it issued.
func IssueResetLinks(ctx context.Context, db *gorm.DB, r *PasswordResetRequest, links []ResetLink, limit int) (int, error) {
	issued := 0
	ctx = WithClient(ctx, Client{IP: r.IP, UserAgent: r.UserAgent})
	err := commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		issued = 0
		res := tx.Where("id = ?", r.ID).Delete(&PasswordResetRequest{})
		if res.Error != nil || res.RowsAffected != 1 {
			// Answered by another worker meanwhile, or its lease ran out.
			return Change{}, res.Error
		}
		since := nowOf(tx).Add(-time.Hour)
		for _, l := range links {
			// One request at a time per account, so that two instances
			// answering two requests cannot both fit in the last slot.
			err := lockUser(tx, l.User.ID)
			if errors.Is(err, gorm.ErrRecordNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return Change{}, err
			}
			sent, err := recentEvents(tx, l.User.ID, EventPasswordResetRequested, since)
			if err != nil {
				return Change{}, err
			}
			if sent >= int64(limit) {
				continue
			}
			if err := storeLinkToken(tx, l.User.ID, PurposePasswordReset, l.User.Email,
				passwordStamp(l.User.PasswordHash), l.Link); err != nil {
				return Change{}, err
			}
			l.Mail.UserID = &l.User.ID
			if err := queueMail(tx, l.Mail); err != nil {
				return Change{}, err
			}
			if err := recordEvent(tx, SecurityEvent{UserID: idRef(l.User.ID), Type: EventPasswordResetRequested}); err != nil {
				return Change{}, err
			}
			issued++
		}
		return Change{}, nil
	})
	return issued, err
}

// ResetPassword sets a new password through a reset link: the secret must
// be the newest reset link of an active user, unexpired, unused, and
// issued for the password the user still has; otherwise ErrInvalidLink.
// The new password follows the policy (a ValidationError on
// new_password) and is hashed before the transaction opens. In the
// transaction the link is used up, every token of the user revoked, and
// the address the link went to marked verified, unless another account
// verified it first. It returns the user.
func ResetPassword(ctx context.Context, db *gorm.DB, hasher *password.Hasher, policy PasswordPolicy,
	secret, plain string) (*User, error) {
	t, err := findLinkToken(ctx, db, secret, ResetSecretPrefix, PurposePasswordReset)
	if err != nil {
		return nil, err
	}
	u := &t.User
	if t.PasswordStamp != passwordStamp(u.PasswordHash) {
		return nil, ErrInvalidLink
	}
	if err := policy.check("new_password", plain, u.Username); err != nil {
		return nil, err
	}
	hash, err := hasher.Hash(ctx, plain)
	if err != nil {
		return nil, err
	}
	err = commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		change := Change{UserIDs: []uint{u.ID}}
		if err := useLinkToken(tx, t); err != nil {
			return change, err
		}
		now := nowOf(tx)
		updates := map[string]any{"password_hash": hash, "updated_at": now}
		verify := false
		if u.EmailVerifiedAt == nil && EmailKey(t.Email) == u.EmailKey {
			taken, err := verifiedElsewhere(tx, u.ID, u.EmailKey)
			if err != nil {
				return change, err
			}
			if verify = !taken; verify {
				updates["email_verified_at"] = now
			}
		}
		current, err := updateOverHash(tx, u.ID, u.PasswordHash, updates)
		if err != nil {
			return change, err
		}
		if !current {
			return change, ErrInvalidLink // the password changed since the check
		}
		if err := tx.Where("user_id = ? AND purpose = ?", u.ID, PurposePasswordReset).Delete(&LinkToken{}).Error; err != nil {
			return change, err
		}
		if err := recordEvent(tx, SecurityEvent{UserID: idRef(u.ID), Type: EventPasswordReset}); err != nil {
			return change, err
		}
		if verify {
			if err := recordEvent(tx, SecurityEvent{UserID: idRef(u.ID), Type: EventEmailVerified}); err != nil {
				return change, err
			}
			u.EmailVerifiedAt = &now
		}
		_, err = revokeWhere(tx, RevokeQuery{UserID: u.ID, Reason: RevokedByPasswordChange})
		return change, err
	})
	if err != nil {
		return nil, err
	}
	u.PasswordHash = hash
	return u, nil
}

// verifiedElsewhere tells whether an account other than userID verified
// the address of key.
func verifiedElsewhere(tx *gorm.DB, userID uint, key string) (bool, error) {
	var n int64
	err := tx.Model(&User{}).Where("email_key = ? AND email_verified_at IS NOT NULL AND id <> ?", key, userID).
		Count(&n).Error
	return n > 0, err
}
