package auth

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"gorm.io/gorm"

	"tokenauth/models"
)

// usageRecorder writes token usage behind the requests: uses are coalesced
// in memory and flushed in one statement per batch, so authentication never
// waits for a write. What is pending is lost only on a crash, and then only
// the last few seconds of last-used times; a graceful stop flushes it.
type usageRecorder struct {
	db      *gorm.DB
	mu      sync.Mutex
	waiting map[uint]models.Usage
	// writing is the batch being flushed: until it is in the database,
	// pending still finds it there, or a token near its idle limit could
	// look idle for the length of a write.
	writing map[uint]models.Usage
	// flushing makes flushes take turns.
	flushing sync.Mutex
}

func newUsageRecorder(db *gorm.DB) *usageRecorder {
	return &usageRecorder{db: db, waiting: map[uint]models.Usage{}}
}

// record notes a use of the token. A later use replaces an earlier one;
// the networks of both are kept.
func (r *usageRecorder) record(tokenID uint, u models.Usage) {
	r.mu.Lock()
	if prev, ok := r.waiting[tokenID]; !ok {
		r.waiting[tokenID] = u
	} else {
		networks := prev.Networks.Merge(u.Networks)
		if u.LastUsedAt.After(prev.LastUsedAt) {
			prev = u
		}
		prev.Networks = networks
		r.waiting[tokenID] = prev
	}
	r.mu.Unlock()
}

// pending returns the use of the token not yet written, if any: this
// process knows of it before the database does.
func (r *usageRecorder) pending(tokenID uint) (models.Usage, bool) {
	r.mu.Lock()
	u, ok := r.waiting[tokenID]
	if !ok {
		u, ok = r.writing[tokenID]
	}
	r.mu.Unlock()
	return u, ok
}

// len is the number of tokens with a use not yet written.
func (r *usageRecorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiting)
}

// flush writes every pending use. Uses that could not be written stay
// pending for the next flush (unless a newer use replaced them).
func (r *usageRecorder) flush(ctx context.Context) error {
	r.flushing.Lock()
	defer r.flushing.Unlock()
	r.mu.Lock()
	batch := r.waiting
	r.waiting = make(map[uint]models.Usage, len(batch))
	r.writing = batch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.writing = nil
		r.mu.Unlock()
	}()
	ids := slices.Collect(maps.Keys(batch))
	for start := 0; start < len(ids); start += models.UsageBatch {
		chunk := ids[start:min(start+models.UsageBatch, len(ids))]
		if err := models.WriteUsage(ctx, r.db, chunk, batch); err != nil {
			for _, id := range ids[start:] {
				r.record(id, batch[id])
			}
			return fmt.Errorf("writing token usage: %w", err)
		}
	}
	return nil
}

// run flushes every interval until ctx ends, then flushes once more with
// a fresh deadline, so that a graceful stop loses nothing.
func (r *usageRecorder) run(ctx context.Context, interval time.Duration, onError func(error)) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			if err := r.flush(ctx); err != nil {
				onError(err)
			}
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := r.flush(final); err != nil {
				onError(err)
			}
			cancel()
			return
		}
	}
}
