package tests

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// Two instances on one database: a token revoked on one, by a logout or
// through OAuth revocation, is refused by the other's forward-auth check
// within the feed's stated bound (milliseconds in practice on PostgreSQL,
// 4 s at worst; at once on SQLite), though the other had it cached.
func TestCheckRefusesARevocationMadeOnAnotherInstance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		kill func(t *testing.T, a *Server, token string)
	}{
		{"logout", func(t *testing.T, a *Server, token string) {
			a.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: token}).Expect(t, http.StatusNoContent)
		}},
		{"oauth revoke", func(t *testing.T, a *Server, token string) {
			a.oauthPost(t, "/oauth/revoke", "", url.Values{"token": {token}}).Expect(t, http.StatusOK)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := NewServer(t)
			b := NewServer(t, WithDatabaseOf(a))
			a.CreateUser(t, "alice", testPassword)
			token := a.Login(t, "alice", testPassword)
			b.expectCached(t, token)
			hits := b.Resolver.Stats().CacheHits
			b.Do(t, Request{Path: "/api/auth/check", Token: token}).Expect(t, http.StatusOK)
			if got := b.Resolver.Stats().CacheHits; got != hits+1 {
				t.Fatalf("cache hits: got %d, want %d: the check did not come from the cache", got, hits+1)
			}

			killed := time.Now()
			tc.kill(t, a, token)
			bound := b.Feed.StalenessBound()
			for {
				sent := time.Now()
				resp := b.Do(t, Request{Path: "/api/auth/check", Token: token})
				if resp.Status == http.StatusUnauthorized {
					if got := resp.Header.Get("X-Auth-Error"); got != "invalid_token" {
						t.Errorf("X-Auth-Error: got %q, want invalid_token", got)
					}
					return
				}
				resp.Expect(t, http.StatusOK)
				if sent.After(killed.Add(bound)) {
					t.Fatalf("the check still lets the token through %v after it was revoked elsewhere; the bound is %v",
						sent.Sub(killed), bound)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
