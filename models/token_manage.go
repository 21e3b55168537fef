package models

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"
)

// listedColumns are the columns of a token that a listing shows, in the
// order listedFields gives their fields. The others (the hash above all)
// stay in the database.
const listedColumns = "id, user_id, name, kind, prefix, scopes, created_at, last_used_at, expires_at, " +
	"previous_expires_at, paused_at, last_ip, last_user_agent, networks, allowed_ips, metadata, " +
	"rate_limit_requests, rate_limit_seconds"

// listedFields are where the listedColumns of a row go in t.
func listedFields(t *APIToken) []any {
	return []any{&t.ID, &t.UserID, &t.Name, &t.Kind, &t.Prefix, &t.Scopes, &t.CreatedAt, &t.LastUsedAt, &t.ExpiresAt,
		&t.PreviousExpiresAt, &t.PausedAt, &t.LastIP, &t.LastUserAgent, &t.Networks, &t.AllowedIPs, &t.Metadata,
		&t.RateLimitRequests, &t.RateLimitSeconds}
}

// ListTokens returns the user's live tokens, newest first, with only the
// fields a listing shows (listedColumns): no hash, no revocation, no
// authentication time.
func ListTokens(ctx context.Context, db *gorm.DB, userID uint, idle time.Duration) ([]APIToken, error) {
	tokens := []APIToken{}
	err := EachLiveToken(ctx, db, userID, idle, func(t *APIToken) { tokens = append(tokens, *t) })
	return tokens, err
}

// EachLiveToken calls f with each of the user's live tokens, newest first,
// as ListTokens returns them, without keeping them: f's token is reused
// for the next row. A user may hold MAX_TOKENS_PER_USER tokens, and GORM's
// scanning by reflection and a slice of every token were most of the cost
// of listing them.
func EachLiveToken(ctx context.Context, db *gorm.DB, userID uint, idle time.Duration, f func(*APIToken)) error {
	rows, err := liveTokens(db.WithContext(ctx), userID, nowOf(db), idle).Select(listedColumns).
		Order("created_at DESC, id DESC").Rows()
	if err != nil {
		return translate(err)
	}
	defer rows.Close()
	var t APIToken
	fields := listedFields(&t)
	for rows.Next() {
		t = APIToken{}
		if err := rows.Scan(fields...); err != nil {
			return translate(err)
		}
		f(&t)
	}
	return translate(rows.Err())
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

// FindToken returns the user's unrevoked token with that id, whether or
// not it is live: the token making a request, read afresh.
func FindToken(ctx context.Context, db *gorm.DB, userID, id uint) (*APIToken, error) {
	var t APIToken
	err := db.WithContext(ctx).Where("id = ? AND user_id = ? AND revoked_at IS NULL", id, userID).Take(&t).Error
	if err != nil {
		return nil, translate(err)
	}
	return &t, nil
}

// TokenPatch is a change to a token; nil fields stay as they are.
type TokenPatch struct {
	Name    *string
	Enabled *bool
	// AllowedIPs replaces the allowed networks (empty: anywhere).
	AllowedIPs *IPNets
	// Metadata replaces the metadata (compact JSON, or "" for none).
	Metadata *string
	// RateLimit replaces the token's own budget (zero: none).
	RateLimit *RateLimit
}

// Loosens tells whether applying p to t would let the token do more: resume
// it, widen or drop its allowed networks, raise or drop its rate limit.
func (p TokenPatch) Loosens(t *APIToken) bool {
	switch {
	case p.Enabled != nil && *p.Enabled && t.PausedAt != nil:
		return true
	case p.AllowedIPs != nil && !t.AllowedIPs.Covers(*p.AllowedIPs):
		return true
	case p.RateLimit != nil && !t.RateLimit().Covers(*p.RateLimit):
		return true
	}
	return false
}

// UpdateToken applies p to t (in the database and in t), recording an
// event for each kind of change: renamed, paused or resumed, restrictions
// changed.
func UpdateToken(ctx context.Context, db *gorm.DB, t *APIToken, p TokenPatch) error {
	next := *t
	cols := map[string]any{}
	var events []string
	if p.Name != nil && *p.Name != t.Name {
		next.Name, cols["name"] = *p.Name, *p.Name
		events = append(events, EventTokenRenamed)
	}
	if p.Enabled != nil && *p.Enabled != (t.PausedAt == nil) {
		if *p.Enabled {
			next.PausedAt, cols["paused_at"] = nil, nil
			events = append(events, EventTokenResumed)
		} else {
			now := nowOf(db)
			next.PausedAt, cols["paused_at"] = &now, now
			events = append(events, EventTokenPaused)
		}
	}
	restricted := false
	if p.AllowedIPs != nil && !slices.Equal(*p.AllowedIPs, t.AllowedIPs) {
		next.AllowedIPs, cols["allowed_ips"] = *p.AllowedIPs, *p.AllowedIPs
		restricted = true
	}
	if p.RateLimit != nil && *p.RateLimit != t.RateLimit() {
		next.setRateLimit(*p.RateLimit)
		cols["rate_limit_requests"], cols["rate_limit_seconds"] = next.RateLimitRequests, next.RateLimitSeconds
		restricted = true
	}
	if restricted {
		events = append(events, EventTokenRestricted)
	}
	if p.Metadata != nil && *p.Metadata != t.Metadata {
		next.Metadata, cols["metadata"] = *p.Metadata, *p.Metadata
	}
	if len(cols) == 0 {
		return nil
	}
	err := commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		change := Change{TokenIDs: []uint{t.ID}}
		res := tx.Model(&APIToken{}).Where("id = ? AND revoked_at IS NULL", t.ID).UpdateColumns(cols)
		if res.Error != nil {
			return change, res.Error
		}
		if res.RowsAffected != 1 {
			return change, ErrNotFound
		}
		for _, typ := range events {
			if err := recordEvent(tx, SecurityEvent{UserID: idRef(t.UserID), Type: typ, TokenID: idRef(t.ID)}); err != nil {
				return change, err
			}
		}
		return change, nil
	})
	if err != nil {
		return err
	}
	*t = next
	return nil
}

