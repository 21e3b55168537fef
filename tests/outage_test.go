package tests

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"tokenauth/config"
	"tokenauth/models"
)

// unavailableMessage is the whole of what a client learns about an outage.
const unavailableMessage = "The service is temporarily unavailable; try again shortly."

func TestDatabaseOutageAnswers503AndRecovers(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDatabaseSwitch())
	_, cached := s.UserWithToken(t, "alice")
	_, uncached := s.UserWithToken(t, "bob")
	// alice's token is now in the token cache; bob's has never been looked up.
	s.Do(t, Request{Path: "/api/profile/", Token: cached}).Expect(t, http.StatusOK)

	s.StopDatabase(t)
	// With the database gone, the changes other processes make cannot be
	// followed, so the instance empties its token cache and caches nothing
	// until it can again (docs/CACHING.md): a cached token is refused too.
	waitFor(t, "the token cache to go off", func() bool { return !s.Resolver.Stats().CacheEnabled })
	down := []struct {
		name string
		req  Request
	}{
		{"login", Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": testPassword}}},
		{"readiness", Request{Path: "/readyz"}},
		{"token not in the cache", Request{Path: "/api/profile/", Token: uncached}},
		{"token that was in the cache", Request{Path: "/api/profile/", Token: cached}},
		{"a write with a cached token", Request{Method: "POST", Path: "/api/tokens/", Token: cached, Body: map[string]any{"name": "ci"}}},
		{"a token list", Request{Path: "/api/tokens/", Token: cached}},
	}
	for _, tc := range down {
		t.Run("down/"+tc.name, func(t *testing.T) {
			body := s.Do(t, tc.req).ExpectError(t, http.StatusServiceUnavailable, "unavailable")
			if body["error"] != unavailableMessage || len(body) != 2 {
				t.Errorf("the body says more than that the service is unavailable: %v", body)
			}
		})
	}
	// What needs no database keeps working.
	s.Do(t, Request{Path: "/healthz"}).Expect(t, http.StatusOK)
	// Pending last-used times wait for the database instead of vanishing.
	pending := s.Resolver.Stats().PendingUses
	if pending == 0 {
		t.Fatal("no token use is pending; the test expected bob's or alice's")
	}
	if err := s.Resolver.FlushUsage(t.Context()); !errors.Is(err, models.ErrUnavailable) {
		t.Fatalf("flushing usage during the outage: got %v, want ErrUnavailable", err)
	}
	if got := s.Resolver.Stats().PendingUses; got != pending {
		t.Fatalf("pending uses after a failed flush: got %d, want %d", got, pending)
	}
	// The cause is in the logs, for the operator.
	if !strings.Contains(s.Logs.String(), `"status":503`) || !strings.Contains(s.Logs.String(), "database unavailable") {
		t.Errorf("the outage left no log line with its cause:\n%s", s.Logs.String())
	}

	s.StartDatabase(t)
	// The pool may hold connections that died with the server; each is
	// found out and replaced, so readiness comes back by itself.
	ready := false
	for range 50 {
		if s.Do(t, Request{Path: "/readyz"}).Status == http.StatusOK {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatal("/readyz still not 200 after the database came back")
	}
	s.Do(t, Request{Path: "/api/profile/", Token: uncached}).Expect(t, http.StatusOK)
	s.Login(t, "alice", testPassword)
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: cached, Body: map[string]any{"name": "ci"}}).Expect(t, http.StatusCreated)
	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatalf("flushing usage after the outage: %v", err)
	}
	var used int64
	s.DB.Model(&models.APIToken{}).Where("last_used_at IS NOT NULL").Count(&used)
	if used < 2 {
		t.Errorf("tokens with a last-used time after the outage: %d, want both used ones", used)
	}
}

func TestDatabaseThatStopsAnsweringAnswers503(t *testing.T) {
	t.Parallel()
	// Every connection of the pool is taken (as by queries stuck on a
	// database that stopped answering): requests wait for one only until
	// REQUEST_TIMEOUT, then get 503 instead of hanging.
	s := NewServer(t, WithConfig(func(c *config.Config) { c.RequestTimeout = 300 * time.Millisecond; c.TokenCacheTTL = 0 }))
	_, token := s.UserWithToken(t, "alice")
	release := holdEveryConnection(t, s)
	for _, req := range []Request{
		{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": testPassword}},
		{Path: "/api/profile/", Token: token},
		{Path: "/readyz"},
	} {
		body := s.Do(t, req).ExpectError(t, http.StatusServiceUnavailable, "unavailable")
		if body["error"] != unavailableMessage {
			t.Errorf("%s %s: %v", req.Method, req.Path, body)
		}
	}
	release()
	s.Do(t, Request{Path: "/readyz"}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, http.StatusOK)
	s.Login(t, "alice", testPassword)
}

// holdEveryConnection takes every connection of the server's pool (pgx's
// on PostgreSQL, database/sql's single one on SQLite) and returns the
// function that gives them back. They are given back when the test ends
// at the latest: closing the database waits for them.
func holdEveryConnection(t *testing.T, s *Server) (release func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var held []func()
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, giveBack := range held {
				giveBack()
			}
		})
	}
	t.Cleanup(release)
	if pool := s.Pool; pool != nil {
		for range pool.Config().MaxConns {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				t.Fatalf("taking a connection: %v", err)
			}
			held = append(held, conn.Release)
		}
		return release
	}
	sqlDB, err := s.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	for range sqlDB.Stats().MaxOpenConnections {
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			t.Fatalf("taking a connection: %v", err)
		}
		held = append(held, func() { conn.Close() })
	}
	if len(held) == 0 {
		t.Fatal("the pool has no limit on its connections: none to hold")
	}
	return release
}

