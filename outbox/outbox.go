// Package outbox delivers the rows of a table that its writers fill in the
// same transaction as their cause (models.Delivery): mail, and webhooks
// (models.WebhookDelivery). A Worker claims one due row at a time under a
// lease, hands it to a delivery function, and records the outcome:
// delivered; retried after a backoff that doubles each time; or, after a
// bounded number of attempts, given up and left for the operator to see.
//
// Nothing is lost on the way. A row is claimed before it is delivered and
// settled after: a crash between the two leaves a lease that runs out,
// and the row is due again (so a delivery can happen twice, never zero
// times: at least once). Several workers, in one process or many sharing
// a PostgreSQL database, never hold the same row at once (see
// models.ClaimDue).
package outbox

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"tokenauth/models"
)

// Policy says how a worker tries its rows.
type Policy struct {
	// MaxAttempts is how many attempts a row gets before it is given up.
	MaxAttempts int
	// FirstRetry is the wait after the first failed attempt; each further
	// failure doubles it, up to MaxRetry.
	FirstRetry, MaxRetry time.Duration
	// AttemptTimeout bounds one attempt. The lease of a claim is longer
	// by a margin, so a live worker always settles within its lease.
	AttemptTimeout time.Duration
	// Poll is how often the worker looks for due rows when nobody woke it
	// (rows written by other processes, retries coming due).
	Poll time.Duration
}

// leaseMargin is how much longer than an attempt may take a claim holds
// its row.
const leaseMargin = time.Minute

// Lease is how long a claim holds a row.
func (p Policy) Lease() time.Duration { return p.AttemptTimeout + leaseMargin }

// Backoff is the wait before the attempt that follows attempt number n
// (from 1) failed.
func (p Policy) Backoff(n int) time.Duration {
	d := p.FirstRetry
	for i := 1; i < n && d < p.MaxRetry; i++ {
		d *= 2
	}
	return min(d, p.MaxRetry)
}

// Permanent marks an error after which retrying cannot help (a mail the
// server refuses for good): the row is given up at once.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// Result is what became of one attempt, for the worker's observer.
type Result int

// Results of an attempt.
const (
	Delivered Result = iota
	Retrying
	GaveUp
	Released
)

// Deliver delivers one claimed row. Returning nil marks it delivered; an
// error is a failed attempt (see Permanent). columns, when not nil, are
// set on the row with the outcome (a mail forgets its body).
type Deliver[T any] func(ctx context.Context, row *T) (columns map[string]any, err error)

// Worker delivers the rows of one table. T is the table's model, which
// embeds models.Delivery; P is *T.
type Worker[T any, P interface {
	*T
	models.Deliverable
}] struct {
	db      *gorm.DB
	table   string
	policy  Policy
	deliver Deliver[T]
	log     *slog.Logger
	// observe, when set, hears the result of every attempt (metrics).
	observe func(Result)
	// onGiveUp, when set, gets the columns to set on a row given up.
	onGiveUp map[string]any
	// afterPass, when set, runs after each look for due rows.
	afterPass func(ctx context.Context)
	// cond, when set, is a further condition a row must meet to be
	// claimed (models.ClaimDueWhere).
	cond string
	// onRetry, when set, hears of every row that will be tried again.
	onRetry func(ctx context.Context, row *T, at time.Time)
	wake    chan struct{}
	passes  atomic.Uint64
}

// NewWorker returns a worker for table on db (whose clock decides what is
// due), delivering with deliver.
func NewWorker[T any, P interface {
	*T
	models.Deliverable
}](db *gorm.DB, table string, policy Policy, deliver Deliver[T], log *slog.Logger) *Worker[T, P] {
	return &Worker[T, P]{db: db, table: table, policy: policy, deliver: deliver, log: log.With("outbox", table),
		wake: make(chan struct{}, 1)}
}

// Observe has fn called with the result of every attempt.
func (w *Worker[T, P]) Observe(fn func(Result)) { w.observe = fn }

// OnGiveUp sets columns on every row given up, with its outcome (a mail
// given up forgets its body too).
func (w *Worker[T, P]) OnGiveUp(columns map[string]any) { w.onGiveUp = columns }

