package tests

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"tokenauth/auth"
)

// A dropped listening connection could miss announcements, so the instance
// empties its cache and answers from the database until it listens again.
// It runs in the PostgreSQL run, from TestOperatorChangesReachTheCache.
func checkDroppedListener(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		pids     []uint32
		reopened = make(chan struct{})
	)
	s := NewServer(t, WithChangeFeed(func(f *auth.ChangeFeed) {
		connect := f.Connect
		f.Connect = func(ctx context.Context) (*pgx.Conn, error) {
			mu.Lock()
			first := len(pids) == 0
			mu.Unlock()
			if !first {
				// Hold the reconnection back until the test has seen
				// the cache off.
				select {
				case <-reopened:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			conn, err := connect(ctx)
			if err == nil {
				mu.Lock()
				pids = append(pids, conn.PgConn().PID())
				mu.Unlock()
			}
			return conn, err
		}
	}))
	_, tok := s.UserWithToken(t, "alice")
	s.expectCached(t, tok)

	mu.Lock()
	listener := pids[0]
	mu.Unlock()
	if err := s.DB.Exec("SELECT pg_terminate_backend(?)", listener).Error; err != nil {
		t.Fatalf("terminating the listening connection: %v", err)
	}
	waitFor(t, "the token cache to go off", func() bool { return !s.Resolver.Stats().CacheEnabled })

	st := s.Resolver.Stats()
	if st.CacheEntries != 0 || st.CacheOutages != 1 {
		t.Fatalf("after the listener dropped: got %d entries and %d outages, want 0 and 1", st.CacheEntries, st.CacheOutages)
	}
	for range 3 {
		s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
	}
	if got := s.Resolver.Stats(); got.CacheHits != st.CacheHits || got.CacheEntries != 0 {
		t.Fatalf("while not listening: hits went from %d to %d and %d entries were kept; want no caching",
			st.CacheHits, got.CacheHits, got.CacheEntries)
	}
	if !strings.Contains(s.Logs.String(), "token cache off") {
		t.Errorf("no warning logged when the cache went off:\n%s", s.Logs.String())
	}

	close(reopened)
	waitFor(t, "the token cache to come back on", func() bool { return s.Resolver.Stats().CacheEnabled })
	s.expectCached(t, tok)
	mu.Lock()
	defer mu.Unlock()
	if len(pids) != 2 {
		t.Errorf("listening connections opened: got %d, want 2", len(pids))
	}
}
