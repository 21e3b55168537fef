package models

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Delivery is the state of a row that a background worker delivers, such
// as a mail in the outbox. A model embeds it, and the functions below
// claim and settle the rows of any table that does (package outbox runs
// them): the row is written in the same transaction as its cause, so a
// crash, a restart or an outage of the receiving end loses nothing.
//
// A worker claims a due row for a lease (ClaimedUntil) under a claim id of
// its own (ClaimedBy). Until the lease ends no other worker, in this
// process or another, takes the row; a worker that dies mid-attempt
// leaves a lease that runs out, and the row is due again. Settling
// checks the claim id, so a worker whose lease ran out cannot overwrite
// what the next one recorded.
type Delivery struct {
	// Attempts counts the claims of the row, an attempt cut short by a
	// crash included: a row that kills its worker stops being retried too.
	Attempts int `gorm:"not null;default:0"`
	// NextAttemptAt is when the row is due (again). The index holds only
	// the rows still to deliver, so finding due ones stays one probe.
	NextAttemptAt time.Time `gorm:"not null;index:,where:delivered_at IS NULL AND failed_at IS NULL"`
	ClaimedUntil  *time.Time
	ClaimedBy     string `gorm:"size:32;not null;default:''"`
	// LastError is what the last failed attempt said.
	LastError   string `gorm:"size:1000;not null;default:''"`
	DeliveredAt *time.Time
	// FailedAt is set when the row was given up after its last attempt.
	FailedAt *time.Time
}

// Deliverable is a row with a Delivery: its id and its state.
type Deliverable interface {
	DeliveryRow() (id uint, state *Delivery)
}

// lastErrorMaxLength bounds what is kept of an attempt's error.
const lastErrorMaxLength = 1000

// dueSQL selects the rows of a table that a worker may claim at a time
// (the first placeholder, twice).
const dueSQL = "delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)"

// ClaimDue claims the row of table that has been due the longest at the
// database's now, for lease, and returns it in a slice of T (the table's
// model) with the claim's id; nothing due is an empty slice. The claim
// counts as an attempt.
//
// On PostgreSQL one statement picks and claims the row, skipping rows
// that another transaction holds (FOR UPDATE SKIP LOCKED), so several
// instances claim different rows at once. SQLite has one writer at a time;
// there the claim is one UPDATE whose WHERE repeats the condition, so a
// row claimed by another process meanwhile is not taken twice. A cheap read
// comes first on both: an idle worker polls without taking a write lock.
func ClaimDue[T any](ctx context.Context, db *gorm.DB, table string, lease time.Duration) ([]T, string, error) {
	return ClaimDueWhere[T](ctx, db, table, lease, "")
}

// ClaimDueWhere is ClaimDue of the rows that also meet cond, an SQL
// condition on the row (its columns named after table), such as
// WebhookInOrder; empty for none. cond is checked in the same statement
// that claims the row.
func ClaimDueWhere[T any](ctx context.Context, db *gorm.DB, table string, lease time.Duration, cond string) ([]T, string, error) {
	db = db.WithContext(ctx)
	now := nowOf(db)
	due := dueSQL
	if cond != "" {
		due += " AND " + cond
	}
	var ids []uint
	if err := db.Raw("SELECT id FROM "+table+" WHERE "+due+" ORDER BY next_attempt_at, id LIMIT 1", now, now).
		Scan(&ids).Error; err != nil {
		return nil, "", translate(err)
	}
	if len(ids) == 0 {
		return nil, "", nil
	}
	claim, err := newClaimID()
	if err != nil {
		return nil, "", err
	}
	set := "UPDATE " + table + " SET claimed_until = ?, claimed_by = ?, attempts = attempts + 1 WHERE "
	var claimed []uint
	if db.Dialector.Name() == "postgres" {
		err = db.Raw(set+"id IN (SELECT id FROM "+table+" WHERE "+due+
			" ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
			now.Add(lease), claim, now, now).Scan(&claimed).Error
	} else {
		err = db.Raw(set+"id IN ? AND "+due+" RETURNING id", now.Add(lease), claim, ids, now, now).Scan(&claimed).Error
	}
	if err != nil || len(claimed) == 0 {
		return nil, "", translate(err)
	}
	var rows []T
	if err := db.Table(table).Where("id IN ? AND claimed_by = ?", claimed, claim).Find(&rows).Error; err != nil {
		return nil, "", translate(err)
	}
	return rows, claim, nil
}

func newClaimID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading a claim id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Outcome is how an attempt to deliver a row ended.
type Outcome struct {
	// Delivered: done; the row is never tried again.
	Delivered bool
	// Failed: given up; the row is never tried again.
	Failed bool
	// Released: the attempt was stopped before it could end (the worker
	// is shutting down); the row is due again at once and the attempt
	// does not count.
	Released bool
	// RetryAt, for any other outcome, is when to try again.
	RetryAt time.Time
	// Error is what went wrong, when something did.
	Error string
	// Columns are more columns of the row to set along with the outcome
	// (a delivered mail forgets its body).
	Columns map[string]any
}

// Settle records the outcome of an attempt on the row id of table, under
// the claim that took it. It reports false, writing nothing, when the
// claim no longer holds the row: its lease ran out and another worker
// took it, or the delivery itself consumed the row.
func Settle(ctx context.Context, db *gorm.DB, table string, id uint, claim string, o Outcome) (bool, error) {
	db = db.WithContext(ctx)
	now := nowOf(db)
	set := map[string]any{"claimed_until": nil, "claimed_by": ""}
	if o.Error != "" {
		// Kept after a later success too: the operator sees what a
		// delivery went through.
		set["last_error"] = truncate(o.Error, lastErrorMaxLength)
	}
	switch {
	case o.Delivered:
		set["delivered_at"] = now
	case o.Failed:
		set["failed_at"] = now
	case o.Released:
		set["attempts"] = gorm.Expr("attempts - 1")
		set["next_attempt_at"] = now
	default:
		set["next_attempt_at"] = o.RetryAt
	}
	for k, v := range o.Columns {
		set[k] = v
	}
	res := db.Table(table).Where("id = ? AND claimed_by = ?", id, claim).UpdateColumns(set)
	return res.RowsAffected == 1, translate(res.Error)
}

// DeliveryCounts are how many rows of a table wait to be delivered and
// how many were given up.
type DeliveryCounts struct {
	Pending, Failed int64
}

// CountDeliveries counts the rows of table still to deliver and those
// given up.
func CountDeliveries(ctx context.Context, db *gorm.DB, table string) (DeliveryCounts, error) {
	var c DeliveryCounts
	err := db.WithContext(ctx).Raw("SELECT COUNT(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL), "+
		"COUNT(*) FILTER (WHERE failed_at IS NOT NULL) FROM "+table).Row().Scan(&c.Pending, &c.Failed)
	return c, translate(err)
}