// RotateToken replaces t with a new token of the same name, kind, scopes,
// expiry, authentication time and policy (a legacy token becomes a
// personal one). With no grace, t is revoked in the same transaction:
// exactly one of the two secrets works at any moment. With a grace, t's
// secret keeps working until now + grace or its own expiry, whichever
// comes first, but t is no longer listed or counted; a grace t itself
// still had from an earlier rotation ends now. Of two rotations of one
// token at once, one wins and the other is ErrConflict.
func RotateToken(ctx context.Context, db *gorm.DB, t *APIToken, grace time.Duration) (*APIToken, error) {
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
		ExpiresAt: t.ExpiresAt, AuthenticatedAt: t.AuthenticatedAt, Secret: secret, Networks: t.Networks,
		PausedAt: t.PausedAt, AllowedIPs: t.AllowedIPs, Metadata: t.Metadata,
		RateLimitRequests: t.RateLimitRequests, RateLimitSeconds: t.RateLimitSeconds}
	err = commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		now := nowOf(tx)
		change := Change{TokenIDs: []uint{t.ID}}
		var earlier []uint
		if err := tx.Model(&APIToken{}).Where("rotated_to_id = ? AND revoked_at IS NULL", t.ID).
			Pluck("id", &earlier).Error; err != nil {
			return change, err
		}
		if err := revokeIDs(tx, t.UserID, earlier, RevokedByRotation, now); err != nil {
			return change, err
		}
		change.TokenIDs = append(change.TokenIDs, earlier...)
		cols := map[string]any{}
		if grace > 0 {
			end := now.Add(grace)
			if t.ExpiresAt != nil && t.ExpiresAt.Before(end) {
				end = *t.ExpiresAt
			}
			next.PreviousExpiresAt = &end
			cols["expires_at"] = end
		} else {
			cols["revoked_at"], cols["revoked_reason"] = now, RevokedByRotation
		}
		if err := tx.Create(next).Error; err != nil {
			return change, err
		}
		cols["rotated_to_id"] = next.ID
		res := tx.Model(&APIToken{}).Where("id = ? AND revoked_at IS NULL AND rotated_to_id IS NULL", t.ID).
			UpdateColumns(cols)
		if res.Error != nil {
			return change, res.Error
		}
		if res.RowsAffected != 1 {
			return change, ErrConflict
		}
		return change, recordEvent(tx, SecurityEvent{UserID: idRef(t.UserID), Type: EventTokenRotated, TokenID: idRef(next.ID)})
	})
	if err != nil {
		return nil, err
	}
	return next, nil
}

// ExpireRotated revokes t, the previous secret of a rotated token whose
// grace has ended, and records the refused use, once: of the requests and
// instances that find it so, one writes.
func ExpireRotated(ctx context.Context, db *gorm.DB, t *APIToken) error {
	return commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		change := Change{TokenIDs: []uint{t.ID}}
		res := tx.Model(&APIToken{}).Where("id = ? AND revoked_at IS NULL AND rotated_to_id IS NOT NULL", t.ID).
			UpdateColumns(map[string]any{"revoked_at": nowOf(tx), "revoked_reason": RevokedByRotation})
		if res.Error != nil || res.RowsAffected != 1 {
			return change, res.Error
		}
		return change, recordEvent(tx, SecurityEvent{UserID: idRef(t.UserID), Type: EventTokenExpired,
			Reason: RevokedByRotation, TokenID: idRef(t.ID)})
	})
}

// RecordTokenEvent records an event of the token's owner about the token,
// with the client of ctx (see WithClient).
func RecordTokenEvent(ctx context.Context, db *gorm.DB, t *APIToken, typ string) error {
	return translate(recordEvent(db.WithContext(ctx), SecurityEvent{UserID: idRef(t.UserID), Type: typ, TokenID: idRef(t.ID)}))
}
