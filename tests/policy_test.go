package tests

import (
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tokenauth/app"
	"tokenauth/clock"
	"tokenauth/config"
	"tokenauth/models"
)

// tokenView is a token as GET /api/tokens/ and /api/tokens/current/ show it.
type tokenView struct {
	ID            uint       `json:"id"`
	Name          string     `json:"name"`
	LastUsedAt    *time.Time `json:"last_used_at"`
	LastIP        *string    `json:"last_ip"`
	LastUserAgent *string    `json:"last_user_agent"`
	Networks      []struct {
		Network    string    `json:"network"`
		LastUsedAt time.Time `json:"last_used_at"`
	} `json:"networks"`
	ExpiresAt               *time.Time     `json:"expires_at"`
	PreviousSecretExpiresAt *time.Time     `json:"previous_secret_expires_at"`
	Enabled                 bool           `json:"enabled"`
	AllowedIPs              []string       `json:"allowed_ips"`
	Metadata                map[string]any `json:"metadata"`
	RateLimit               *struct {
		Requests int    `json:"requests"`
		Per      string `json:"per"`
	} `json:"rate_limit"`
	Token string `json:"token"`
}

// behindProxy makes 127.0.0.1 (the tests' client) a trusted proxy, so that
// X-Forwarded-For names the client.
func behindProxy() Option {
	return WithConfig(func(c *config.Config) { c.TrustedProxies = []string{"127.0.0.1", "::1"} })
}

// from is a request with the token, from the client ip as a trusted proxy
// forwards it.
func from(path, token, ip string) Request {
	return Request{Path: path, Token: token, Header: map[string]string{"X-Forwarded-For": ip, "User-Agent": "agent " + ip}}
}

// view returns the token with the id as GET /api/tokens/ shows it to the
// full-access token admin (whose own uses come from elsewhere).
func (s *Server) view(t *testing.T, admin string, id uint) tokenView {
	t.Helper()
	var list struct{ Tokens []tokenView }
	s.Do(t, Request{Path: "/api/tokens/", Token: admin}).Expect(t, http.StatusOK).Decode(t, &list)
	for _, v := range list.Tokens {
		if v.ID == id {
			return v
		}
	}
	t.Fatalf("token %d is not listed", id)
	return tokenView{}
}

// eventsOf returns the types of the user's security events of the given
// type (all when typ is empty), newest first.
func (s *Server) eventsOf(t *testing.T, userID uint, typ string) []models.SecurityEvent {
	t.Helper()
	var events []models.SecurityEvent
	q := s.DB.Where("user_id = ?", userID)
	if typ != "" {
		q = q.Where("type = ?", typ)
	}
	if err := q.Order("id DESC").Find(&events).Error; err != nil {
		t.Fatal(err)
	}
	return events
}

