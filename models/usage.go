package models

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
)

// Usage is what using a token changes: when it was last used and, for a
// sliding login token, its new expiry.
type Usage struct {
	LastUsedAt time.Time
	ExpiresAt  *time.Time
}

// UsageRecorder writes token usage behind the requests: uses are coalesced
// in memory and flushed in one statement per batch, so authentication never
// waits for a write. What is pending is lost only on a crash, and then only
// the last few seconds of last-used times; a graceful stop flushes it.
type UsageRecorder struct {
	db      *gorm.DB
	mu      sync.Mutex
	pending map[uint]Usage
	// writing is the batch being flushed: until it is in the database,
	// Pending still finds it there, or a token near its idle limit could
	// look idle for the length of a write.
	writing map[uint]Usage
	// flushing makes flushes take turns.
	flushing sync.Mutex
}

// NewUsageRecorder returns a recorder writing to db.
func NewUsageRecorder(db *gorm.DB) *UsageRecorder {
	return &UsageRecorder{db: db, pending: map[uint]Usage{}}
}

// Record notes a use of the token. A later use replaces an earlier one.
func (r *UsageRecorder) Record(tokenID uint, u Usage) {
	r.mu.Lock()
	if prev, ok := r.pending[tokenID]; !ok || u.LastUsedAt.After(prev.LastUsedAt) {
		r.pending[tokenID] = u
	}
	r.mu.Unlock()
}

// Pending returns the use of the token not yet written, if any: this
// process knows of it before the database does.
func (r *UsageRecorder) Pending(tokenID uint) (Usage, bool) {
	r.mu.Lock()
	u, ok := r.pending[tokenID]
	if !ok {
		u, ok = r.writing[tokenID]
	}
	r.mu.Unlock()
	return u, ok
}

// Len is the number of tokens with a pending use.
func (r *UsageRecorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// flushBatch bounds the statement size (PostgreSQL allows 65535 parameters).
const flushBatch = 500

// Flush writes every pending use. Uses that could not be written stay
// pending for the next flush (unless a newer use replaced them).
func (r *UsageRecorder) Flush(ctx context.Context) error {
	r.flushing.Lock()
	defer r.flushing.Unlock()
	r.mu.Lock()
	batch := r.pending
	r.pending = make(map[uint]Usage, len(batch))
	r.writing = batch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.writing = nil
		r.mu.Unlock()
	}()
	if len(batch) == 0 {
		return nil
	}
	ids := make([]uint, 0, len(batch))
	for id := range batch {
		ids = append(ids, id)
	}
	for start := 0; start < len(ids); start += flushBatch {
		chunk := ids[start:min(start+flushBatch, len(ids))]
		if err := r.write(ctx, chunk, batch); err != nil {
			for _, id := range ids[start:] {
				r.Record(id, batch[id])
			}
			return fmt.Errorf("writing token usage: %w", translate(err))
		}
	}
	return nil
}

// write updates a chunk of tokens in one portable statement:
// UPDATE ... SET last_used_at = CASE id WHEN ? THEN ? ... END WHERE id IN (...).
func (r *UsageRecorder) write(ctx context.Context, ids []uint, batch map[uint]Usage) error {
	var sql strings.Builder
	args := make([]any, 0, 5*len(ids)+1)
	sql.WriteString("UPDATE api_tokens SET last_used_at = CASE id")
	for _, id := range ids {
		sql.WriteString(" WHEN ? THEN ?")
		args = append(args, id, batch[id].LastUsedAt)
	}
	sql.WriteString(" ELSE last_used_at END")
	sliding := false
	for _, id := range ids {
		if e := batch[id].ExpiresAt; e != nil {
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
	return r.db.WithContext(ctx).Exec(sql.String(), args...).Error
}

// Run flushes every interval until ctx ends, then flushes once more with
// a fresh deadline, so that a graceful stop loses nothing.
func (r *UsageRecorder) Run(ctx context.Context, interval time.Duration, onError func(error)) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			if err := r.Flush(ctx); err != nil {
				onError(err)
			}
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := r.Flush(final); err != nil {
				onError(err)
			}
			cancel()
			return
		}
	}
}