// AfterPass has fn run after each look for due rows, on the worker's
// goroutine (to count what is left, say).
func (w *Worker[T, P]) AfterPass(fn func(ctx context.Context)) { w.afterPass = fn }

// Where has the worker claim only the due rows that meet cond, an SQL
// condition on the row such as models.WebhookInOrder.
func (w *Worker[T, P]) Where(cond string) { w.cond = cond }

// OnRetry has fn called, on the worker's goroutine, with every row whose
// attempt failed and that will be tried again at at, once that is
// recorded (rows queued behind it can wait as long: see package webhooks).
func (w *Worker[T, P]) OnRetry(fn func(ctx context.Context, row *T, at time.Time)) { w.onRetry = fn }

// Passes returns how many times the worker has looked for due rows (and
// delivered what it found) since it started.
func (w *Worker[T, P]) Passes() uint64 { return w.passes.Load() }

// Wake has the worker look for due rows now rather than at its next poll.
// It never blocks.
func (w *Worker[T, P]) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers due rows until ctx ends: at once, whenever woken, and every
// Poll. An attempt under way when ctx ends is stopped and its row released
// for the next start, due at once and its attempt not counted.
func (w *Worker[T, P]) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		for ctx.Err() == nil {
			did, err := w.RunOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					w.log.Warn("delivering queued rows; will retry", "error", err.Error())
				}
				break
			}
			if !did {
				break
			}
		}
		if w.afterPass != nil && ctx.Err() == nil {
			w.afterPass(ctx)
		}
		w.passes.Add(1)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(w.policy.Poll)
	}
}

// RunOnce claims the row due the longest, if any, delivers it and settles
// it. It reports whether there was one.
func (w *Worker[T, P]) RunOnce(ctx context.Context) (bool, error) {
	rows, claim, err := models.ClaimDueWhere[T](ctx, w.db, w.table, w.policy.Lease(), w.cond)
	if err != nil || len(rows) == 0 {
		return false, err
	}
	row := P(&rows[0])
	id, state := row.DeliveryRow()
	attemptCtx, cancel := context.WithTimeout(ctx, w.policy.AttemptTimeout)
	columns, deliverErr := w.deliver(attemptCtx, &rows[0])
	cancel()
	outcome, result := w.judge(ctx, state.Attempts, deliverErr)
	if outcome.Columns == nil {
		outcome.Columns = columns
	}
	// Settled even when ctx ended: a released row must say so.
	settleCtx, cancelSettle := context.WithTimeout(context.WithoutCancel(ctx), w.policy.AttemptTimeout)
	defer cancelSettle()
	if _, err := models.Settle(settleCtx, w.db, w.table, id, claim, outcome); err != nil {
		return true, err
	}
	if w.observe != nil {
		w.observe(result)
	}
	if result == Retrying && w.onRetry != nil {
		w.onRetry(settleCtx, &rows[0], outcome.RetryAt)
	}
	switch result {
	case Retrying:
		w.log.Warn("delivery failed; will retry", "id", id, "attempt", state.Attempts, "retry_at", outcome.RetryAt,
			"error", outcome.Error)
	case GaveUp:
		w.log.Error("delivery failed; given up", "id", id, "attempts", state.Attempts, "error", outcome.Error)
	}
	return true, nil
}

// judge turns the error of attempt number attempts into an outcome.
func (w *Worker[T, P]) judge(ctx context.Context, attempts int, err error) (models.Outcome, Result) {
	var permanent permanentError
	switch {
	case err == nil:
		return models.Outcome{Delivered: true}, Delivered
	case ctx.Err() != nil:
		return models.Outcome{Released: true, Error: "stopped: the service was shutting down"}, Released
	case errors.As(err, &permanent) || attempts >= w.policy.MaxAttempts:
		return models.Outcome{Failed: true, Error: err.Error(), Columns: w.onGiveUp}, GaveUp
	}
	return models.Outcome{RetryAt: models.Now(w.db).Add(w.policy.Backoff(attempts)), Error: err.Error()}, Retrying
}