func (s *Server) flush(t *testing.T) {
	t.Helper()
	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func withFakeClock(c *clock.Fake) Option { return WithApp(app.WithClock(c)) }

func TestActivityShowsNetworksNewestFirst(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, behindProxy(), withFakeClock(clk))
	alice, admin := s.UserWithToken(t, "alice")
	tok := s.Login(t, "alice", testPassword)
	id := s.tokenID(t, tok)

	s.Do(t, from("/api/profile/", tok, "203.0.113.7")).Expect(t, http.StatusOK)
	clk.Advance(2 * time.Second)
	// Another address of the first network is no new network.
	s.Do(t, from("/api/profile/", tok, "203.0.113.7")).Expect(t, http.StatusOK)
	clk.Advance(2 * time.Second)
	s.Do(t, from("/api/profile/", tok, "2001:db8:1:2::5")).Expect(t, http.StatusOK)
	clk.Advance(2 * time.Second)
	s.Do(t, from("/api/profile/", tok, "2001:db8:1:2::9")).Expect(t, http.StatusOK)
	s.flush(t)

	stored := s.storedToken(t, tok)
	if len(stored.Networks) != 2 {
		t.Fatalf("stored networks: got %+v, want 2", stored.Networks)
	}
	v := s.view(t, admin, id)
	got := []string{}
	for _, n := range v.Networks {
		got = append(got, n.Network)
	}
	if want := []string{"2001:db8:1:2::/64", "203.0.113.7"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("networks: got %v, want %v (newest first)", got, want)
	}
	if v.LastIP == nil || *v.LastIP != "2001:db8:1:2::5" || v.LastUserAgent == nil || *v.LastUserAgent != "agent 2001:db8:1:2::5" {
		t.Errorf("last client: got %v %v, want the first use from the second network", deref(v.LastIP), deref(v.LastUserAgent))
	}
	events := s.eventsOf(t, alice.ID, models.EventTokenNewNetwork)
	if len(events) != 1 || events[0].IP != "2001:db8:1:2::5" {
		t.Fatalf("new-network events: got %+v, want exactly one, from 2001:db8:1:2::5", events)
	}

	// The events page shows it to the owner.
	var page struct {
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	s.Do(t, Request{Path: "/api/security-events/", Token: admin}).Expect(t, http.StatusOK).Decode(t, &page)
	if len(page.Events) == 0 || page.Events[0].Type != models.EventTokenNewNetwork {
		t.Errorf("newest event: got %+v, want %s first", page.Events, models.EventTokenNewNetwork)
	}

	// A second flush of the same networks records nothing new.
	clk.Advance(2 * time.Minute)
	s.Do(t, from("/api/profile/", tok, "203.0.113.7")).Expect(t, http.StatusOK)
	s.flush(t)
	if n := len(s.eventsOf(t, alice.ID, models.EventTokenNewNetwork)); n != 1 {
		t.Errorf("new-network events after a known network's use: got %d, want 1", n)
	}
	if v := s.view(t, admin, id); len(v.Networks) != 2 || v.Networks[0].Network != "203.0.113.7" {
		t.Errorf("networks after a use of the older one: got %+v, want it first", v.Networks)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestSixthNetworkEvictsTheOldest(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, behindProxy(), withFakeClock(clk))
	alice, admin := s.UserWithToken(t, "alice")
	tok := s.Login(t, "alice", testPassword)
	for i := 1; i <= 6; i++ {
		s.Do(t, from("/api/profile/", tok, fmt.Sprintf("198.51.100.%d", i))).Expect(t, http.StatusOK)
		clk.Advance(time.Second)
		if i == 3 {
			s.flush(t) // across flushes as within one
		}
	}
	s.flush(t)
	v := s.view(t, admin, s.tokenID(t, tok))
	var got []string
	for _, n := range v.Networks {
		got = append(got, n.Network)
	}
	want := []string{"198.51.100.6", "198.51.100.5", "198.51.100.4", "198.51.100.3", "198.51.100.2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("networks: got %v, want %v", got, want)
	}
	if n := len(s.eventsOf(t, alice.ID, models.EventTokenNewNetwork)); n != 5 {
		t.Errorf("new-network events: got %d, want 5 (every network but the first use's)", n)
	}
}

// Recording activity costs no statement of its own: 10,000 requests from
// two networks run no statement besides the background flush.
func TestActivityAddsNoStatements(t *testing.T) {
	t.Parallel()
	var log statementLog
	// The cache's entry must outlive the loop, however slowly it runs (the
	// race detector): a lookup after it expires is no cost of activity.
	s := NewServer(t, behindProxy(), withStatementLog(t, &log),
		WithConfig(func(c *config.Config) { c.TokenCacheTTL = time.Hour }))
	_, tok := s.UserWithToken(t, "alice")
	s.Do(t, from("/api/profile/", tok, "203.0.113.7")).Expect(t, http.StatusOK)
	s.flush(t)
	log.take()
	for i := range 10000 {
		ip := "203.0.113.7"
		if i%2 == 1 {
			ip = "2001:db8::1"
		}
		s.Do(t, from("/api/profile/", tok, ip)).Expect(t, http.StatusOK)
	}
	if sql := log.take(); len(sql) != 0 {
		t.Fatalf("10,000 requests ran %d statements besides the flush, first %q", len(sql), sql[0])
	}
	s.flush(t)
	if n := len(s.storedToken(t, tok).Networks); n != 2 {
		t.Errorf("stored networks: got %d, want 2", n)
	}
}

func TestRotationWithGrace(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, withFakeClock(clk))
	alice, admin := s.UserWithToken(t, "alice")
	old := s.Login(t, "alice", testPassword)
	id := s.tokenID(t, old)

	var next tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/" + itoa(id) + "/rotate/", Token: admin,
		Body: map[string]int{"grace_seconds": 3600}}).Expect(t, http.StatusCreated).Decode(t, &next)
	if next.PreviousSecretExpiresAt == nil || !next.PreviousSecretExpiresAt.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("previous_secret_expires_at: got %v, want %v", next.PreviousSecretExpiresAt, clk.Now().Add(time.Hour))
	}
	// The old secret is neither listed nor counted.
	var list struct{ Tokens []tokenView }
	s.Do(t, Request{Path: "/api/tokens/", Token: admin}).Expect(t, http.StatusOK).Decode(t, &list)
	for _, tv := range list.Tokens {
		if tv.ID == id {
			t.Errorf("the rotated token is still listed on its own: %+v", tv)
		}
	}
	if len(list.Tokens) != 2 {
		t.Errorf("tokens listed: got %d, want 2 (the admin token and the new one)", len(list.Tokens))
	}

	clk.Advance(time.Hour - time.Second)
	s.Do(t, Request{Path: "/api/profile/", Token: old}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/api/profile/", Token: next.Token}).Expect(t, http.StatusOK)
	clk.Advance(2 * time.Second)
	s.Do(t, Request{Path: "/api/profile/", Token: old}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Path: "/api/profile/", Token: old}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Path: "/api/profile/", Token: next.Token}).Expect(t, http.StatusOK)
	if n := len(s.eventsOf(t, alice.ID, models.EventTokenExpired)); n != 1 {
		t.Errorf("token_expired events: got %d, want 1 for two refused uses", n)
	}
}

