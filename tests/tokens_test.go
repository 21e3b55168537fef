package tests

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tokenauth/models"
)

// tokenJSON is a token as the API renders it.
type tokenJSON struct {
	ID         uint       `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	Current    bool       `json:"current"`
	Legacy     *bool      `json:"legacy"`
	Token      string     `json:"token"`
}

func listTokens(t *testing.T, s *Server, token string) []tokenJSON {
	t.Helper()
	var body struct {
		Tokens []tokenJSON `json:"tokens"`
	}
	s.Do(t, Request{Path: "/api/tokens/", Token: token}).Expect(t, http.StatusOK).Decode(t, &body)
	return body.Tokens
}

func createToken(t *testing.T, s *Server, token string, body any) tokenJSON {
	t.Helper()
	var created tokenJSON
	resp := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: token, Body: body}).Expect(t, http.StatusCreated)
	resp.Decode(t, &created)
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
		t.Errorf("a response with a secret must not be stored: %v", resp.Header)
	}
	if !models.WellFormedToken(created.Token) {
		t.Fatalf("created token has no valid secret: %+v", created)
	}
	return created
}

func TestListTokensShowsNoSecret(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, first := s.UserWithToken(t, "alice")
	second := s.Do(t, Request{Method: "POST", Path: "/api/login/",
		Body: map[string]string{"username": "alice", "password": testPassword, "token_name": "Mobile App"}}).
		Expect(t, http.StatusOK).JSON(t)["token"].(string)
	s.UserWithToken(t, "bob") // another user's token never shows

	resp := s.Do(t, Request{Path: "/api/tokens", Token: second}).Expect(t, http.StatusOK)
	for _, secret := range []string{first, second, models.HashToken(first), models.HashToken(second)} {
		if strings.Contains(string(resp.Body), secret) {
			t.Fatalf("token list contains a secret or a hash: %s", resp.Body)
		}
	}
	tokens := listTokens(t, s, second)
	if len(tokens) != 2 {
		t.Fatalf("tokens: got %d, want 2: %+v", len(tokens), tokens)
	}
	// Newest first, the current one marked.
	if tokens[0].Name != "Mobile App" || !tokens[0].Current || tokens[0].Prefix != second[:12] {
		t.Errorf("first token: got %+v", tokens[0])
	}
	if tokens[1].Name != "login" || tokens[1].Current || tokens[1].Prefix != first[:12] {
		t.Errorf("second token: got %+v", tokens[1])
	}
	for _, tok := range tokens {
		if len(tok.Scopes) != 1 || tok.Scopes[0] != "*" || tok.ExpiresAt == nil || tok.Token != "" {
			t.Errorf("login token fields: %+v", tok)
		}
	}
}

func TestCreateToken(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, login := s.UserWithToken(t, "alice")

	created := createToken(t, s, login, map[string]any{"name": "CI", "scopes": []string{"profile:read", "profile:read", "articles:read"}, "expires_in_days": 7})
	if created.Name != "CI" || strings.Join(created.Scopes, " ") != "articles:read profile:read" || created.Current {
		t.Errorf("created: %+v", created)
	}
	if d := time.Until(*created.ExpiresAt) - 7*24*time.Hour; d < -time.Minute || d > time.Minute {
		t.Errorf("expires_at: got %v, want 7 days from now", created.ExpiresAt)
	}
	// It works, within its scopes only.
	s.Do(t, Request{Path: "/api/profile/", Token: created.Token}).Expect(t, http.StatusOK)
	resp := s.Do(t, Request{Method: "PATCH", Path: "/api/profile/", Token: created.Token, Body: map[string]string{"email": "x@example.com"}})
	resp.ExpectError(t, http.StatusForbidden, "insufficient_scope")
	if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope", scope="profile:write"`) {
		t.Errorf("WWW-Authenticate: got %q", got)
	}

	// Without expires_in_days, TOKEN_TTL applies; without scopes, full access.
	plain := createToken(t, s, login, map[string]any{"name": "plain"})
	if d := time.Until(*plain.ExpiresAt) - s.Config.TokenTTL; d < -time.Minute || d > time.Minute {
		t.Errorf("default expiry: got %v", plain.ExpiresAt)
	}
	if len(plain.Scopes) != 1 || plain.Scopes[0] != "*" {
		t.Errorf("default scopes: got %v", plain.Scopes)
	}
	// The secret is shown once: the list has no secret.
	for _, tok := range listTokens(t, s, login) {
		if tok.Token != "" {
			t.Errorf("listed token carries its secret: %+v", tok)
		}
	}
}

