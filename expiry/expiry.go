// Package expiry tells users that their tokens are about to expire:
// token_expiring 7 days and 1 day before a token made with the API or
// imported expires, and token_expired when it has, each once per token,
// as security events (so the user sees them, and the webhooks carry them)
// and by mail when a mail server is configured and the user's address is
// verified. Login tokens get none: every device would get three notices a
// month.
package expiry

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"tokenauth/mail"
	"tokenauth/models"
)

// Poll is how often the notices due are looked for.
const Poll = time.Minute

// batch is how many notices one look records at most before looking again.
const batch = 200

// Notifier records the notices of one database as they come due.
type Notifier struct {
	db   *gorm.DB
	mail models.ExpiryMail
	log  *slog.Logger
	wake chan struct{}
	// passes counts the looks since the start.
	passes atomic.Uint64
}

// NewNotifier returns the notifier of db (whose clock decides what is
// due). With composer not nil (a mail server is configured) each notice
// is also mailed to a user with a verified address.
func NewNotifier(db *gorm.DB, composer *mail.Composer, log *slog.Logger) *Notifier {
	n := &Notifier{db: db, log: log.With("worker", "expiry notices"), wake: make(chan struct{}, 1)}
	if composer != nil {
		n.mail = composer.ExpiryNotice
	}
	return n
}

// RecordDue records every notice due now, and returns how many.
func (n *Notifier) RecordDue(ctx context.Context) (int, error) {
	total := 0
	for {
		did, err := models.RecordExpiryNotices(ctx, n.db, batch, n.mail)
		total += did
		if err != nil || did < batch {
			return total, err
		}
	}
}

// Run records the notices as they come due until ctx ends: at once, when
// woken and every Poll.
func (n *Notifier) Run(ctx context.Context) {
	ticker := time.NewTicker(Poll)
	defer ticker.Stop()
	for {
		if _, err := n.RecordDue(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("recording notices of token expiry; will retry", "error", err.Error())
		}
		n.passes.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-ticker.C:
		}
	}
}

// Started tells whether the notifier has made its first look, which
// records what came due while the service was down.
func (n *Notifier) Started() bool { return n.passes.Load() > 0 }

// Wake has the notifier look for notices due now rather than at its next
// poll (after the clock moved, in tests). It never blocks.
func (n *Notifier) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}