func TestRotationGraceEndsAtTheTokensExpiry(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, withFakeClock(clk))
	_, admin := s.UserWithToken(t, "alice")
	var short tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin,
		Body: map[string]any{"name": "short", "expires_in_days": 1}}).Expect(t, http.StatusCreated).Decode(t, &short)
	clk.Advance(23 * time.Hour)
	s.reauth(t, admin)
	var next tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/" + itoa(short.ID) + "/rotate/", Token: admin,
		Body: map[string]int{"grace_seconds": 86400}}).Expect(t, http.StatusCreated).Decode(t, &next)
	if next.PreviousSecretExpiresAt == nil || !next.PreviousSecretExpiresAt.Equal(*short.ExpiresAt) {
		t.Fatalf("previous_secret_expires_at: got %v, want the token's expiry %v", next.PreviousSecretExpiresAt, short.ExpiresAt)
	}
	clk.Advance(time.Hour - time.Second)
	s.Do(t, Request{Path: "/api/profile/", Token: short.Token}).Expect(t, http.StatusOK)
	clk.Advance(2 * time.Second)
	s.Do(t, Request{Path: "/api/profile/", Token: short.Token}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
}

func TestSecondRotationEndsTheFirstGrace(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, admin := s.UserWithToken(t, "alice")
	first := s.Login(t, "alice", testPassword)
	var second, third tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/" + itoa(s.tokenID(t, first)) + "/rotate/", Token: admin,
		Body: map[string]int{"grace_seconds": 3600}}).Expect(t, http.StatusCreated).Decode(t, &second)
	s.Do(t, Request{Path: "/api/profile/", Token: first}).Expect(t, http.StatusOK)
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/" + itoa(second.ID) + "/rotate/", Token: admin,
		Body: map[string]int{"grace_seconds": 3600}}).Expect(t, http.StatusCreated).Decode(t, &third)
	s.Do(t, Request{Path: "/api/profile/", Token: first}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Path: "/api/profile/", Token: second.Token}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/api/profile/", Token: third.Token}).Expect(t, http.StatusOK)
	// Rotating the previous secret itself is a conflict: it was rotated.
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/current/rotate/", Token: second.Token}).
		ExpectError(t, http.StatusConflict, "conflict")
}

func TestRotationGraceIsCapped(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *config.Config) { c.TokenRotationMaxGrace = time.Hour }))
	_, admin := s.UserWithToken(t, "alice")
	id := itoa(s.tokenID(t, admin))
	for _, body := range []string{`{"grace_seconds": 3601}`, `{"grace_seconds": -1}`, `{"grace_seconds": "1h"}`} {
		resp := s.Do(t, Request{Method: "POST", Path: "/api/tokens/" + id + "/rotate/", Token: admin, Body: body})
		if f := Field(t, resp.ExpectError(t, http.StatusBadRequest, "validation_failed"), "grace_seconds"); f == "" {
			t.Errorf("%s: no message for grace_seconds", body)
		}
	}
	s.Do(t, Request{Path: "/api/profile/", Token: admin}).Expect(t, http.StatusOK)
}

func TestConcurrentRotationsOneWins(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, admin := s.UserWithToken(t, "alice")
	victim := s.Login(t, "alice", testPassword)
	path := "/api/tokens/" + itoa(s.tokenID(t, victim)) + "/rotate/"
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses[i] = s.Do(t, Request{Method: "POST", Path: path, Token: admin, Body: map[string]int{"grace_seconds": 60}}).Status
		})
	}
	wg.Wait()
	won := 0
	for _, st := range statuses {
		switch st {
		case http.StatusCreated:
			won++
		case http.StatusConflict, http.StatusNotFound:
			// 404: a rotation that started after the winner committed no
			// longer finds the token among the live ones.
		default:
			t.Errorf("status %d, want 201, 409 or 404", st)
		}
	}
	if won != 1 {
		t.Errorf("rotations that succeeded: got %d of %v, want 1", won, statuses)
	}
}

