package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"

	"tokenauth/app"
	"tokenauth/password"
)

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
	statements := &statementLog{}
	f := newMailFixture(t, WithApp(app.WithPasswordHasher(hasher)), withStatementLog(t, statements))
	f.createUserWithEmail(t, "alice", "alice@example.com")
	statements.take()

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
