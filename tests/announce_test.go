package tests

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"tokenauth/models"
)

// The triggers announce what can make a cached lookup wrong, and only that:
// the write-behind of last-used times and sliding expiry must not flush
// every instance's cache every few seconds.
// It runs in the PostgreSQL run, from TestOperatorChangesReachTheCache.
func checkChangeAnnouncements(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	u, tok := s.UserWithToken(t, "alice")
	id := s.tokenID(t, tok)

	conn, err := pgx.Connect(t.Context(), s.Config.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var channel string
	if err := conn.QueryRow(t.Context(), models.ChangeChannelQuery).Scan(&channel); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	// next returns the next announcement, or "" when none comes: a
	// marker announcement sent afterwards proves that nothing else was
	// pending before it.
	next := func(t *testing.T) string {
		t.Helper()
		if err := s.DB.Exec("SELECT pg_notify(?, 'marker')", channel).Error; err != nil {
			t.Fatal(err)
		}
		var got string
		for {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			n, err := conn.WaitForNotification(ctx)
			cancel()
			if err != nil {
				t.Fatalf("waiting for an announcement: %v", err)
			}
			if n.Payload == "marker" {
				return got
			}
			if got != "" {
				t.Fatalf("two announcements: %q, then %q", got, n.Payload)
			}
			got = n.Payload
		}
	}
	exec := func(t *testing.T, sql string, args ...any) {
		t.Helper()
		if err := s.DB.Exec(sql, args...).Error; err != nil {
			t.Fatal(err)
		}
	}
	want := func(t *testing.T, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("announcement: got %q, want %q", got, want)
		}
	}

	// Written behind: not announced.
	s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	want(t, next(t), "")
	exec(t, "UPDATE api_tokens SET expires_at = expires_at + interval '1 hour' WHERE id = ?", id)
	want(t, next(t), "")

	// What a cached lookup shows: announced.
	exec(t, "UPDATE api_tokens SET expires_at = expires_at - interval '2 hours' WHERE id = ?", id)
	want(t, next(t), "t:"+itoa(id))
	exec(t, "UPDATE api_tokens SET scopes = 'profile:read' WHERE id = ?", id)
	want(t, next(t), "t:"+itoa(id))
	exec(t, "UPDATE users SET is_active = false WHERE id = ?", u.ID)
	want(t, next(t), "u:"+itoa(u.ID))
	exec(t, "UPDATE users SET is_active = is_active WHERE id = ?", u.ID)
	want(t, next(t), "")
	// A statement touching more rows than a payload can name.
	exec(t, "INSERT INTO api_tokens (user_id, name, kind, key_hash, prefix, scopes, created_at) "+
		"SELECT ?, 'bulk', 'personal', md5(i::text) || md5((i+1)::text), 'tka_bulk0000', '*', now() FROM generate_series(1, 600) i", u.ID)
	want(t, next(t), "")
	exec(t, "UPDATE api_tokens SET revoked_at = now() WHERE name = 'bulk'")
	want(t, next(t), "*")
	exec(t, "DELETE FROM api_tokens WHERE id = ?", id)
	want(t, next(t), "t:"+itoa(id))

	// A rolled-back change is never announced.
	err = s.DB.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("UPDATE users SET email = 'x@example.com' WHERE id = ?", u.ID).Error; err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	want(t, next(t), "")
}

var errRollback = errors.New("roll back")
