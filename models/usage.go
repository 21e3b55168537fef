package models

import (
	"context"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Usage is what using a token changes: when it was last used and, for a
// sliding login token, its new expiry.
type Usage struct {
	LastUsedAt time.Time
	ExpiresAt  *time.Time
}

// UsageBatch bounds the tokens WriteUsage takes at once (PostgreSQL
// allows 65535 parameters in a statement).
const UsageBatch = 500

// WriteUsage records the uses of the tokens ids (at most UsageBatch) in
// one portable statement:
// UPDATE ... SET last_used_at = CASE id WHEN ? THEN ? ... END WHERE id IN (...).
// A revoked token keeps the last use it had.
func WriteUsage(ctx context.Context, db *gorm.DB, ids []uint, uses map[uint]Usage) error {
	var sql strings.Builder
	args := make([]any, 0, 5*len(ids)+1)
	sql.WriteString("UPDATE api_tokens SET last_used_at = CASE id")
	for _, id := range ids {
		sql.WriteString(" WHEN ? THEN ?")
		args = append(args, id, uses[id].LastUsedAt)
	}
	sql.WriteString(" ELSE last_used_at END")
	sliding := false
	for _, id := range ids {
		if e := uses[id].ExpiresAt; e != nil {
			if !sliding {
				sql.WriteString(", expires_at = CASE id")
				sliding = true
			}
			sql.WriteString(" WHEN ? THEN ?")
			args = append(args, id, *e)
		}
	}
	if sliding {
		sql.WriteString(" ELSE expires_at END")
	}
	sql.WriteString(" WHERE revoked_at IS NULL AND id IN ?")
	args = append(args, ids)
	return translate(db.WithContext(ctx).Exec(sql.String(), args...).Error)
}
