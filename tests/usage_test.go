package tests

import (
	"context"
	"net/http"
	"testing"
	"time"

	"tokenauth/config"
	"tokenauth/models"
)

// storedToken reads the token's row as the database has it.
func (s *Server) storedToken(t *testing.T, secret string) *models.APIToken {
	t.Helper()
	var tok models.APIToken
	if err := s.DB.WithContext(t.Context()).Where("key_hash = ?", models.HashToken(secret)).Take(&tok).Error; err != nil {
		t.Fatalf("reading the token: %v", err)
	}
	return &tok
}

func TestLastUsedReachesTheDatabaseAfterAFlush(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, tok := s.UserWithToken(t, "alice")
	before := time.Now().UTC().Add(-time.Second)
	s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)

	if got := s.storedToken(t, tok).LastUsedAt; got != nil {
		t.Fatalf("last_used_at written before any flush: %v", got)
	}
	// The instance that saw the use shows it before it is written.
	var listed struct {
		Tokens []struct {
			LastUsedAt *time.Time `json:"last_used_at"`
		} `json:"tokens"`
	}
	s.Do(t, Request{Path: "/api/tokens/", Token: tok}).Expect(t, http.StatusOK).Decode(t, &listed)
	if len(listed.Tokens) != 1 || listed.Tokens[0].LastUsedAt == nil {
		t.Fatalf("pending use not shown: %+v", listed)
	}

	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	got := s.storedToken(t, tok).LastUsedAt
	if got == nil || got.Before(before) || got.After(time.Now().Add(time.Second)) {
		t.Fatalf("last_used_at after the flush: got %v, want about %v", got, before)
	}
	if n := s.Resolver.Stats().PendingUses; n != 0 {
		t.Errorf("pending uses after the flush: got %d, want 0", n)
	}
}

func TestLastUsedIsWrittenOnShutdown(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, tok := s.UserWithToken(t, "alice")
	// An interval far longer than the test: only the final flush of a
	// stopping recorder can write the use.
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Resolver.RunUsageFlusher(ctx, time.Hour, func(err error) { t.Errorf("flush: %v", err) })
	}()
	s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
	stop()
	<-done
	if got := s.storedToken(t, tok).LastUsedAt; got == nil {
		t.Fatal("last_used_at not written on shutdown")
	}
}

// A token in use is written at most once per minute, also after a flush
// has emptied the pending uses while its lookup stays cached.
func TestUsesAreCoalescedAcrossFlushes(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, tok := s.UserWithToken(t, "alice")
	for round := range 3 {
		for range 5 {
			s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
		}
		want := 0
		if round == 0 {
			want = 1
		}
		if got := s.Resolver.Stats().PendingUses; got != want {
			t.Fatalf("round %d: pending uses: got %d, want %d", round, got, want)
		}
		if err := s.Resolver.FlushUsage(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSlidingExpiryReachesTheDatabase(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *config.Config) {
		c.TokenSliding = true
		c.TokenTTL = time.Hour
		c.TokenMaxTTL = 2 * time.Hour
	}))
	_, tok := s.UserWithToken(t, "alice")
	issued := *s.storedToken(t, tok).ExpiresAt
	resp := s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
	header, err := time.Parse(time.RFC3339, resp.Header.Get("Token-Expires-At"))
	if err != nil || header.Before(issued.Truncate(time.Second)) {
		t.Fatalf("Token-Expires-At: got %q, want no earlier than %v", resp.Header.Get("Token-Expires-At"), issued)
	}
	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	stored := s.storedToken(t, tok)
	if stored.ExpiresAt == nil || !stored.ExpiresAt.After(issued) {
		t.Fatalf("expires_at after the flush: got %v, want later than %v", stored.ExpiresAt, issued)
	}
}
