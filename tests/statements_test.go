package tests

import (
	"net/http"
	"sync"
	"testing"

	"gorm.io/gorm"

	"tokenauth/app"
)

// statementLog records the SQL of the statements run on behalf of HTTP
// requests (their context is a request's: net/http puts the local address
// in it), leaving out the background workers' (last-used times, the change
// feed, the mail outbox), which run on their own schedule.
type statementLog struct {
	mu  sync.Mutex
	sql []string
}

// withStatementLog records the statements of the server in l, from before
// its background work starts.
func withStatementLog(t *testing.T, l *statementLog) Option {
	return withBeforeStart(func(a *app.App) { l.register(t, a.DB) })
}

func (l *statementLog) register(t *testing.T, db *gorm.DB) {
	t.Helper()
	record := func(tx *gorm.DB) {
		if tx.Statement.Context.Value(http.LocalAddrContextKey) == nil {
			return
		}
		l.mu.Lock()
		l.sql = append(l.sql, tx.Statement.SQL.String())
		l.mu.Unlock()
	}
	cb := db.Callback()
	for _, err := range []error{
		cb.Query().After("gorm:query").Register("test:log_statements", record),
		cb.Create().After("gorm:create").Register("test:log_statements", record),
		cb.Update().After("gorm:update").Register("test:log_statements", record),
		cb.Delete().After("gorm:delete").Register("test:log_statements", record),
		cb.Row().After("gorm:row").Register("test:log_statements", record),
		cb.Raw().After("gorm:raw").Register("test:log_statements", record),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// take returns the statements logged since the last take.
func (l *statementLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	sql := l.sql
	l.sql = nil
	return sql
}
