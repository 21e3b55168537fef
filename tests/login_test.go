package tests

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tokenauth/models"
)

func TestLoginSucceeds(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	u := s.CreateUser(t, "alice", testPassword)

	resp := s.Do(t, Request{Method: "POST", Path: "/api/login/",
		Body: map[string]string{"username": "alice", "password": testPassword}}).Expect(t, http.StatusOK)
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}
	if got := resp.Header.Get("Pragma"); got != "no-cache" {
		t.Errorf("Pragma: got %q, want no-cache", got)
	}
	var body struct {
		Token     string    `json:"token"`
		TokenType string    `json:"token_type"`
		ExpiresAt time.Time `json:"expires_at"`
		User      struct {
			ID       uint   `json:"id"`
			Username string `json:"username"`
			Email    string `json:"email"`
		} `json:"user"`
	}
	resp.Decode(t, &body)
	if !models.WellFormedToken(body.Token) {
		t.Errorf("token %q is not in the tka_ format", body.Token)
	}
	if body.TokenType != "Bearer" {
		t.Errorf("token_type: got %q, want Bearer", body.TokenType)
	}
	wantExpiry := time.Now().Add(s.Config.TokenTTL)
	if d := body.ExpiresAt.Sub(wantExpiry); d < -time.Minute || d > time.Minute {
		t.Errorf("expires_at: got %v, want about %v", body.ExpiresAt, wantExpiry)
	}
	if body.User.ID != u.ID || body.User.Username != "alice" || body.User.Email != "alice@example.com" {
		t.Errorf("user: got %+v", body.User)
	}

	var stored models.User
	if err := s.DB.First(&stored, u.ID).Error; err != nil {
		t.Fatal(err)
	}
	if stored.LastLoginAt == nil || time.Since(*stored.LastLoginAt) > time.Minute {
		t.Errorf("last_login_at not recorded: %v", stored.LastLoginAt)
	}
	// The secret itself is nowhere in the database, only its hash.
	var tok models.APIToken
	if err := s.DB.Where("user_id = ?", u.ID).First(&tok).Error; err != nil {
		t.Fatal(err)
	}
	if tok.KeyHash != models.HashToken(body.Token) || tok.Prefix != body.Token[:12] {
		t.Errorf("stored hash/prefix do not match the secret: %+v", tok)
	}
	if strings.Contains(tok.KeyHash, body.Token) || !tok.Scopes.Allows("anything") {
		t.Errorf("login token must store a hash and carry scope *: %+v", tok)
	}
}

func TestLoginUsernameIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.CreateUser(t, "Alice", testPassword)
	for _, name := range []string{"alice", "ALICE", "Alice"} {
		s.Do(t, Request{Method: "POST", Path: "/api/login", Body: map[string]string{"username": name, "password": testPassword}}).
			Expect(t, http.StatusOK)
	}
}

func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.CreateUser(t, "alice", testPassword)
	off := s.CreateUser(t, "bob", testPassword)
	if err := models.SetActive(t.Context(), s.DB, off, false); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name       string
		body       any
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{"not JSON", "username=alice", 400, "invalid_json", ""},
		{"empty body", "", 400, "invalid_json", ""},
		{"JSON array", `[{"username":"alice"}]`, 400, "invalid_json", ""},
		{"JSON null", `null`, 400, "invalid_json", ""},
		{"truncated", `{"username":"alice"`, 400, "invalid_json", ""},
		{"bytes after the object", `{"username":"alice","password":"x"} {}`, 400, "invalid_json", ""},
		{"missing username", map[string]any{"password": "x"}, 400, "validation_failed", "username"},
		{"missing password", map[string]any{"username": "alice"}, 400, "validation_failed", "password"},
		{"empty password", map[string]any{"username": "alice", "password": ""}, 400, "validation_failed", "password"},
		{"number as password", `{"username":"alice","password":12345}`, 400, "validation_failed", "password"},
		{"object as username", `{"username":{"$ne":null},"password":"x"}`, 400, "validation_failed", "username"},
		{"unknown field", map[string]any{"username": "alice", "password": "x", "admin": true}, 400, "validation_failed", "admin"},
		{"overlong username", map[string]any{"username": strings.Repeat("a", 151), "password": "x"}, 400, "validation_failed", "username"},
		{"overlong password", map[string]any{"username": "alice", "password": strings.Repeat("p", 257)}, 400, "validation_failed", "password"},
		{"overlong token name", map[string]any{"username": "alice", "password": testPassword, "token_name": strings.Repeat("n", 101)}, 400, "validation_failed", "token_name"},
		{"wrong password", map[string]any{"username": "alice", "password": "wrong password"}, 401, "invalid_credentials", ""},
		{"unknown user", map[string]any{"username": "nobody", "password": testPassword}, 401, "invalid_credentials", ""},
		{"SQL in the username", map[string]any{"username": "alice' OR '1'='1", "password": testPassword}, 401, "invalid_credentials", ""},
		{"unicode username", map[string]any{"username": "älïcé💥", "password": testPassword}, 401, "invalid_credentials", ""},
		{"disabled account, right password", map[string]any{"username": "bob", "password": testPassword}, 401, "account_disabled", ""},
		{"disabled account, wrong password", map[string]any{"username": "bob", "password": "nope"}, 401, "invalid_credentials", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: tc.body}).ExpectError(t, tc.wantStatus, tc.wantCode)
			if tc.wantField != "" {
				Field(t, body, tc.wantField)
			}
		})
	}

	// Unknown user and wrong password read the same, so neither tells
	// whether the username exists.
	a := s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": "wrong"}})
	b := s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "nobody", "password": "wrong"}})
	if string(a.Body) != string(b.Body) {
		t.Errorf("wrong password and unknown user differ:\n%s\n%s", a.Body, b.Body)
	}
	var count int64
	s.DB.Model(&models.APIToken{}).Count(&count)
	if count != 0 {
		t.Errorf("refused logins issued %d tokens", count)
	}
}