func TestCreateTokenValidation(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, login := s.UserWithToken(t, "alice")
	maxDays := int(s.Config.TokenMaxTTL / (24 * time.Hour))
	cases := []struct {
		name  string
		body  any
		field string
	}{
		{"no name", map[string]any{}, "name"},
		{"empty name", map[string]any{"name": ""}, "name"},
		{"name too long", map[string]any{"name": strings.Repeat("n", 101)}, "name"},
		{"control characters in name", map[string]any{"name": "a\u0000b"}, "name"},
		{"unknown scope", map[string]any{"name": "x", "scopes": []string{"admin"}}, "scopes"},
		{"empty scope list", map[string]any{"name": "x", "scopes": []string{}}, "scopes"},
		{"scopes not a list", map[string]any{"name": "x", "scopes": "profile:read"}, "scopes"},
		{"zero days", map[string]any{"name": "x", "expires_in_days": 0}, "expires_in_days"},
		{"negative days", map[string]any{"name": "x", "expires_in_days": -1}, "expires_in_days"},
		{"beyond TOKEN_MAX_TTL", map[string]any{"name": "x", "expires_in_days": maxDays + 1}, "expires_in_days"},
		{"days as a string", map[string]any{"name": "x", "expires_in_days": "7"}, "expires_in_days"},
		{"days as a fraction", map[string]any{"name": "x", "expires_in_days": 1.5}, "expires_in_days"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: login, Body: tc.body}).
				ExpectError(t, http.StatusBadRequest, "validation_failed")
			Field(t, body, tc.field)
		})
	}
	if n := len(listTokens(t, s, login)); n != 1 {
		t.Errorf("refused creations left tokens behind: %d live", n)
	}
}

func TestNarrowTokenCannotManageTokens(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, login := s.UserWithToken(t, "alice")
	narrow := createToken(t, s, login, map[string]any{"name": "narrow", "scopes": []string{"profile:read", "profile:write", "articles:read", "articles:write"}})
	other := createToken(t, s, login, map[string]any{"name": "other"})

	cases := []struct{ method, path string }{
		{"GET", "/api/tokens/"},
		{"POST", "/api/tokens/"},
		{"PATCH", fmt.Sprintf("/api/tokens/%d/", other.ID)},
		{"POST", fmt.Sprintf("/api/tokens/%d/rotate/", other.ID)},
		{"DELETE", fmt.Sprintf("/api/tokens/%d/", other.ID)},
		{"POST", "/api/password/"},
		{"POST", "/api/logout-all/"},
		{"POST", "/api/logout-others/"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp := s.Do(t, Request{Method: tc.method, Path: tc.path, Token: narrow.Token,
				Body: map[string]any{"name": "wider", "current_password": testPassword, "new_password": "another long passphrase"}})
			resp.ExpectError(t, http.StatusForbidden, "insufficient_scope")
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `scope="*"`) {
				t.Errorf("WWW-Authenticate: got %q", got)
			}
		})
	}
	// Nothing changed: the other token still works, no token was added.
	s.Do(t, Request{Path: "/api/profile/", Token: other.Token}).Expect(t, http.StatusOK)
	if n := len(listTokens(t, s, login)); n != 3 {
		t.Errorf("live tokens: got %d, want 3", n)
	}
	// A narrow token may still describe and revoke itself.
	var current tokenJSON
	s.Do(t, Request{Path: "/api/tokens/current/", Token: narrow.Token}).Expect(t, http.StatusOK).Decode(t, &current)
	if current.ID != narrow.ID || !current.Current || current.Token != "" {
		t.Errorf("current: got %+v", current)
	}
	s.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: narrow.Token}).Expect(t, http.StatusNoContent)
	s.Do(t, Request{Path: "/api/profile/", Token: narrow.Token}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
}