func TestRotateCurrentToken(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	u, _ := s.UserWithToken(t, "alice")
	narrow := s.IssueToken(t, u, "articles:read")
	var next tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/current/rotate/", Token: narrow}).
		Expect(t, http.StatusCreated).Decode(t, &next)
	s.Do(t, Request{Path: "/api/articles/", Token: next.Token}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/api/articles/", Token: narrow}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
}

func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	a := NewServer(t)
	b := NewServer(t, WithDatabaseOf(a))
	alice, admin := a.UserWithToken(t, "alice")
	victim := a.Login(t, "alice", testPassword)
	path := "/api/tokens/" + itoa(a.tokenID(t, victim)) + "/"
	b.expectCached(t, victim)
	a.expectCached(t, victim)

	var v tokenView
	paused := time.Now()
	a.Do(t, Request{Method: "PATCH", Path: path, Token: admin, Body: map[string]bool{"enabled": false}}).
		Expect(t, http.StatusOK).Decode(t, &v)
	if v.Enabled {
		t.Fatal("enabled after pausing")
	}
	a.Do(t, Request{Path: "/api/profile/", Token: victim}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	b.expectRefusedWithin(t, victim, paused, b.Feed.StalenessBound())

	// Still listed, still counted.
	var list struct{ Tokens []tokenView }
	a.Do(t, Request{Path: "/api/tokens/", Token: admin}).Expect(t, http.StatusOK).Decode(t, &list)
	if len(list.Tokens) != 2 {
		t.Errorf("tokens listed while one is paused: got %d, want 2", len(list.Tokens))
	}

	a.Do(t, Request{Method: "PATCH", Path: path, Token: admin, Body: map[string]bool{"enabled": true}}).
		Expect(t, http.StatusOK).Decode(t, &v)
	if !v.Enabled {
		t.Fatal("not enabled after resuming")
	}
	a.Do(t, Request{Path: "/api/profile/", Token: victim}).Expect(t, http.StatusOK)
	waitFor(t, "the other instance to see the token resumed", func() bool {
		return b.Do(t, Request{Path: "/api/profile/", Token: victim}).Status == http.StatusOK
	})
	for _, typ := range []string{models.EventTokenPaused, models.EventTokenResumed} {
		if n := len(a.eventsOf(t, alice.ID, typ)); n != 1 {
			t.Errorf("%s events: got %d, want 1", typ, n)
		}
	}
}

func TestAllowedIPs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		proxy   bool
		allowed []string
		xff     string
		want    int
	}{
		{"inside, through the proxy", true, []string{"203.0.113.0/24"}, "203.0.113.9", http.StatusOK},
		{"outside, through the proxy", true, []string{"203.0.113.0/24"}, "198.51.100.1", http.StatusForbidden},
		{"a single address", true, []string{"198.51.100.1"}, "198.51.100.1", http.StatusOK},
		// With no trusted proxy the peer (127.0.0.1) is the client, whatever
		// it writes in X-Forwarded-For.
		{"forged header ignored", false, []string{"10.0.0.0/8"}, "10.1.2.3", http.StatusForbidden},
		{"the real peer", false, []string{"127.0.0.0/8"}, "10.1.2.3", http.StatusOK},
		{"IPv6 range", true, []string{"2001:db8::/32"}, "2001:db8:5::1", http.StatusOK},
		{"outside the IPv6 range", true, []string{"2001:db8::/32"}, "2001:db9::1", http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []Option
			if tc.proxy {
				opts = append(opts, behindProxy())
			}
			s := NewServer(t, opts...)
			alice, admin := s.UserWithToken(t, "alice")
			var tok tokenView
			s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin,
				Body: map[string]any{"name": "ci", "allowed_ips": tc.allowed}}).Expect(t, http.StatusCreated).Decode(t, &tok)
			for range 2 {
				resp := s.Do(t, from("/api/tokens/current/", tok.Token, tc.xff))
				if tc.want == http.StatusForbidden {
					resp.ExpectError(t, http.StatusForbidden, "ip_not_allowed")
				} else {
					resp.Expect(t, tc.want)
				}
			}
			wantEvents := 0
			if tc.want == http.StatusForbidden {
				wantEvents = 1 // once a minute per network, however many tries
			}
			if n := len(s.eventsOf(t, alice.ID, models.EventTokenIPRefused)); n != wantEvents {
				t.Errorf("token_ip_refused events: got %d, want %d", n, wantEvents)
			}
		})
	}
}

