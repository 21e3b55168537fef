package tests

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/cli"
	"tokenauth/config"
	"tokenauth/middlewares"
	"tokenauth/models"
)

// expectCached makes two requests with the token and checks that the
// second was answered from the token cache, so that what follows tests a
// cached token and not a fresh lookup.
//
// A cache clear can fall between the two requests (on SQLite the feed
// clears everything when the file's data_version moves, which a new
// connection of the pool also does), so the pair is tried up to three
// times; one hit is required.
func (s *Server) expectCached(t *testing.T, token string) {
	t.Helper()
	var before, got uint64
	for range 3 {
		s.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, http.StatusOK)
		before = s.Resolver.Stats().CacheHits
		s.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, http.StatusOK)
		if got = s.Resolver.Stats().CacheHits; got == before+1 {
			return
		}
	}
	t.Fatalf("cache hits: got %d, want %d: the token was not served from the cache", got, before+1)
}

// tokenID returns the id of the token with that secret.
func (s *Server) tokenID(t *testing.T, secret string) uint {
	t.Helper()
	tok, err := models.FindTokenByHash(t.Context(), s.DB, s.Pool, models.HashToken(secret))
	if err != nil {
		t.Fatalf("finding the token: %v", err)
	}
	return tok.ID
}

func TestCachedTokenIsRefusedOnTheNextRequest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// act uses the other token of the user, or the victim itself, to
		// kill the victim; it returns a token that must still work (or "").
		act func(t *testing.T, s *Server, other, victim string) string
	}{
		{"logout", func(t *testing.T, s *Server, _, victim string) string {
			s.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: victim}).Expect(t, http.StatusNoContent)
			return ""
		}},
		{"revoked by id", func(t *testing.T, s *Server, other, victim string) string {
			s.Do(t, Request{Method: "DELETE", Path: "/api/tokens/" + itoa(s.tokenID(t, victim)) + "/", Token: other}).
				Expect(t, http.StatusNoContent)
			return other
		}},
		{"rotated", func(t *testing.T, s *Server, other, victim string) string {
			body := s.Do(t, Request{Method: "POST", Path: "/api/tokens/" + itoa(s.tokenID(t, victim)) + "/rotate/", Token: other}).
				Expect(t, http.StatusCreated).JSON(t)
			next, _ := body["token"].(string)
			return next
		}},
		{"logout everywhere", func(t *testing.T, s *Server, other, _ string) string {
			s.Do(t, Request{Method: "POST", Path: "/api/logout-all/", Token: other}).Expect(t, http.StatusNoContent)
			return ""
		}},
		{"logout of the others", func(t *testing.T, s *Server, other, _ string) string {
			s.Do(t, Request{Method: "POST", Path: "/api/logout-others/", Token: other}).Expect(t, http.StatusNoContent)
			return other
		}},
		{"password changed", func(t *testing.T, s *Server, other, _ string) string {
			s.Do(t, Request{Method: "POST", Path: "/api/password/", Token: other,
				Body: map[string]string{"current_password": testPassword, "new_password": "another sturdy passphrase 7"}}).
				Expect(t, http.StatusNoContent)
			return other
		}},
		{"deactivated", func(t *testing.T, s *Server, _, victim string) string {
			// No endpoint deactivates a user; code that does (as the
			// operator command does in its own process) tells the
			// Authenticator.
			var u models.User
			if err := s.DB.Take(&u, "username_key = ?", "alice").Error; err != nil {
				t.Fatal(err)
			}
			if err := models.SetActive(t.Context(), s.DB, &u, false); err != nil {
				t.Fatal(err)
			}
			s.Resolver.Apply(models.Change{UserIDs: []uint{u.ID}})
			return ""
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(t)
			_, other := s.UserWithToken(t, "alice")
			victim := s.Login(t, "alice", testPassword)
			s.expectCached(t, victim)
			s.expectCached(t, other)

			alive := tc.act(t, s, other, victim)

			s.Do(t, Request{Path: "/api/profile/", Token: victim}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
			if alive != "" {
				s.Do(t, Request{Path: "/api/profile/", Token: alive}).Expect(t, http.StatusOK)
			}
		})
	}
}

