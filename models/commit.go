package models

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"
)

// commit runs fn in a transaction on db and, once the transaction has
// committed, announces the change fn reports to this process's listener
// (see ListenForChanges). Every write that can make a remembered token
// lookup wrong goes through it, so none can forget to announce itself. A
// rolled-back change is not announced. Errors leave translated.
//
// Rows queued for a worker in the transaction (see enqueue) are announced
// the same way, to the listener of ListenForQueued, so that the worker
// starts on them at once instead of at its next poll.
func commit(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) (Change, error)) error {
	var change Change
	queued := &queuedTables{}
	err := db.WithContext(context.WithValue(ctx, queuedKey{}, queued)).Transaction(func(tx *gorm.DB) error {
		var err error
		change, err = fn(tx)
		return err
	})
	if err != nil {
		return translate(err)
	}
	if l, ok := db.Config.Plugins[changeListenerName].(*changeListener); ok && !change.empty() {
		l.apply(change)
	}
	if l, ok := db.Config.Plugins[queueListenerName].(*queueListener); ok {
		for _, table := range queued.tables {
			l.wake(table)
		}
	}
	return nil
}

// queuedTables are the tables a transaction queued rows in.
type queuedTables struct{ tables []string }

type queuedKey struct{}

// enqueue inserts row, a model that embeds Delivery, due at once, in the
// transaction tx of commit, and has its table announced once tx commits.
func enqueue(tx *gorm.DB, row any, state *Delivery) error {
	state.NextAttemptAt = nowOf(tx)
	stmt := tx.Create(row)
	if stmt.Error != nil {
		return stmt.Error
	}
	announceQueued(tx, stmt.Statement.Table)
	return nil
}

// announceQueued has table announced once the transaction tx of commit
// commits (nothing outside commit).
func announceQueued(tx *gorm.DB, table string) {
	if q, ok := tx.Statement.Context.Value(queuedKey{}).(*queuedTables); ok && !slices.Contains(q.tables, table) {
		q.tables = append(q.tables, table)
	}
}

const queueListenerName = "tokenauth:queue-listener"

// queueListener is the GORM plugin through which a database handle
// carries the waker of its workers.
type queueListener struct{ wake func(table string) }

func (*queueListener) Name() string              { return queueListenerName }
func (*queueListener) Initialize(*gorm.DB) error { return nil }

// ListenForQueued has wake called, in this process, with the table of
// every row that the models queue for delivery through db, right after
// the transaction that queued it commits. Rows queued by other processes
// are found by the workers' polls. One listener per database handle.
func ListenForQueued(db *gorm.DB, wake func(table string)) error {
	return db.Use(&queueListener{wake: wake})
}

const changeListenerName = "tokenauth:change-listener"

// changeListener is the GORM plugin through which a database handle
// carries its listener.
type changeListener struct{ apply func(Change) }

func (*changeListener) Name() string              { return changeListenerName }
func (*changeListener) Initialize(*gorm.DB) error { return nil }

// ListenForChanges has apply called, in this process, with every change to
// users and tokens that the models commit through db (and the sessions and
// transactions made from it), right after it commits and before the call
// that made it returns. Changes committed by other processes are not
// heard here: on PostgreSQL they are announced by triggers (see
// InstallChangeNotifications). One listener per database handle.
func ListenForChanges(db *gorm.DB, apply func(Change)) error {
	return db.Use(&changeListener{apply: apply})
}

// Now is the time on db's clock, as the models see it (see nowOf).
func Now(db *gorm.DB) time.Time { return nowOf(db) }

// nowOf is the time on db's clock: the models read the time from the
// database handle (GORM's NowFunc, which also stamps created_at), so that
// one clock, set where the handle is made, decides every expiry.
func nowOf(db *gorm.DB) time.Time {
	return db.NowFunc().UTC()
}