// A database whose storage is full cannot take writes until an operator
// makes room: that is an outage (503), as PostgreSQL's class 53
// (insufficient resources) already was, not a bug of the service (500).
// Nothing of the refused writes is left behind, and the service recovers
// once there is room again.
func TestFullDatabaseAnswers503AndRecovers(t *testing.T) {
	t.Parallel()
	// Without the token cache, the read below goes to the database too.
	s := NewServer(t, WithConfig(func(c *config.Config) { c.TokenCacheTTL = 0 }))
	_, token := s.UserWithToken(t, "alice")
	s.CreateUser(t, "bob", testPassword)
	count := func(model any) int64 {
		var n int64
		if err := s.DB.Model(model).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	tokens, events := count(&models.APIToken{}), count(&models.SecurityEvent{})

	makeRoom := fillStorage(t, s.DB)
	for _, req := range []Request{
		{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "bob", "password": testPassword}},
		{Method: "POST", Path: "/api/tokens/", Token: token, Body: map[string]any{"name": "ci"}},
	} {
		body := s.Do(t, req).ExpectError(t, http.StatusServiceUnavailable, "unavailable")
		if body["error"] != unavailableMessage {
			t.Errorf("%s %s: %v", req.Method, req.Path, body)
		}
	}
	// Reading still works.
	s.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, http.StatusOK)
	makeRoom()
	if got := count(&models.APIToken{}); got != tokens {
		t.Errorf("tokens after the refused writes: %d, want %d", got, tokens)
	}
	if got := count(&models.SecurityEvent{}); got != events {
		t.Errorf("security events after the refused writes: %d, want %d", got, events)
	}
	s.Login(t, "bob", testPassword)
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: token, Body: map[string]any{"name": "ci"}}).
		Expect(t, http.StatusCreated)
}

// fillStorage makes db's storage refuse to grow, as on a full disk, for
// new tokens and security events, and returns the function that makes room
// again. On SQLite, the database is held to the pages it has
// (max_page_count) and each such insert first tries to store a megabyte
// elsewhere: "database or disk is full", as SQLite says when a write finds
// no room. On PostgreSQL each such insert gets disk_full (53100), as when
// it cannot extend a table.
func fillStorage(t *testing.T, db *gorm.DB) (makeRoom func()) {
	t.Helper()
	exec := func(sql string) {
		t.Helper()
		if err := db.Exec(sql).Error; err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	tables := []string{"api_tokens", "security_events"}
	if db.Dialector.Name() == "sqlite" {
		exec("CREATE TABLE storage_filler (b BLOB)")
		for _, table := range tables {
			exec("CREATE TRIGGER storage_full_" + table + " BEFORE INSERT ON " + table +
				" BEGIN INSERT INTO storage_filler VALUES (zeroblob(1048576)); END")
		}
		// The pool's one connection is the service's: the pragma holds
		// for every request.
		var pages int64
		if err := db.Raw("PRAGMA page_count").Scan(&pages).Error; err != nil || pages == 0 {
			t.Fatalf("reading the page count: %d, %v", pages, err)
		}
		exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages))
		return func() {
			exec("PRAGMA max_page_count = 1073741823")
			for _, table := range tables {
				exec("DROP TRIGGER storage_full_" + table)
			}
			exec("DROP TABLE storage_filler")
		}
	}
	exec(`CREATE FUNCTION storage_full() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$`)
	for _, table := range tables {
		exec("CREATE TRIGGER storage_full BEFORE INSERT ON " + table + " FOR EACH ROW EXECUTE FUNCTION storage_full()")
	}
	return func() {
		for _, table := range tables {
			exec("DROP TRIGGER storage_full ON " + table)
		}
		exec("DROP FUNCTION storage_full()")
	}
}