func TestCachedProfileShowsTheNewEmail(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	s := f.Server
	_, tok := s.UserWithToken(t, "alice")
	other := s.Login(t, "alice", testPassword)
	s.expectCached(t, other)
	s.Do(t, Request{Method: "PATCH", Path: "/api/profile/", Token: tok, Body: map[string]string{"email": "new@example.com"}}).
		Expect(t, http.StatusAccepted)
	_, link := f.mail.WaitForMailTo(t, "new@example.com").Link(t)
	s.Do(t, Request{Method: "POST", Path: "/api/email/verify/confirm/", Body: map[string]string{"token": link}}).
		Expect(t, http.StatusNoContent)
	body := s.Do(t, Request{Path: "/api/profile/", Token: other}).Expect(t, http.StatusOK).JSON(t)
	if body["email"] != "new@example.com" {
		t.Errorf("email through another cached token: got %v, want new@example.com", body["email"])
	}
}

func TestCacheOffStillRefusesRevokedTokens(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *config.Config) { c.TokenCacheTTL = 0 }))
	_, tok := s.UserWithToken(t, "alice")
	s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
	if st := s.Resolver.Stats(); st.CacheHits != 0 || st.CacheMisses != 2 || st.CacheEnabled || st.CacheEntries != 0 {
		t.Errorf("TOKEN_CACHE_TTL=0 still caches: %+v", st)
	}
	s.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: tok}).Expect(t, http.StatusNoContent)
	s.Do(t, Request{Path: "/api/profile/", Token: tok}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
}

