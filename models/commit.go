package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// commit runs fn in a transaction on db and, once the transaction has
// committed, announces the change fn reports to this process's listener
// (see ListenForChanges). Every write that can make a remembered token
// lookup wrong goes through it, so none can forget to announce itself. A
// rolled-back change is not announced. Errors leave translated.
func commit(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) (Change, error)) error {
	var change Change
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
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
	return nil
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

// nowOf is the time on db's clock: the models read the time from the
// database handle (GORM's NowFunc, which also stamps created_at), so that
// one clock, set where the handle is made, decides every expiry.
func nowOf(db *gorm.DB) time.Time {
	return db.NowFunc().UTC()
}