func TestRenameToken(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, login := s.UserWithToken(t, "alice")
	created := createToken(t, s, login, map[string]any{"name": "old"})
	path := fmt.Sprintf("/api/tokens/%d/", created.ID)

	var renamed tokenJSON
	s.Do(t, Request{Method: "PATCH", Path: path, Token: login, Body: map[string]string{"name": "Laptop ✓"}}).
		Expect(t, http.StatusOK).Decode(t, &renamed)
	if renamed.Name != "Laptop ✓" || renamed.ID != created.ID || renamed.Token != "" {
		t.Errorf("renamed: %+v", renamed)
	}
	body := s.Do(t, Request{Method: "PATCH", Path: path, Token: login, Body: map[string]string{"name": ""}}).
		ExpectError(t, http.StatusBadRequest, "validation_failed")
	Field(t, body, "name")
	s.Do(t, Request{Method: "PATCH", Path: path, Token: login, Body: `{"name": "x"`}).ExpectError(t, http.StatusBadRequest, "invalid_json")
	// The secret is unchanged by a rename.
	s.Do(t, Request{Path: "/api/profile/", Token: created.Token}).Expect(t, http.StatusOK)
}

func TestRotateToken(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, login := s.UserWithToken(t, "alice")
	created := createToken(t, s, login, map[string]any{"name": "deploy", "scopes": []string{"profile:read"}, "expires_in_days": 3})
	s.Do(t, Request{Path: "/api/profile/", Token: created.Token}).Expect(t, http.StatusOK) // cached now

	var rotated tokenJSON
	resp := s.Do(t, Request{Method: "POST", Path: fmt.Sprintf("/api/tokens/%d/rotate/", created.ID), Token: login}).
		Expect(t, http.StatusCreated)
	resp.Decode(t, &rotated)
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("rotation response may be stored: %v", resp.Header)
	}
	if rotated.Token == created.Token || !models.WellFormedToken(rotated.Token) {
		t.Fatalf("rotation gave no new secret: %+v", rotated)
	}
	if rotated.Name != "deploy" || strings.Join(rotated.Scopes, " ") != "profile:read" || !rotated.ExpiresAt.Equal(*created.ExpiresAt) {
		t.Errorf("rotation changed the token's fields: %+v, was %+v", rotated, created)
	}
	// Exactly one of the two secrets works.
	s.Do(t, Request{Path: "/api/profile/", Token: created.Token}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Path: "/api/profile/", Token: rotated.Token}).Expect(t, http.StatusOK)
	// Rotating the dead one again is 404.
	s.Do(t, Request{Method: "POST", Path: fmt.Sprintf("/api/tokens/%d/rotate/", created.ID), Token: login}).
		ExpectError(t, http.StatusNotFound, "not_found")
	var count int64
	s.DB.Model(&models.APIToken{}).Where("name = ? AND revoked_at IS NULL", "deploy").Count(&count)
	if count != 1 {
		t.Errorf("live tokens named deploy: got %d, want 1", count)
	}
}

func TestRevokeToken(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, login := s.UserWithToken(t, "alice")
	_, bobLogin := s.UserWithToken(t, "bob")
	created := createToken(t, s, login, map[string]any{"name": "temp"})
	bobs := createToken(t, s, bobLogin, map[string]any{"name": "bob's"})
	s.Do(t, Request{Path: "/api/profile/", Token: created.Token}).Expect(t, http.StatusOK) // cached now

	cases := []struct {
		name string
		path string
	}{
		{"another user's token", fmt.Sprintf("/api/tokens/%d/", bobs.ID)},
		{"missing id", "/api/tokens/999999/"},
		{"non-numeric id", "/api/tokens/abc/"},
		{"negative id", "/api/tokens/-1/"},
		{"huge id", "/api/tokens/99999999999999999999/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.Do(t, Request{Method: "DELETE", Path: tc.path, Token: login}).ExpectError(t, http.StatusNotFound, "not_found")
			s.Do(t, Request{Method: "PATCH", Path: tc.path, Token: login, Body: map[string]string{"name": "mine"}}).ExpectError(t, http.StatusNotFound, "not_found")
			s.Do(t, Request{Method: "POST", Path: tc.path + "rotate/", Token: login}).ExpectError(t, http.StatusNotFound, "not_found")
		})
	}
	s.Do(t, Request{Path: "/api/profile/", Token: bobs.Token}).Expect(t, http.StatusOK)

	s.Do(t, Request{Method: "DELETE", Path: fmt.Sprintf("/api/tokens/%d", created.ID), Token: login}).Expect(t, http.StatusNoContent)
	s.Do(t, Request{Path: "/api/profile/", Token: created.Token}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Method: "DELETE", Path: fmt.Sprintf("/api/tokens/%d", created.ID), Token: login}).ExpectError(t, http.StatusNotFound, "not_found")
	if n := len(listTokens(t, s, login)); n != 1 {
		t.Errorf("live tokens after revoking: got %d, want 1", n)
	}
}