// expectRefusedWithin sends requests with the token until one is refused.
// A request sent after bound has passed since since must be refused.
func (s *Server) expectRefusedWithin(t *testing.T, token string, since time.Time, bound time.Duration) {
	t.Helper()
	deadline := since.Add(bound)
	for {
		sent := time.Now()
		resp := s.Do(t, Request{Path: "/api/profile/", Token: token})
		if resp.Status == http.StatusUnauthorized {
			resp.ExpectError(t, http.StatusUnauthorized, "invalid_token")
			return
		}
		resp.Expect(t, http.StatusOK)
		if sent.After(deadline) {
			t.Fatalf("the token still works %v after it was killed elsewhere; the stated bound is %v", sent.Sub(since), bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTwoInstancesShareRevocations(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		kill func(t *testing.T, a *Server, other, victim string)
	}{
		{"logout", func(t *testing.T, a *Server, _, victim string) {
			a.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: victim}).Expect(t, http.StatusNoContent)
		}},
		{"revoked by id", func(t *testing.T, a *Server, other, victim string) {
			a.Do(t, Request{Method: "DELETE", Path: "/api/tokens/" + itoa(a.tokenID(t, victim)) + "/", Token: other}).
				Expect(t, http.StatusNoContent)
		}},
		{"rotated", func(t *testing.T, a *Server, other, victim string) {
			a.Do(t, Request{Method: "POST", Path: "/api/tokens/" + itoa(a.tokenID(t, victim)) + "/rotate/", Token: other}).
				Expect(t, http.StatusCreated)
		}},
		{"password changed", func(t *testing.T, a *Server, other, _ string) {
			a.Do(t, Request{Method: "POST", Path: "/api/password/", Token: other,
				Body: map[string]string{"current_password": testPassword, "new_password": "another sturdy passphrase 7"}}).
				Expect(t, http.StatusNoContent)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := NewServer(t)
			b := NewServer(t, WithDatabaseOf(a))
			_, other := a.UserWithToken(t, "alice")
			victim := a.Login(t, "alice", testPassword)
			b.expectCached(t, victim)

			tc.kill(t, a, other, victim)
			b.expectRefusedWithin(t, victim, time.Now(), b.Feed.StalenessBound())
		})
	}
}

// An operator subcommand runs in its own process, with its own connection
// to the database: once it has exited 0, the next request to a serving
// instance sees its change on SQLite, and within the stated bound on
// PostgreSQL, where the announcement travels to the instance.
func TestOperatorChangesReachTheCache(t *testing.T) {
	t.Parallel()
	for _, command := range []string{"deactivate", "revoke-tokens"} {
		t.Run(command, func(t *testing.T) {
			t.Parallel()
			s := NewServer(t)
			_, tok := s.UserWithToken(t, "alice")
			s.expectCached(t, tok)
			s.operator(t, command, "alice")
			s.expectRefusedWithin(t, tok, time.Now(), s.Feed.StalenessBound())
		})
	}
	// On PostgreSQL the changes travel by LISTEN/NOTIFY: check the
	// announcements themselves and what a dropped listener does.
	if config.IsPostgres(freshDatabaseBase()) {
		t.Run("announcements", checkChangeAnnouncements)
		t.Run("dropped listener", checkDroppedListener)
	}
}

// An operator's changes stay in force on the next request however they
// interleave with the service's own writes, and the service's own writes
// drop nothing they did not change.
func TestOperatorChangesBetweenTheServicesOwnWrites(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, alice := s.UserWithToken(t, "alice")
	_, bob := s.UserWithToken(t, "bob")
	for round := range 3 {
		// On SQLite an operator's change empties the whole cache.
		s.expectCached(t, alice)
		// The service's own writes: a login of bob's, and the last uses
		// written behind the requests. Alice's token stays cached.
		bob = s.Login(t, "bob", testPassword)
		s.expectCached(t, bob)
		if err := s.Resolver.FlushUsage(t.Context()); err != nil {
			t.Fatal(err)
		}
		hits := s.Resolver.Stats().CacheHits
		s.Do(t, Request{Path: "/api/profile/", Token: alice}).Expect(t, http.StatusOK)
		if got := s.Resolver.Stats().CacheHits; got != hits+1 {
			t.Errorf("round %d: cache hits %d, want %d: the service's own writes dropped alice's token", round, got, hits+1)
		}
		s.operator(t, "revoke-tokens", "bob")
		s.expectRefusedWithin(t, bob, time.Now(), s.Feed.StalenessBound())
	}
	s.operator(t, "deactivate", "alice")
	s.expectRefusedWithin(t, alice, time.Now(), s.Feed.StalenessBound())
}

// operator runs a tokenauth subcommand against the service's database as
// an operator would, in its own connection, and fails the test unless it
// exits 0.
func (s *Server) operator(t *testing.T, args ...string) {
	t.Helper()
	lookupEnv := func(key string) (string, bool) {
		if key == "DATABASE_URL" {
			return s.Config.DatabaseURL, true
		}
		return "", false
	}
	var out bytes.Buffer
	if code := cli.Main(t.Context(), args, lookupEnv, strings.NewReader(""), &out, &out); code != 0 {
		t.Fatalf("tokenauth %s: exit %d\n%s", strings.Join(args, " "), code, out.String())
	}
}

func itoa(id uint) string { return strconv.FormatUint(uint64(id), 10) }

// A handler may change the user and token on its context: the change stays
// in its request and never reaches the cached entry other requests share.
func TestHandlerChangesStayOutOfTheCache(t *testing.T) {
	t.Parallel()
	var s *Server
	s = NewServer(t, WithRoutes(func(r *gin.Engine) {
		identify := func(c *gin.Context) { middlewares.Identify(s.Resolver, s.Clock)(c) }
		r.GET("/test/meddle", identify, middlewares.RequireAuth(), func(c *gin.Context) {
			u, err := middlewares.CurrentUser(c)
			if err != nil {
				t.Error(err)
				return
			}
			u.Username, u.IsActive = "mallory", false
			tok, err := middlewares.CurrentToken(c)
			if err != nil {
				t.Error(err)
				return
			}
			tok.Scopes = models.Scopes{"articles:read"}
			c.Status(http.StatusNoContent)
		})
	}))
	_, tok := s.UserWithToken(t, "alice")
	s.expectCached(t, tok)
	s.Do(t, Request{Path: "/test/meddle", Token: tok, OffSpec: true}).Expect(t, http.StatusNoContent)
	before := s.Resolver.Stats().CacheHits
	body := s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK).JSON(t)
	if body["username"] != "alice" || body["is_active"] != true {
		t.Errorf("profile after a handler changed its copy: %v, want alice, active", body)
	}
	if got := s.Resolver.Stats().CacheHits; got != before+1 {
		t.Errorf("cache hits: got %d, want %d: the profile did not come from the cache", got, before+1)
	}
}