func TestPolicyChangesTakeEffect(t *testing.T) {
	t.Parallel()
	s := NewServer(t, behindProxy())
	_, admin := s.UserWithToken(t, "alice")
	var tok tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin,
		Body: map[string]any{"name": "ci", "metadata": map[string]any{"team": "infra", "n": 3}}}).
		Expect(t, http.StatusCreated).Decode(t, &tok)
	if tok.Metadata["team"] != "infra" {
		t.Errorf("metadata: got %v", tok.Metadata)
	}
	path := "/api/tokens/" + itoa(tok.ID) + "/"
	s.Do(t, from("/api/profile/", tok.Token, "198.51.100.1")).Expect(t, http.StatusOK)
	s.Do(t, Request{Method: "PATCH", Path: path, Token: admin,
		Body: map[string]any{"allowed_ips": []string{"203.0.113.0/24"}}}).Expect(t, http.StatusOK)
	s.Do(t, from("/api/profile/", tok.Token, "198.51.100.1")).ExpectError(t, http.StatusForbidden, "ip_not_allowed")
	s.Do(t, Request{Method: "PATCH", Path: path, Token: admin, Body: `{"allowed_ips": null, "metadata": null}`}).
		Expect(t, http.StatusOK).Decode(t, &tok)
	if len(tok.AllowedIPs) != 0 || tok.Metadata != nil {
		t.Errorf("after null: allowed_ips %v, metadata %v; want none", tok.AllowedIPs, tok.Metadata)
	}
	s.Do(t, from("/api/profile/", tok.Token, "198.51.100.1")).Expect(t, http.StatusOK)
}

func TestPolicyValidation(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, admin := s.UserWithToken(t, "alice")
	many := make([]string, 21)
	for i := range many {
		many[i] = fmt.Sprintf("10.0.%d.0/24", i)
	}
	cases := []struct {
		name  string
		body  any
		field string
	}{
		{"21 networks", map[string]any{"name": "x", "allowed_ips": many}, "allowed_ips"},
		{"not a network", map[string]any{"name": "x", "allowed_ips": []string{"10.0.0.0/33"}}, "allowed_ips"},
		{"a host name", map[string]any{"name": "x", "allowed_ips": []string{"example.com"}}, "allowed_ips"},
		{"metadata a list", `{"name": "x", "metadata": [1]}`, "metadata"},
		{"metadata a string", `{"name": "x", "metadata": "a"}`, "metadata"},
		{"metadata too big", map[string]any{"name": "x", "metadata": map[string]string{"a": strings.Repeat("x", 2100)}}, "metadata"},
		{"period too long", map[string]any{"name": "x", "rate_limit": map[string]any{"requests": 5, "per": "48h"}}, "rate_limit.per"},
		{"period not whole seconds", map[string]any{"name": "x", "rate_limit": map[string]any{"requests": 5, "per": "1500ms"}}, "rate_limit.per"},
		{"no requests", map[string]any{"name": "x", "rate_limit": map[string]any{"requests": 0, "per": "1m"}}, "requests"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin, Body: tc.body})
			if Field(t, resp.ExpectError(t, http.StatusBadRequest, "validation_failed"), tc.field) == "" {
				t.Errorf("no message for %s", tc.field)
			}
		})
	}
	id := itoa(s.tokenID(t, admin))
	for _, body := range []string{`{"allowed_ips": "10.0.0.0/8"}`, `{"rate_limit": {"requests": 5}}`, `{"rate_limit": [1]}`,
		`{"enabled": "no"}`, `{"metadata": 3}`} {
		resp := s.Do(t, Request{Method: "PATCH", Path: "/api/tokens/" + id + "/", Token: admin, Body: body})
		resp.ExpectError(t, http.StatusBadRequest, "validation_failed")
	}
}

// rateLimitState parses the RateLimit header's remaining requests of the
// named policy.
func rateLimitState(t *testing.T, header, name string) (remaining, reset int) {
	t.Helper()
	for item := range strings.SplitSeq(header, ",") {
		parts := strings.Split(strings.TrimSpace(item), ";")
		if parts[0] != strconv.Quote(name) {
			continue
		}
		remaining, reset = -1, -1
		for _, p := range parts[1:] {
			k, v, _ := strings.Cut(p, "=")
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("RateLimit %q: %v", header, err)
			}
			switch k {
			case "r":
				remaining = n
			case "t":
				reset = n
			}
		}
		return remaining, reset
	}
	t.Fatalf("RateLimit %q has no policy %q", header, name)
	return 0, 0
}