func TestLogoutVariants(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.CreateUser(t, "alice", testPassword)
	_, bob := s.UserWithToken(t, "bob")
	login := func() string { return s.Login(t, "alice", testPassword) }
	works := func(token string) bool {
		return s.Do(t, Request{Path: "/api/profile/", Token: token}).Status == http.StatusOK
	}

	a, b, c := login(), login(), login()
	works(a) // cache them all
	works(b)
	works(c)
	s.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: a}).Expect(t, http.StatusNoContent)
	if works(a) || !works(b) || !works(c) {
		t.Fatalf("logout: want only the token used revoked")
	}
	s.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: a}).ExpectError(t, http.StatusUnauthorized, "invalid_token")

	s.Do(t, Request{Method: "POST", Path: "/api/logout-others/", Token: b}).Expect(t, http.StatusNoContent)
	if !works(b) || works(c) {
		t.Fatalf("logout-others: want the current token only")
	}
	if tokens := listTokens(t, s, b); len(tokens) != 1 || !tokens[0].Current {
		t.Fatalf("after logout-others: %+v", tokens)
	}

	d := login()
	s.Do(t, Request{Method: "POST", Path: "/api/logout-all/", Token: d}).Expect(t, http.StatusNoContent)
	if works(b) || works(d) {
		t.Fatalf("logout-all: want every token revoked")
	}
	if !works(bob) {
		t.Fatalf("logout-all reached another user's token")
	}
}

func TestTokenLimit(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *cfgT) { c.MaxTokensPerUser = 3 }))
	s.CreateUser(t, "alice", testPassword)
	first := s.Login(t, "alice", testPassword)
	s.Do(t, Request{Path: "/api/profile/", Token: first}).Expect(t, http.StatusOK) // cached
	second := s.Login(t, "alice", testPassword)
	third := s.Login(t, "alice", testPassword)

	// Creating beyond the limit is refused and changes nothing.
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: third, Body: map[string]string{"name": "one more"}}).
		ExpectError(t, http.StatusConflict, "token_limit_reached")

	// A login beyond it revokes the least recently used token. Write the
	// last-used times so that the order is certain: first, second, third.
	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	exec(t, s, "UPDATE api_tokens SET last_used_at = ? WHERE key_hash = ?", time.Now().UTC().Add(-time.Hour), models.HashToken(first))
	exec(t, s, "UPDATE api_tokens SET last_used_at = ? WHERE key_hash = ?", time.Now().UTC().Add(-time.Minute), models.HashToken(second))
	exec(t, s, "UPDATE api_tokens SET last_used_at = ? WHERE key_hash = ?", time.Now().UTC(), models.HashToken(third))
	fourth := s.Login(t, "alice", testPassword)
	s.Do(t, Request{Path: "/api/profile/", Token: first}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	for _, tok := range []string{second, third, fourth} {
		s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
	}
	var reason string
	s.DB.Model(&models.APIToken{}).Where("key_hash = ?", models.HashToken(first)).Pluck("revoked_reason", &reason)
	if reason != models.RevokedByLimit {
		t.Errorf("revoked_reason: got %q, want %q", reason, models.RevokedByLimit)
	}
}

func TestTokenLimitHoldsUnderConcurrency(t *testing.T) {
	t.Parallel()
	const limit = 5
	s := NewServer(t, WithConfig(func(c *cfgT) { c.MaxTokensPerUser = limit }))
	s.CreateUser(t, "alice", testPassword)
	login := s.Login(t, "alice", testPassword)

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { s.Login(t, "alice", testPassword) })
	}
	var created, refused int
	var mu sync.Mutex
	for range 10 {
		wg.Go(func() {
			resp := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: login, Body: map[string]string{"name": "x"}})
			mu.Lock()
			defer mu.Unlock()
			switch resp.Status {
			case http.StatusCreated:
				created++
			case http.StatusConflict, http.StatusUnauthorized: // refused, or its login token evicted meanwhile
				refused++
			default:
				t.Errorf("create: unexpected %d %s", resp.Status, resp.Body)
			}
		})
	}
	wg.Wait()
	var live int64
	s.DB.Model(&models.APIToken{}).Where("revoked_at IS NULL").Count(&live)
	if live != limit {
		t.Errorf("live tokens after 20 parallel logins: got %d, want %d", live, limit)
	}
	if created+refused != 10 {
		t.Errorf("create answers: %d created + %d refused, want 10 in all", created, refused)
	}
}

