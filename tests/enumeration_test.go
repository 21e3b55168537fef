package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"

	"tokenauth/app"
	"tokenauth/password"
)

// statementLog records the SQL of the statements run on behalf of HTTP
// requests (their context is a request's: net/http puts the local address
// in it), leaving out the background workers'.
type statementLog struct {
	mu  sync.Mutex
	sql []string
}

func recordStatements(t *testing.T, db *gorm.DB) *statementLog {
	t.Helper()
	l := &statementLog{}
	record := func(tx *gorm.DB) {
		if tx.Statement.Context.Value(http.LocalAddrContextKey) == nil {
			return
		}
		l.mu.Lock()
		l.sql = append(l.sql, tx.Statement.SQL.String())
		l.mu.Unlock()
	}
	cb := db.Callback()
	for name, err := range map[string]error{
		"create": cb.Create().After("gorm:create").Register("test:record", record),
		"query":  cb.Query().After("gorm:query").Register("test:record", record),
		"update": cb.Update().After("gorm:update").Register("test:record", record),
		"delete": cb.Delete().After("gorm:delete").Register("test:record", record),
		"row":    cb.Row().After("gorm:row").Register("test:record", record),
		"raw":    cb.Raw().After("gorm:raw").Register("test:record", record),
	} {
		if err != nil {
			t.Fatalf("registering the %s callback: %v", name, err)
		}
	}
	return l
}

// take returns the statements recorded since the last take.
func (l *statementLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.sql
	l.sql = nil
	return out
}

// A reset request for an existing account and one for an unknown account
// get the same status, body and headers, after the same statements and
// the same number of password hashes; only the existing account gets mail.
func TestPasswordResetTellsNothingOfAccounts(t *testing.T) {
	t.Parallel()
	hasher := password.NewHasher(testPasswordParams, 4)
	var hashes atomic.Int64
	hasher.OnBusy(func(busy bool) {
		if busy {
			hashes.Add(1)
		}
	})
	f := newMailFixture(t, WithApp(app.WithPasswordHasher(hasher)))
	f.createUserWithEmail(t, "alice", "alice@example.com")
	statements := recordStatements(t, f.DB)

	type probe struct {
		resp       *Response
		statements []string
		hashes     int64
	}
	send := func(body map[string]string) probe {
		statements.take()
		before := hashes.Load()
		resp := f.Do(t, Request{Method: "POST", Path: "/api/password-reset/", Body: body})
		return probe{resp: resp, statements: statements.take(), hashes: hashes.Load() - before}
	}
	for _, tc := range []struct{ name, field, existing, unknown string }{
		{"by email", "email", "alice@example.com", "nobody@example.com"},
		{"by username", "username", "alice", "nobody"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			known := send(map[string]string{tc.field: tc.existing})
			unknown := send(map[string]string{tc.field: tc.unknown})
			known.resp.Expect(t, http.StatusAccepted)
			if unknown.resp.Status != known.resp.Status || !bytes.Equal(unknown.resp.Body, known.resp.Body) {
				t.Errorf("answers differ:\nexisting %d %s\nunknown  %d %s", known.resp.Status, known.resp.Body,
					unknown.resp.Status, unknown.resp.Body)
			}
			if a, b := headersOf(known.resp), headersOf(unknown.resp); a != b {
				t.Errorf("headers differ:\nexisting %s\nunknown  %s", a, b)
			}
			if len(known.statements) == 0 {
				t.Fatal("no statement was recorded for the request: the log sees nothing")
			}
			if !slices.Equal(known.statements, unknown.statements) {
				t.Errorf("statements differ:\nexisting %q\nunknown  %q", known.statements, unknown.statements)
			}
			if known.hashes != unknown.hashes {
				t.Errorf("password hashes: existing %d, unknown %d", known.hashes, unknown.hashes)
			}
		})
	}
	f.waitForOutbox(t)
	if n := len(f.mail.MailsTo("alice@example.com")); n != 2 {
		t.Errorf("alice got %d mails, want 2", n)
	}
	if n := len(f.mail.Mails()); n != 2 {
		t.Errorf("%d mails in all, want 2: unknown accounts get none", n)
	}
}

// headersOf writes the response's headers but those that differ by
// nature between two requests (the time, the request id).
func headersOf(r *Response) string {
	h := r.Header.Clone()
	h.Del("Date")
	h.Del("X-Request-Id")
	var b bytes.Buffer
	_ = h.Write(&b)
	return fmt.Sprintf("%q", b.String())
}
