package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Reasons of the token_expiring events: which notice it is.
const (
	ExpiresIn7Days = "expires_in_7_days"
	ExpiresIn1Day  = "expires_in_1_day"
)

// Mail kinds of the expiry notices.
const (
	MailTokenExpiring = "token_expiring"
	MailTokenExpired  = "token_expired"
)

// ExpiryNotice is one notice of a token's expiry, as recorded.
type ExpiryNotice struct {
	// Type is EventTokenExpiring or EventTokenExpired; Reason says which
	// token_expiring it is.
	Type, Reason string
	Token        *APIToken
}

// expiryMoments are the moments of a token's notices, in order: 7 days
// and 1 day before it expires, and when it does.
func expiryMoments(expires time.Time) [3]time.Time {
	return [3]time.Time{expires.Add(-7 * 24 * time.Hour), expires.Add(-24 * time.Hour), expires}
}

// firstExpiryNotice is when the first notice of a token made at now that
// expires at expires is due: the first moment still to come, so that a
// notice whose moment had passed when the token was made is skipped. nil
// when there is none.
func firstExpiryNotice(expires, now time.Time) *time.Time {
	for _, m := range expiryMoments(expires) {
		if m.After(now) {
			return &m
		}
	}
	return nil
}

// wantsExpiryNotices tells whether a token of kind gets notices of its
// expiry: those made with the API or imported, not login tokens (every
// device would get three notices a month).
func wantsExpiryNotices(kind string) bool { return kind != KindLogin }

// ExpiryMail writes the mail of a notice to the user, or returns nil for
// none (no address, no mail server).
type ExpiryMail func(u *User, n ExpiryNotice) (*Mail, error)

// RecordExpiryNotices records the expiry notices due at the database's
// now, at most limit of them, each in a transaction of its own with its
// mail (when mail writes one), and returns how many it recorded. Each
// notice is recorded once per token, whatever the number of instances:
// the token's row is locked and read again before its notice is written.
// When several moments have passed since the last look (the service was
// down), only the latest is told: "expires in 7 days" about a token that
// expired is no news.
func RecordExpiryNotices(ctx context.Context, db *gorm.DB, limit int, mail ExpiryMail) (int, error) {
	now := nowOf(db)
	var due []uint
	if err := db.WithContext(ctx).Model(&APIToken{}).Where("expiry_notice_at <= ?", now).
		Order("expiry_notice_at, id").Limit(limit).Pluck("id", &due).Error; err != nil {
		return 0, translate(err)
	}
	recorded := 0
	for _, id := range due {
		did, err := recordExpiryNotice(ctx, db, id, now, mail)
		if err != nil {
			return recorded, err
		}
		if did {
			recorded++
		}
	}
	return recorded, nil
}

// recordExpiryNotice records the notice of token id due at now, if it is
// still due when its row is locked.
func recordExpiryNotice(ctx context.Context, db *gorm.DB, id uint, now time.Time, mail ExpiryMail) (bool, error) {
	did := false
	err := commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		var t APIToken
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", id).Take(&t).Error
		if err != nil || t.ExpiryNoticeAt == nil || t.ExpiryNoticeAt.After(now) {
			return Change{}, ignoreNotFound(err)
		}
		// A revoked token is told nothing more, nor a rotated one's previous
		// secret: the token that replaced it has notices of its own.
		if t.RevokedAt != nil || t.RotatedToID != nil || t.ExpiresAt == nil {
			return Change{}, tx.Model(&t).UpdateColumn("expiry_notice_at", nil).Error
		}
		moments := expiryMoments(*t.ExpiresAt)
		stage := 0
		for i, m := range moments {
			if !m.After(now) {
				stage = i
			}
		}
		var next *time.Time
		if stage < len(moments)-1 {
			next = &moments[stage+1]
		}
		if err := tx.Model(&t).UpdateColumn("expiry_notice_at", next).Error; err != nil {
			return Change{}, err
		}
		n := ExpiryNotice{Type: EventTokenExpiring, Reason: ExpiresIn7Days, Token: &t}
		switch stage {
		case 1:
			n.Reason = ExpiresIn1Day
		case 2:
			n.Type, n.Reason = EventTokenExpired, ""
		}
		if err := recordEvent(tx, SecurityEvent{UserID: &t.UserID, Type: n.Type, Reason: n.Reason, TokenID: &t.ID}); err != nil {
			return Change{}, err
		}
		did = true
		if mail == nil {
			return Change{}, nil
		}
		var u User
		if err := tx.Where("id = ?", t.UserID).Take(&u).Error; err != nil {
			return Change{}, err
		}
		m, err := mail(&u, n)
		if err != nil || m == nil {
			return Change{}, err
		}
		m.UserID = &u.ID
		return Change{}, queueMail(tx, m)
	})
	return did, err
}

func ignoreNotFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	return err
}