func TestPruneDeletesDeadTokens(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	u, login := s.UserWithToken(t, "alice")
	expired := createToken(t, s, login, map[string]any{"name": "expired"})
	revoked := createToken(t, s, login, map[string]any{"name": "revoked"})
	idle := createToken(t, s, login, map[string]any{"name": "idle"})
	exec(t, s, "UPDATE api_tokens SET expires_at = ? WHERE id = ?", time.Now().UTC().Add(-time.Hour), expired.ID)
	s.Do(t, Request{Method: "DELETE", Path: fmt.Sprintf("/api/tokens/%d/", revoked.ID), Token: login}).Expect(t, http.StatusNoContent)
	old := time.Now().UTC().Add(-s.Config.TokenIdleTimeout - time.Hour)
	exec(t, s, "UPDATE api_tokens SET created_at = ?, last_used_at = ? WHERE id = ?", old, old, idle.ID)
	s.Do(t, Request{Path: "/api/profile/", Token: expired.Token}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Path: "/api/profile/", Token: idle.Token}).ExpectError(t, http.StatusUnauthorized, "invalid_token")

	n, err := models.PruneTokens(t.Context(), s.DB, s.Config.TokenIdleTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("pruned: got %d, want 3", n)
	}
	var left []models.APIToken
	s.DB.Where("user_id = ?", u.ID).Find(&left)
	if len(left) != 1 || left[0].KeyHash != models.HashToken(login) {
		t.Errorf("tokens left after prune: %+v", left)
	}
	s.Do(t, Request{Path: "/api/profile/", Token: login}).Expect(t, http.StatusOK)
}

func TestSlidingExpiry(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *cfgT) {
		c.TokenSliding = true
		c.TokenTTL = time.Hour
		c.TokenMaxTTL = 2 * time.Hour
		c.TokenCacheTTL = 0
	}))
	_, login := s.UserWithToken(t, "alice")
	personal := createToken(t, s, login, map[string]any{"name": "ci"})

	// The login token was made 90 minutes ago, expires in 10 and was last
	// used 5 minutes ago: a use moves its expiry to now + TOKEN_TTL, but
	// not past created_at + TOKEN_MAX_TTL, which is 30 minutes away. (The
	// pending use of the request above is written first, or this instance
	// would rightly trust it over the rewritten row.)
	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	exec(t, s, "UPDATE api_tokens SET created_at = ?, expires_at = ?, last_used_at = ? WHERE key_hash = ?",
		now.Add(-90*time.Minute), now.Add(10*time.Minute), now.Add(-5*time.Minute), models.HashToken(login))
	resp := s.Do(t, Request{Path: "/api/profile/", Token: login}).Expect(t, http.StatusOK)
	slid, err := time.Parse(time.RFC3339, resp.Header.Get("Token-Expires-At"))
	if err != nil {
		t.Fatal(err)
	}
	if d := slid.Sub(now.Add(30 * time.Minute)); d < -5*time.Second || d > 5*time.Second {
		t.Errorf("slid expiry: got %v, want created_at + TOKEN_MAX_TTL (%v)", slid, now.Add(30*time.Minute))
	}
	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	var stored models.APIToken
	s.DB.Where("key_hash = ?", models.HashToken(login)).Take(&stored)
	if stored.ExpiresAt == nil || stored.ExpiresAt.Sub(slid).Abs() > time.Second {
		t.Errorf("stored expiry after the flush: got %v, want %v", stored.ExpiresAt, slid)
	}

	// A created token keeps the expiry it was given.
	exec(t, s, "UPDATE api_tokens SET last_used_at = ? WHERE id = ?", now.Add(-5*time.Minute), personal.ID)
	resp = s.Do(t, Request{Path: "/api/profile/", Token: personal.Token}).Expect(t, http.StatusOK)
	if got := resp.Header.Get("Token-Expires-At"); got != personal.ExpiresAt.UTC().Format(time.RFC3339) {
		t.Errorf("created token's expiry moved: got %s, want %s", got, personal.ExpiresAt.UTC().Format(time.RFC3339))
	}
}