func TestTokenRateLimit(t *testing.T) {
	t.Parallel()
	for _, b := range limitBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(t, b.opts...)
			_, admin := s.UserWithToken(t, "alice")
			var tok tokenView
			s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin,
				Body: map[string]any{"name": "ci", "rate_limit": map[string]any{"requests": 5, "per": "1m"}}}).
				Expect(t, http.StatusCreated).Decode(t, &tok)
			if tok.RateLimit == nil || tok.RateLimit.Requests != 5 || tok.RateLimit.Per != "1m" {
				t.Fatalf("rate_limit: got %+v", tok.RateLimit)
			}
			for i := range 5 {
				resp := s.Do(t, Request{Path: "/api/tokens/current/", Token: tok.Token}).Expect(t, http.StatusOK)
				if got := resp.Header.Get("RateLimit-Policy"); got != `"token";q=5;w=60` {
					t.Errorf("RateLimit-Policy: got %q", got)
				}
				if r, _ := rateLimitState(t, resp.Header.Get("RateLimit"), "token"); r != 4-i {
					t.Errorf("request %d: remaining %d, want %d", i+1, r, 4-i)
				}
			}
			resp := s.Do(t, Request{Path: "/api/tokens/current/", Token: tok.Token})
			expectRateLimited(t, resp, 12*time.Second)
			if r, reset := rateLimitState(t, resp.Header.Get("RateLimit"), "token"); r != 0 || reset < 1 || reset > 60 {
				t.Errorf("RateLimit on the 429: remaining %d, reset %d", r, reset)
			}
			// The limit is the token's own: the admin token is not limited,
			// and its responses carry no RateLimit headers.
			resp = s.Do(t, Request{Path: "/api/tokens/current/", Token: admin}).Expect(t, http.StatusOK)
			if h := resp.Header.Get("RateLimit-Policy"); h != "" {
				t.Errorf("RateLimit-Policy on an unlimited token: %q", h)
			}
		})
	}
}

func TestSteadyRateUnderTheLimitIsNeverRefused(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, withFakeClock(clk))
	_, admin := s.UserWithToken(t, "alice")
	var tok tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin,
		Body: map[string]any{"name": "ci", "rate_limit": map[string]any{"requests": 60, "per": "minute"}}}).
		Expect(t, http.StatusCreated).Decode(t, &tok)
	for i := range 180 {
		if st := s.Do(t, Request{Path: "/api/tokens/current/", Token: tok.Token}).Status; st != http.StatusOK {
			t.Fatalf("request %d at 1 per second under 60 per minute: %d", i+1, st)
		}
		clk.Advance(time.Second)
	}
}

func TestUserRateLimitAcrossTokens(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *config.Config) { c.UserRateLimit = models.RateLimit{Requests: 4, Period: time.Hour} }))
	u, first := s.UserWithToken(t, "alice")
	second := s.IssueToken(t, u)
	for _, tok := range []string{first, second, first, second} {
		resp := s.Do(t, Request{Path: "/api/tokens/current/", Token: tok}).Expect(t, http.StatusOK)
		if got := resp.Header.Get("RateLimit-Policy"); got != `"user";q=4;w=3600` {
			t.Errorf("RateLimit-Policy: got %q", got)
		}
	}
	expectRateLimited(t, s.Do(t, Request{Path: "/api/tokens/current/", Token: second}), 15*time.Minute)
	// Another user is not affected.
	_, bob := s.UserWithToken(t, "bob")
	s.Do(t, Request{Path: "/api/tokens/current/", Token: bob}).Expect(t, http.StatusOK)
}

func TestLoginLimitKeepsOnlyRetryAfter(t *testing.T) {
	t.Parallel()
	s := NewServer(t, withLimits(1000, 15*time.Minute, 1),
		WithConfig(func(c *config.Config) { c.UserRateLimit = models.RateLimit{Requests: 100, Period: time.Hour} }))
	s.CreateUser(t, "alice", testPassword)
	s.Do(t, login("alice", testPassword)).Expect(t, http.StatusOK)
	resp := s.Do(t, login("alice", testPassword))
	expectRateLimited(t, resp, time.Minute)
	if resp.Header.Get("RateLimit") != "" || resp.Header.Get("RateLimit-Policy") != "" {
		t.Errorf("login 429 carries RateLimit headers: %v", resp.Header)
	}
}

// Two instances sharing Redis let through at most the limit between them;
// without Redis each instance counts on its own.
func TestTokenRateLimitAcrossInstances(t *testing.T) {
	t.Parallel()
	for _, backend := range limitBackends() {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			a := NewServer(t, backend.opts...)
			second := []Option{WithDatabaseOf(a)}
			want := 20
			if backend.name == "redis" {
				second, want = append(second, WithLimitsOf(a)), 10
			}
			b := NewServer(t, second...)
			_, admin := a.UserWithToken(t, "alice")
			var tok tokenView
			a.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin,
				Body: map[string]any{"name": "ci", "rate_limit": map[string]any{"requests": 10, "per": "1h"}}}).
				Expect(t, http.StatusCreated).Decode(t, &tok)
			ok := 0
			for i := range 40 {
				s := a
				if i%2 == 1 {
					s = b
				}
				switch st := s.Do(t, Request{Path: "/api/tokens/current/", Token: tok.Token}).Status; st {
				case http.StatusOK:
					ok++
				case http.StatusTooManyRequests:
				default:
					t.Fatalf("status %d", st)
				}
			}
			if ok != want {
				t.Errorf("requests let through by two instances: got %d, want %d", ok, want)
			}
		})
	}
}