func TestLoginOtherMethodsAre405(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	for _, method := range []string{"GET", "PUT", "DELETE", "PATCH"} {
		resp := s.Do(t, Request{Method: method, Path: "/api/login/", OffSpec: true})
		resp.ExpectError(t, http.StatusMethodNotAllowed, "method_not_allowed")
		if got := resp.Header.Get("Allow"); got != "POST" {
			t.Errorf("%s: Allow: got %q, want POST", method, got)
		}
	}
}

func TestLoginUpgradesStaleHash(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	// A hash made with other parameters than the server's is replaced on
	// the next good login, transparently.
	u := s.CreateStaleUser(t, "carol", testPassword)
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=32,t=1,p=1$") {
		t.Fatalf("unexpected starting hash %q", u.PasswordHash)
	}
	s.Login(t, "carol", testPassword)
	var stored models.User
	s.DB.First(&stored, u.ID)
	want := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$", testPasswordParams.Memory, testPasswordParams.Time, testPasswordParams.Threads)
	if !strings.HasPrefix(stored.PasswordHash, want) {
		t.Errorf("hash not upgraded: %q, want prefix %q", stored.PasswordHash, want)
	}
	s.Login(t, "carol", testPassword) // and the new hash verifies
}

func TestConcurrentLoginsAllWork(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.CreateUser(t, "alice", testPassword)
	const n = 20
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tokens[i] = s.Login(t, "alice", testPassword)
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, tok := range tokens {
		if seen[tok] {
			t.Fatalf("two logins got the same token")
		}
		seen[tok] = true
		s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
	}
	var count int64
	s.DB.Model(&models.APIToken{}).Where("revoked_at IS NULL").Count(&count)
	if count != n {
		t.Errorf("live tokens in the database: got %d, want %d", count, n)
	}
}

// A login checks the password, then issues its token. A password change
// that commits in between revokes every token but the changer's, so the
// login must not issue one after it; and a login that replaces a stale
// hash must not put the old password back. The two steps are run here one
// after the other around the change, as the models run them.
func TestLoginRacingAPasswordChangeIssuesNothing(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	// bob's hash is stale, so his login makes a current one.
	s.CreateStaleUser(t, "bob", testPassword)
	s.CreateUser(t, "alice", testPassword)
	const changed = "a password changed meanwhile"
	policy := models.TokenPolicy{MaxPerUser: 10}
	for _, name := range []string{"alice", "bob"} {
		t.Run(name, func(t *testing.T) {
			tok := s.Login(t, name, testPassword)
			u, check, err := models.Authenticate(t.Context(), s.DB, s.Passwords, name, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			s.Do(t, Request{Method: "POST", Path: "/api/password/", Token: tok,
				Body: map[string]string{"current_password": testPassword, "new_password": changed}}).Expect(t, http.StatusNoContent)
			var before int64
			s.DB.Model(&models.APIToken{}).Where("user_id = ?", u.ID).Count(&before)
			_, err = models.IssueToken(t.Context(), s.DB, u.ID, models.TokenSpec{Name: "login", Kind: models.KindLogin,
				Scopes: models.Scopes{models.ScopeAll}, Login: check}, policy, true)
			if !errors.Is(err, models.ErrInvalidCredentials) {
				t.Errorf("issuing after the change: got %v, want ErrInvalidCredentials", err)
			}
			var after int64
			s.DB.Model(&models.APIToken{}).Where("user_id = ?", u.ID).Count(&after)
			if after != before {
				t.Errorf("tokens: %d before, %d after a refused issue", before, after)
			}
			s.Login(t, name, changed)
			s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": name, "password": testPassword}}).
				ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
		})
	}
}
