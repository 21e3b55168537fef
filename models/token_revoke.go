package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// RevokeQuery selects the live tokens of one user to revoke: one token
// (TokenID), or all of them but ExceptID (0 = none excepted).
type RevokeQuery struct {
	UserID   uint
	TokenID  uint
	ExceptID uint
	Reason   string
}

// RevokeTokens revokes the tokens q selects and returns their ids.
func RevokeTokens(ctx context.Context, db *gorm.DB, q RevokeQuery) ([]uint, error) {
	var ids []uint
	err := commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		var err error
		ids, err = revokeWhere(tx, q)
		return Change{TokenIDs: ids}, err
	})
	return ids, err
}

func revokeWhere(tx *gorm.DB, q RevokeQuery) ([]uint, error) {
	sel := tx.Model(&APIToken{}).Where("user_id = ? AND revoked_at IS NULL", q.UserID)
	if q.TokenID != 0 {
		// A token's previous secret, still in its grace, goes with it.
		sel = sel.Where("(id = ? OR rotated_to_id = ?)", q.TokenID, q.TokenID)
	}
	if q.ExceptID != 0 {
		sel = sel.Where("id <> ?", q.ExceptID)
	}
	var ids []uint
	if err := sel.Pluck("id", &ids).Error; err != nil {
		return nil, err
	}
	return ids, revokeIDs(tx, q.UserID, ids, q.Reason, nowOf(tx))
}

// revokeIDs revokes the user's tokens with those ids and records an event
// for each.
func revokeIDs(tx *gorm.DB, userID uint, ids []uint, reason string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	if err := tx.Model(&APIToken{}).Where("id IN ? AND user_id = ? AND revoked_at IS NULL", ids, userID).
		UpdateColumns(map[string]any{"revoked_at": now, "revoked_reason": reason}).Error; err != nil {
		return err
	}
	client := clientOf(tx.Statement.Context)
	events := make([]SecurityEvent, len(ids))
	for i, id := range ids {
		events[i] = SecurityEvent{UserID: idRef(userID), Type: EventTokenRevoked, Reason: reason, TokenID: idRef(id),
			IP: client.IP, UserAgent: client.UserAgent}
	}
	return tx.Create(&events).Error
}

// RevokeLeaked revokes the live tokens whose key hashes are given, whoever
// owns them, recording a leak report for each. It returns the revoked ids.
func RevokeLeaked(ctx context.Context, db *gorm.DB, keyHashes []string) ([]uint, error) {
	return RevokeByHashes(ctx, db, keyHashes, RevokedByLeakReport)
}

// RevokeByHashes revokes the live tokens whose key hashes are given,
// whoever owns them, recording reason for each: for those who hold a
// token's secret but not its owner's account (a leak report, an OAuth
// revocation). It returns the revoked ids.
func RevokeByHashes(ctx context.Context, db *gorm.DB, keyHashes []string, reason string) ([]uint, error) {
	if len(keyHashes) == 0 {
		return nil, nil
	}
	var revoked []uint
	err := commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		var found []APIToken
		if err := tx.Select("id", "user_id").Where("key_hash IN ? AND revoked_at IS NULL", keyHashes).Find(&found).Error; err != nil {
			return Change{}, err
		}
		now := nowOf(tx)
		for userID, ids := range idsByUser(found) {
			if err := revokeIDs(tx, userID, ids, reason, now); err != nil {
				return Change{}, err
			}
			revoked = append(revoked, ids...)
		}
		return Change{TokenIDs: revoked}, nil
	})
	return revoked, err
}

// LeakReport is a token reported leaked by a secret scanner.
type LeakReport struct {
	// KeyHash is HashToken of the reported string.
	KeyHash string
	// Detail says where it was found; it is recorded with the revocation.
	Detail string
}

// eventDetailMaxLength is the size of SecurityEvent's Detail column.
const eventDetailMaxLength = 500

// RevokeReported revokes the live tokens among the reports, each with a
// token_revoked event (reason leak_report) that says where it was found,
// and returns the key hashes of the reports that are tokens of this
// service, live or not.
func RevokeReported(ctx context.Context, db *gorm.DB, reports []LeakReport) (map[string]bool, error) {
	known := map[string]bool{}
	if len(reports) == 0 {
		return known, nil
	}
	hashes := make([]string, len(reports))
	for i, r := range reports {
		hashes[i] = r.KeyHash
	}
	err := commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		var found []APIToken
		if err := tx.Select("id", "user_id", "key_hash", "revoked_at").Where("key_hash IN ?", hashes).
			Find(&found).Error; err != nil {
			return Change{}, err
		}
		now := nowOf(tx)
		var change Change
		for _, t := range found {
			known[t.KeyHash] = true
			if t.RevokedAt != nil {
				continue
			}
			res := tx.Model(&APIToken{}).Where("id = ? AND revoked_at IS NULL", t.ID).
				UpdateColumns(map[string]any{"revoked_at": now, "revoked_reason": RevokedByLeakReport})
			if res.Error != nil {
				return change, res.Error
			}
			if res.RowsAffected == 0 {
				continue
			}
			detail := ""
			for _, r := range reports {
				if r.KeyHash == t.KeyHash {
					detail = storableText(r.Detail, eventDetailMaxLength)
					break
				}
			}
			if err := recordEvent(tx, SecurityEvent{UserID: idRef(t.UserID), Type: EventTokenRevoked,
				Reason: RevokedByLeakReport, TokenID: idRef(t.ID), Detail: detail}); err != nil {
				return change, err
			}
			change.TokenIDs = append(change.TokenIDs, t.ID)
		}
		return change, nil
	})
	return known, err
}

func idsByUser(tokens []APIToken) map[uint][]uint {
	out := map[uint][]uint{}
	for _, t := range tokens {
		out[t.UserID] = append(out[t.UserID], t.ID)
	}
	return out
}

// PruneTokens deletes tokens that can never work again: revoked, expired,
// or idle longer than idle (0 = no idle limit). A token that dies of
// idleness leaves a token_revoked event with reason idle, so its owner
// learns why it stopped; an expired token leaves its token_expired notice
// first (recorded here without mail when the caller has not recorded it
// with its mail: see RecordExpiryNotices). It returns how many tokens were
// deleted.
func PruneTokens(ctx context.Context, db *gorm.DB, idle time.Duration) (int64, error) {
	const noticeBatch = 500
	for {
		n, err := RecordExpiryNotices(ctx, db, noticeBatch, nil)
		if err != nil {
			return 0, err
		}
		if n < noticeBatch {
			break
		}
	}
	var deleted int64
	err := commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		now := nowOf(tx)
		var change Change
		if idle > 0 {
			var idleTokens []APIToken
			if err := tx.Select("id", "user_id").
				Where("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) AND COALESCE(last_used_at, created_at) <= ?", now, now.Add(-idle)).
				Find(&idleTokens).Error; err != nil {
				return change, err
			}
			for userID, ids := range idsByUser(idleTokens) {
				if err := revokeIDs(tx, userID, ids, RevokedByIdle, now); err != nil {
					return change, err
				}
				change.TokenIDs = append(change.TokenIDs, ids...)
			}
		}
		// An expired token whose notice came due since the notices above
		// were recorded stays for the next prune.
		res := tx.Where("revoked_at IS NOT NULL OR (expires_at IS NOT NULL AND expires_at <= ? AND "+
			"(expiry_notice_at IS NULL OR expiry_notice_at > ?))", now, now).Delete(&APIToken{})
		deleted = res.RowsAffected
		return change, res.Error
	})
	return deleted, err
}