func (s *Server) reauth(t *testing.T, token string) {
	t.Helper()
	s.Do(t, Request{Method: "POST", Path: "/api/reauth/", Token: token,
		Body: map[string]string{"password": testPassword}}).Expect(t, http.StatusNoContent)
}

// Tightening a token needs no fresh proof of the password; loosening it,
// and rotating another token, do. A token rolls its own key without one.
func TestLooseningNeedsFreshAuth(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, withFakeClock(clk), WithConfig(func(c *config.Config) { c.ReauthMaxAge = 15 * time.Minute }))
	_, admin := s.UserWithToken(t, "alice")
	var tok tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin,
		Body: map[string]any{"name": "ci", "allowed_ips": []string{"10.0.0.0/8"}, "rate_limit": map[string]any{"requests": 10, "per": "1m"}}}).
		Expect(t, http.StatusCreated).Decode(t, &tok)
	path := "/api/tokens/" + itoa(tok.ID) + "/"
	clk.Advance(16 * time.Minute)

	tighten := []string{
		`{"enabled": false}`,
		`{"allowed_ips": ["10.1.0.0/16"]}`,
		`{"rate_limit": {"requests": 5, "per": "1m"}}`,
		`{"name": "renamed", "metadata": {"a": 1}}`,
	}
	for _, body := range tighten {
		s.Do(t, Request{Method: "PATCH", Path: path, Token: admin, Body: body}).Expect(t, http.StatusOK)
	}
	loosen := []string{
		`{"enabled": true}`,
		`{"allowed_ips": ["10.0.0.0/8"]}`,
		`{"allowed_ips": null}`,
		`{"rate_limit": {"requests": 50, "per": "1m"}}`,
		`{"rate_limit": {"requests": 5, "per": "1s"}}`,
		`{"rate_limit": null}`,
	}
	for _, body := range loosen {
		resp := s.Do(t, Request{Method: "PATCH", Path: path, Token: admin, Body: body})
		resp.ExpectError(t, http.StatusUnauthorized, "reauthentication_required")
	}
	if v := s.view(t, admin, tok.ID); v.Enabled || len(v.AllowedIPs) != 1 || v.RateLimit == nil || v.RateLimit.Requests != 5 {
		t.Fatalf("a refused loosening changed the token: %+v", v)
	}
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/" + itoa(tok.ID) + "/rotate/", Token: admin}).
		ExpectError(t, http.StatusUnauthorized, "reauthentication_required")
	// Rolling its own key needs none.
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/current/rotate/", Token: admin}).Expect(t, http.StatusCreated)
}

func TestLooseningAfterReauth(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, withFakeClock(clk), WithConfig(func(c *config.Config) { c.ReauthMaxAge = 15 * time.Minute }))
	_, admin := s.UserWithToken(t, "alice")
	var tok tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin,
		Body: map[string]any{"name": "ci", "allowed_ips": []string{"10.0.0.0/8"}}}).Expect(t, http.StatusCreated).Decode(t, &tok)
	clk.Advance(16 * time.Minute)
	s.reauth(t, admin)
	s.Do(t, Request{Method: "PATCH", Path: "/api/tokens/" + itoa(tok.ID) + "/", Token: admin,
		Body: `{"allowed_ips": null}`}).Expect(t, http.StatusOK)
}

func TestPolicyRefusalsAreCounted(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, admin := s.UserWithToken(t, "alice")
	var fenced, limited tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin,
		Body: map[string]any{"name": "fenced", "allowed_ips": []string{"192.0.2.0/24"}}}).Expect(t, http.StatusCreated).Decode(t, &fenced)
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin,
		Body: map[string]any{"name": "limited", "rate_limit": map[string]any{"requests": 1, "per": "1h"}}}).
		Expect(t, http.StatusCreated).Decode(t, &limited)
	s.Do(t, Request{Path: "/api/tokens/current/", Token: fenced.Token}).ExpectError(t, http.StatusForbidden, "ip_not_allowed")
	s.Do(t, Request{Path: "/api/tokens/current/", Token: limited.Token}).Expect(t, http.StatusOK)
	for range 2 {
		s.Do(t, Request{Path: "/api/tokens/current/", Token: limited.Token}).ExpectError(t, http.StatusTooManyRequests, "rate_limited")
	}
	m := s.scrape(t)
	expectSample(t, m, `tokenauth_token_policy_refusals_total{reason="ip_not_allowed"}`, 1)
	expectSample(t, m, `tokenauth_token_policy_refusals_total{reason="rate_limited"}`, 2)
	expectSample(t, m, `tokenauth_token_policy_refusals_total{reason="grace_ended"}`, 0)
}

