package models

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"
)

// FindTokenByHash returns the token with that key hash and its user, in one
// indexed query. It does not judge whether the token is alive.
//
// It reads what authenticating a request and serving it need, and nothing
// else (see lookupSkips): no secret leaves the database on the way, so
// none sits in the token cache, and a narrower row is faster to fetch and
// decode. KeyHash is the one it was given, and the user's ID the token's
// UserID.
//
// This is the query of every request the token cache does not answer, so
// it is written by hand and scanned without reflection, which through
// GORM's Joins cost many allocations and much of the request's CPU. Given
// the pgx pool under db (PostgreSQL; see config.Database), it runs on the
// pool in pgx's binary protocol, skipping GORM's statement building and
// database/sql's row conversion (scanPgx says how it scans;
// docs/BENCHMARKS.md has the measurements). That path does not pass
// through GORM's callbacks; with a nil pool (SQLite) the query still does. TestFindTokenByHashReadsEveryColumn keeps the column
// list in step with the models, and TestFindTokenByHashMatchesTheORM the
// result.
func FindTokenByHash(ctx context.Context, db *gorm.DB, pool *pgxpool.Pool, keyHash string) (*APIToken, error) {
	t := APIToken{KeyHash: keyHash}
	var err error
	if pool != nil {
		err = t.scanPgx(pool.QueryRow(ctx, tokenByHashSQL+"$1", keyHash))
	} else {
		u := &t.User
		err = db.WithContext(ctx).Raw(tokenByHashSQL+"?", keyHash).Row().Scan(&t.ID, &t.UserID, &t.Name, &t.Kind,
			&t.Prefix, &t.Scopes, &t.CreatedAt, &t.LastUsedAt, &t.ExpiresAt, &t.RevokedAt, &t.AuthenticatedAt,
			&t.PausedAt, &t.AllowedIPs, &t.RateLimitRequests, &t.RateLimitSeconds, &t.RotatedToID,
			&u.Username, &u.Email, &u.IsActive, &u.CreatedAt, &u.LastLoginAt, &u.EmailVerifiedAt, &u.MFAEnabledAt)
	}
	if errors.Is(err, sql.ErrNoRows) { // pgx.ErrNoRows is one too
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, translate(err)
	}
	t.User.ID = t.UserID
	return &t, nil
}

// scanPgx reads the lookup's row into t. It scans into the types pgx
// decodes directly (int64, string, pgtype.Timestamptz), all in one
// allocation: for uint, named and pointer types pgx would plan a wrapper
// per column on every query.
func (t *APIToken) scanPgx(row pgx.Row) error {
	var r struct {
		id, userID                          int64
		scopes, allowedIPs                  string
		created, lastUsed, expires, revoked pgtype.Timestamptz
		authenticated                       pgtype.Timestamptz
		paused                              pgtype.Timestamptz
		rateRequests, rateSeconds           int64
		rotatedTo                           pgtype.Int8
		userCreated, lastLogin, verified    pgtype.Timestamptz
		mfaEnabled                          pgtype.Timestamptz
	}
	u := &t.User
	if err := row.Scan(&r.id, &r.userID, &t.Name, &t.Kind, &t.Prefix, &r.scopes, &r.created, &r.lastUsed, &r.expires,
		&r.revoked, &r.authenticated, &r.paused, &r.allowedIPs, &r.rateRequests, &r.rateSeconds, &r.rotatedTo,
		&u.Username, &u.Email, &u.IsActive, &r.userCreated, &r.lastLogin, &r.verified, &r.mfaEnabled); err != nil {
		return err
	}
	t.ID, t.UserID = uint(r.id), uint(r.userID)
	if err := t.Scopes.Scan(r.scopes); err != nil {
		return err
	}
	if err := t.AllowedIPs.Scan(r.allowedIPs); err != nil {
		return err
	}
	t.RateLimitRequests, t.RateLimitSeconds = int(r.rateRequests), int(r.rateSeconds)
	if r.rotatedTo.Valid {
		id := uint(r.rotatedTo.Int64)
		t.RotatedToID = &id
	}
	t.PausedAt = timeOrNil(&r.paused)
	t.CreatedAt, u.CreatedAt = r.created.Time, r.userCreated.Time
	t.LastUsedAt, t.ExpiresAt, t.RevokedAt = timeOrNil(&r.lastUsed), timeOrNil(&r.expires), timeOrNil(&r.revoked)
	t.AuthenticatedAt = timeOrNil(&r.authenticated)
	u.LastLoginAt, u.EmailVerifiedAt = timeOrNil(&r.lastLogin), timeOrNil(&r.verified)
	u.MFAEnabledAt = timeOrNil(&r.mfaEnabled)
	return nil
}

// timeOrNil points at ts's time, or is nil for NULL.
func timeOrNil(ts *pgtype.Timestamptz) *time.Time {
	if !ts.Valid {
		return nil
	}
	return &ts.Time
}

// tokenByHashSQL selects, in the order FindTokenByHash scans them, the
// columns of a token and of its user that a request needs; the
// placeholder of the key hash follows.
const tokenByHashSQL = `SELECT t.id, t.user_id, t.name, t.kind, t.prefix, t.scopes, t.created_at,
	t.last_used_at, t.expires_at, t.revoked_at, t.authenticated_at,
	t.paused_at, t.allowed_ips, t.rate_limit_requests, t.rate_limit_seconds, t.rotated_to_id,
	u.username, u.email, u.is_active, u.created_at, u.last_login_at, u.email_verified_at, u.mfa_enabled_at
FROM api_tokens t JOIN users u ON u.id = t.user_id
WHERE t.key_hash = `

// lookupSkips are the columns FindTokenByHash leaves out, each with the
// reason; every other column is read.
var lookupSkips = map[string]string{
	"api_tokens.key_hash":            "the caller knows it: it is the argument",
	"users.id":                       "the same as api_tokens.user_id, which is read",
	"api_tokens.revoked_reason":      "a revoked token never authenticates",
	"users.password_hash":            "a secret: checked only against a fresh read (see ChangePassword)",
	"users.username_key":             "used to find users by name, never by a request",
	"users.email_key":                "used to find users by address, never by a request",
	"users.updated_at":               "bookkeeping no request reads",
	"api_tokens.expiry_notice_at":    "read only by the worker that records notices of expiry",
	"api_tokens.last_ip":             "a record for the owner, read with the token list",
	"api_tokens.last_user_agent":     "a record for the owner, read with the token list",
	"api_tokens.metadata":            "the owner's, read with the token list (up to 2 KiB a token in the cache otherwise)",
	"api_tokens.previous_expires_at": "shown in the token list; the previous secret's own row decides",
	"api_tokens.networks":            "a record for the owner, read with the token list and merged by the write of each use",
}
