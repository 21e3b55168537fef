package tests

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"tokenauth/app"
	"tokenauth/clock"
	"tokenauth/config"
	"tokenauth/internal/testdb"
)

// shortIdle is an idle timeout far below the minute at which last uses
// used to be recorded, with a flush interval short enough to honour it.
const (
	shortIdle       = 3 * time.Second
	shortIdleFlush  = time.Second
	shortIdleUseGap = 500 * time.Millisecond
)

// withShortIdle runs the service on the fake clock c with the short idle
// timeout and cacheTTL.
func withShortIdle(c *clock.Fake, cacheTTL time.Duration) []Option {
	return []Option{
		WithApp(app.WithClock(c), app.WithUsageFlushInterval(shortIdleFlush)),
		WithConfig(func(cfg *config.Config) {
			cfg.TokenIdleTimeout = shortIdle
			cfg.TokenCacheTTL = cacheTTL
		}),
	}
}

// newFakeClock returns a fake clock at about now, in whole milliseconds so
// that both databases store its times exactly.
func newFakeClock() *clock.Fake { return clock.NewFake(time.Now().Truncate(time.Millisecond)) }

// A token in use never idles out, however short TOKEN_IDLE_TIMEOUT is, and
// one left unused dies on time: each use is recorded often enough for the
// timeout, through the cache, without it, and across the writes behind the
// requests.
func TestATokenInUseNeverIdlesOut(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		cacheTTL time.Duration
	}{
		{"cached", 30 * time.Second},
		{"cached more briefly than the timeout", time.Second},
		{"cache off", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newFakeClock()
			s := NewServer(t, withShortIdle(c, tc.cacheTTL)...)
			_, used := s.UserWithToken(t, "alice")
			unused := s.Login(t, "alice", testPassword)
			late := s.Login(t, "alice", testPassword)
			start := c.Now()
			use := func(step int) {
				t.Helper()
				c.Advance(shortIdleUseGap)
				if resp := s.Do(t, Request{Path: "/api/profile/", Token: used}); resp.Status != http.StatusOK {
					t.Fatalf("a token used every %v was refused %v after login (TOKEN_IDLE_TIMEOUT=%v): %d %s",
						shortIdleUseGap, c.Now().Sub(start), shortIdle, resp.Status, resp.Body)
				}
				if step%3 == 0 {
					if err := s.Resolver.FlushUsage(t.Context()); err != nil {
						t.Fatal(err)
					}
					// What other instances and prune read lags the last use
					// by less than the granularity, a tenth of the timeout.
					stored := s.storedToken(t, used).LastUsedAt
					if stored == nil || c.Now().Sub(*stored) >= shortIdle/10 {
						t.Fatalf("last_used_at after a flush at %v: got %v, want within %v of %v",
							c.Now().Sub(start), stored, shortIdle/10, c.Now())
					}
				}
			}
			for step := 1; step <= 5; step++ {
				use(step)
			}
			// An unused token dies exactly at the timeout.
			c.Advance(shortIdle - 1*time.Millisecond - c.Now().Sub(start))
			s.Do(t, Request{Path: "/api/profile/", Token: late}).Expect(t, http.StatusOK)
			c.Advance(time.Millisecond)
			s.Do(t, Request{Path: "/api/profile/", Token: unused}).ExpectError(t, http.StatusUnauthorized, "invalid_token")

			for step := 6; step <= 24; step++ {
				use(step)
			}
			// The token in use dies at the timeout after its last use.
			c.Advance(shortIdle)
			s.Do(t, Request{Path: "/api/profile/", Token: used}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
		})
	}
}

// A token used on one instance stays alive on another, whose cached entry
// knows only the uses it saw itself: before refusing a token as idle, an
// instance asks the database, where the first instance wrote the uses.
func TestATokenInUseElsewhereDoesNotIdleOut(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	a := NewServer(t, withShortIdle(c, 30*time.Second)...)
	b := NewServer(t, append(withShortIdle(c, 30*time.Second), WithDatabaseOf(a))...)
	_, tok := a.UserWithToken(t, "alice")
	b.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
	for range 2 * int(shortIdle/shortIdleUseGap) {
		c.Advance(shortIdleUseGap)
		a.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
		if err := a.Resolver.FlushUsage(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if resp := b.Do(t, Request{Path: "/api/profile/", Token: tok}); resp.Status != http.StatusOK {
		t.Fatalf("a token used on another instance every %v was refused as idle: %d %s", shortIdleUseGap, resp.Status, resp.Body)
	}
	// Once the token is left alone, it dies on both.
	c.Advance(shortIdle)
	a.Do(t, Request{Path: "/api/profile/", Token: tok}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	b.Do(t, Request{Path: "/api/profile/", Token: tok}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
}

// An idle timeout shorter than what the writes behind the requests can
// keep is refused at start-up, with a message that names the setting and
// what to do, rather than letting tokens in use look idle.
func TestIdleTimeoutsTooShortToHonourAreRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		idle, flush time.Duration
		ok          bool
	}{
		{3 * time.Second, 5 * time.Second, false},
		{10*time.Second - time.Millisecond, 5 * time.Second, false},
		{10 * time.Second, 5 * time.Second, true},
		{3 * time.Second, 1500 * time.Millisecond, true},
		{0, 5 * time.Second, true}, // no idle timeout
	}
	url := testdb.URL(t)
	for _, tc := range cases {
		// Each app follows the changes of its own database handle.
		database, err := config.OpenDatabase(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { database.Close() })
		if err := config.Migrate(database.ORM); err != nil {
			t.Fatal(err)
		}
		cfg := config.Default()
		cfg.DatabaseURL, cfg.TokenIdleTimeout = url, tc.idle
		a, err := app.New(t.Context(), cfg, database, slog.New(slog.DiscardHandler), app.WithUsageFlushInterval(tc.flush))
		switch {
		case tc.ok && err != nil:
			t.Errorf("TOKEN_IDLE_TIMEOUT=%v with a flush every %v: %v", tc.idle, tc.flush, err)
		case tc.ok:
			a.Shutdown()
		case err == nil:
			a.Shutdown()
			t.Errorf("TOKEN_IDLE_TIMEOUT=%v with a flush every %v was accepted", tc.idle, tc.flush)
		default:
			for _, want := range []string{"TOKEN_IDLE_TIMEOUT", (2 * tc.flush).String(), "--usage-flush-interval"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("TOKEN_IDLE_TIMEOUT=%v: the error %q does not mention %q", tc.idle, err, want)
				}
			}
		}
	}
}