func TestRevokingTheNewTokenEndsTheGrace(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, admin := s.UserWithToken(t, "alice")
	old := s.Login(t, "alice", testPassword)
	var next tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/" + itoa(s.tokenID(t, old)) + "/rotate/", Token: admin,
		Body: map[string]int{"grace_seconds": 3600}}).Expect(t, http.StatusCreated).Decode(t, &next)
	s.Do(t, Request{Method: "DELETE", Path: "/api/tokens/" + itoa(next.ID) + "/", Token: admin}).Expect(t, http.StatusNoContent)
	s.Do(t, Request{Path: "/api/profile/", Token: next.Token}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Path: "/api/profile/", Token: old}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
}

// A limited token's budget that cannot be read is an outage, never "no
// limit"; a token without a limit does not need Redis at all.
func TestRateLimitWithoutRedis(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithUnreachableRedis())
	u := s.CreateUser(t, "alice", testPassword)
	admin := s.IssueToken(t, u)
	limited := s.IssueToken(t, u)
	if err := s.DB.Model(&models.APIToken{}).Where("key_hash = ?", models.HashToken(limited)).
		UpdateColumns(map[string]any{"rate_limit_requests": 5, "rate_limit_seconds": 60}).Error; err != nil {
		t.Fatal(err)
	}
	s.Do(t, Request{Path: "/api/tokens/current/", Token: admin}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/api/tokens/current/", Token: limited}).ExpectError(t, http.StatusServiceUnavailable, "unavailable")
}

// The list reads only the columns it shows (models.EachLiveToken) and
// writes its own JSON: each token in it is, field for field, what the
// routes that read the whole row answer for it (a PATCH, and
// /api/tokens/current/), with every optional field set: a rotation's
// grace, a pause, allowed networks, metadata, a rate limit, the networks
// used and the last client.
func TestListShowsWhatEachTokenShows(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, withFakeClock(clk))
	_, admin := s.UserWithToken(t, "alice")
	name := `ci <deploy> & "friends"`
	var made tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin, Body: map[string]any{
		"name": name, "scopes": []string{"profile:read"}, "expires_in_days": 7,
		"allowed_ips": []string{"127.0.0.0/8", "2001:db8::/32"}, "metadata": map[string]any{"team": "<web>", "n": 3},
		"rate_limit": map[string]any{"requests": 100, "per": "minute"},
	}}).Expect(t, http.StatusCreated).Decode(t, &made)
	var rotated tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/" + itoa(made.ID) + "/rotate/", Token: admin,
		Body: map[string]int{"grace_seconds": 3600}}).Expect(t, http.StatusCreated).Decode(t, &rotated)
	s.Do(t, Request{Path: "/api/profile/", Token: rotated.Token, Header: map[string]string{"User-Agent": "deploy/1.0"}}).
		Expect(t, http.StatusOK)
	path := "/api/tokens/" + itoa(rotated.ID) + "/"
	s.Do(t, Request{Method: "PATCH", Path: path, Token: admin, Body: map[string]bool{"enabled": false}}).
		Expect(t, http.StatusOK)
	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}

	own := map[float64]map[string]any{}
	for _, body := range []map[string]any{
		s.Do(t, Request{Method: "PATCH", Path: path, Token: admin, Body: map[string]string{"name": name}}).
			Expect(t, http.StatusOK).JSON(t),
		s.Do(t, Request{Path: "/api/tokens/current/", Token: admin}).Expect(t, http.StatusOK).JSON(t),
	} {
		id, _ := body["id"].(float64)
		own[id] = body
	}
	list := s.Do(t, Request{Path: "/api/tokens/", Token: admin}).Expect(t, http.StatusOK).JSON(t)
	items, _ := list["tokens"].([]any)
	if len(items) != 2 {
		t.Fatalf("tokens listed: got %d, want 2 (%v)", len(items), list)
	}
	for _, item := range items {
		listed, _ := item.(map[string]any)
		id, _ := listed["id"].(float64)
		if !reflect.DeepEqual(listed, own[id]) {
			t.Errorf("token %v:\nlisted %v\nown    %v", id, listed, own[id])
		}
	}
	paused := own[float64(rotated.ID)]
	for _, field := range []string{"previous_secret_expires_at", "metadata", "rate_limit", "allowed_ips", "last_ip",
		"last_user_agent", "last_used_at"} {
		if paused[field] == nil {
			t.Errorf("%s: not shown: %v", field, paused)
		}
	}
	if nets, _ := paused["networks"].([]any); len(nets) == 0 || paused["enabled"] != false {
		t.Errorf("networks %v and enabled %v: want a network, and false", paused["networks"], paused["enabled"])
	}
}
