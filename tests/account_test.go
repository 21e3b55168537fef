package tests

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tokenauth/app"
	"tokenauth/config"
	"tokenauth/models"
	"tokenauth/password"
)

func TestProfile(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	u, token := s.UserWithToken(t, "alice")
	var body map[string]any
	body = s.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, http.StatusOK).JSON(t)
	if body["id"] != float64(u.ID) || body["username"] != "alice" || body["email"] != "alice@example.com" || body["is_active"] != true {
		t.Errorf("profile: %v", body)
	}
	for _, secret := range []string{"password", "password_hash", "PasswordHash"} {
		if _, ok := body[secret]; ok {
			t.Errorf("profile exposes %s", secret)
		}
	}
	if strings.Contains(s.Do(t, Request{Path: "/api/profile/", Token: token}).JSON(t)["email"].(string), "$argon2id") {
		t.Error("profile leaks a hash")
	}
}

func TestUpdateProfileEmail(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	_, token := f.UserWithToken(t, "alice")
	f.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, http.StatusOK) // cached
	s := f.Server

	// The address changes only once the link mailed to it is followed.
	body := s.Do(t, Request{Method: "PATCH", Path: "/api/profile/", Token: token, Body: map[string]string{"email": "new@example.com"}}).
		Expect(t, http.StatusAccepted).JSON(t)
	if user, _ := body["user"].(map[string]any); body["pending_email"] != "new@example.com" || user["email"] != "alice@example.com" {
		t.Errorf("patched email: %v", body)
	}
	if got := s.Do(t, Request{Path: "/api/profile/", Token: token}).JSON(t)["email"]; got != "alice@example.com" {
		t.Errorf("profile before the link is followed: email %v", got)
	}
	_, link := f.mail.WaitForMailTo(t, "new@example.com").Link(t)
	s.Do(t, Request{Method: "POST", Path: "/api/email/verify/confirm/", Body: map[string]string{"token": link}}).
		Expect(t, http.StatusNoContent)
	// The cached lookup was dropped: the profile shows the new address.
	profile := s.Do(t, Request{Path: "/api/profile/", Token: token}).JSON(t)
	if profile["email"] != "new@example.com" || profile["email_verified"] != true {
		t.Errorf("profile after the change: %v", profile)
	}
	// The same address again changes nothing: 200.
	s.Do(t, Request{Method: "PATCH", Path: "/api/profile/", Token: token, Body: map[string]string{"email": "NEW@example.com"}}).
		Expect(t, http.StatusOK)

	for name, payload := range map[string]any{
		"not an email":  map[string]string{"email": "not-an-email"},
		"missing":       map[string]string{},
		"too long":      map[string]string{"email": strings.Repeat("a", 250) + "@example.com"},
		"wrong type":    map[string]any{"email": 42},
		"unknown field": map[string]any{"email": "a@example.com", "username": "root"},
	} {
		t.Run(name, func(t *testing.T) {
			s.Do(t, Request{Method: "PATCH", Path: "/api/profile/", Token: token, Body: payload}).
				ExpectError(t, http.StatusBadRequest, "validation_failed")
		})
	}
	if got := s.Do(t, Request{Path: "/api/profile/", Token: token}).JSON(t)["email"]; got != "new@example.com" {
		t.Errorf("refused changes altered the email: %v", got)
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.CreateUser(t, "alice", testPassword)
	current := s.Login(t, "alice", testPassword)
	other := s.Login(t, "alice", testPassword)
	s.Do(t, Request{Path: "/api/profile/", Token: other}).Expect(t, http.StatusOK) // cached
	const newPassword = "an entirely new passphrase"

	cases := []struct {
		name   string
		body   any
		status int
		code   string
		field  string
	}{
		{"wrong current password", map[string]string{"current_password": "wrong", "new_password": newPassword}, 400, "validation_failed", "current_password"},
		{"too short", map[string]string{"current_password": testPassword, "new_password": "short"}, 400, "validation_failed", "new_password"},
		{"too long", map[string]string{"current_password": testPassword, "new_password": strings.Repeat("x", 257)}, 400, "validation_failed", "new_password"},
		{"the username", map[string]string{"current_password": testPassword, "new_password": "ALICE"}, 400, "validation_failed", "new_password"},
		{"common password", map[string]string{"current_password": testPassword, "new_password": "password123"}, 400, "validation_failed", "new_password"},
		{"missing fields", map[string]string{}, 400, "validation_failed", "current_password"},
		{"not JSON", "new_password=x", 400, "invalid_json", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := s.Do(t, Request{Method: "POST", Path: "/api/password/", Token: current, Body: tc.body}).ExpectError(t, tc.status, tc.code)
			if tc.field != "" {
				Field(t, body, tc.field)
			}
		})
	}
	// Nothing changed so far.
	s.Do(t, Request{Path: "/api/profile/", Token: other}).Expect(t, http.StatusOK)
	s.Login(t, "alice", testPassword)

	s.Do(t, Request{Method: "POST", Path: "/api/password/", Token: current,
		Body: map[string]string{"current_password": testPassword, "new_password": newPassword}}).Expect(t, http.StatusNoContent)
	s.Do(t, Request{Path: "/api/profile/", Token: current}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/api/profile/", Token: other}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": testPassword}}).
		ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	s.Login(t, "alice", newPassword)
	if tokens := listTokens(t, s, current); len(tokens) != 2 {
		t.Errorf("tokens after the change: want the current one and the new login, got %+v", tokens)
	}
}

// Concurrent changes that all give the right current password: one wins,
// and each of the others finds that the password it gave is no longer the
// current one, instead of overwriting the winner's.
func TestConcurrentPasswordChangesOneWins(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.CreateUser(t, "alice", testPassword)
	tok := s.Login(t, "alice", testPassword)
	current := testPassword
	// Rounds of n changes at once: the interleaving that lets two of them
	// both pass the check is likely in one round, and more so in several.
	const rounds, n = 4, 8
	for round := range rounds {
		next := func(i int) string { return fmt.Sprintf("an entirely new passphrase %d.%d", round, i) }
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				statuses[i] = s.Do(t, Request{Method: "POST", Path: "/api/password/", Token: tok,
					Body: map[string]string{"current_password": current, "new_password": next(i)}}).Status
			})
		}
		wg.Wait()
		won := -1
		for i, status := range statuses {
			switch status {
			case http.StatusNoContent:
				if won >= 0 {
					t.Errorf("round %d: changes %d and %d both succeeded from the same current password", round, won, i)
				}
				won = i
			case http.StatusBadRequest:
			default:
				t.Errorf("round %d, change %d: status %d, want 204 or 400", round, i, status)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no change succeeded: %v", round, statuses)
		}
		current = next(won)
		s.Login(t, "alice", current)
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *cfgT) { c.AllowRegistration = true }))
	const pw = "a long enough passphrase"
	body := s.Do(t, Request{Method: "POST", Path: "/api/register/",
		Body: map[string]string{"username": "Dora", "email": "dora@example.com", "password": pw}}).Expect(t, http.StatusCreated).JSON(t)
	user, _ := body["user"].(map[string]any)
	if user["username"] != "Dora" || user["email"] != "dora@example.com" || user["id"] == nil {
		t.Errorf("registered user: %v", body)
	}
	if _, ok := body["token"]; ok {
		t.Errorf("registration must not issue a token: %v", body)
	}
	s.Login(t, "dora", pw)

	cases := []struct {
		name   string
		body   map[string]any
		status int
		code   string
		field  string
	}{
		{"taken in another case", map[string]any{"username": "DORA", "email": "d2@example.com", "password": pw}, 409, "conflict", ""},
		{"invalid email", map[string]any{"username": "eve", "email": "eve", "password": pw}, 400, "validation_failed", "email"},
		{"short password", map[string]any{"username": "eve", "email": "eve@example.com", "password": "short"}, 400, "validation_failed", "password"},
		{"common password", map[string]any{"username": "eve", "email": "eve@example.com", "password": "1234567890"}, 400, "validation_failed", "password"},
		{"password is the username", map[string]any{"username": "evelynnnnnn", "email": "eve@example.com", "password": "EVELYNNNNNN"}, 400, "validation_failed", "password"},
		{"spaces in username", map[string]any{"username": "eve smith", "email": "eve@example.com", "password": pw}, 400, "validation_failed", "username"},
		{"SQL in username", map[string]any{"username": "x'; DROP TABLE users; --", "email": "eve@example.com", "password": pw}, 400, "validation_failed", "username"},
		{"username too long", map[string]any{"username": strings.Repeat("e", 151), "email": "eve@example.com", "password": pw}, 400, "validation_failed", "username"},
		{"unknown field", map[string]any{"username": "eve", "email": "eve@example.com", "password": pw, "is_active": true}, 400, "validation_failed", "is_active"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := s.Do(t, Request{Method: "POST", Path: "/api/register/", Body: tc.body}).ExpectError(t, tc.status, tc.code)
			if tc.field != "" {
				Field(t, body, tc.field)
			}
		})
	}
	var count int64
	s.DB.Model(&models.User{}).Count(&count)
	if count != 1 {
		t.Errorf("users after refused registrations: got %d, want 1", count)
	}
	// Unicode usernames are allowed, and their look-alike compatibility forms collide.
	s.Do(t, Request{Method: "POST", Path: "/api/register/",
		Body: map[string]string{"username": "ｚoë", "email": "zoe@example.com", "password": pw}}).Expect(t, http.StatusCreated)
	s.Do(t, Request{Method: "POST", Path: "/api/register/",
		Body: map[string]string{"username": "zoë", "email": "zoe2@example.com", "password": pw}}).ExpectError(t, http.StatusConflict, "conflict")
}

func TestRegisterIsOffByDefault(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.Do(t, Request{Method: "POST", Path: "/api/register/",
		Body: map[string]string{"username": "eve", "email": "eve@example.com", "password": "a long enough passphrase"}}).
		ExpectError(t, http.StatusNotFound, "not_found")
	var count int64
	s.DB.Model(&models.User{}).Count(&count)
	if count != 0 {
		t.Errorf("users: got %d, want 0", count)
	}
}

func TestPasswordChangeSharesTheLoginLockout(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *cfgT) { c.LoginUserFailures = 3 }))
	s.CreateUser(t, "alice", testPassword)
	token := s.Login(t, "alice", testPassword)
	change := func(current string) *Response {
		return s.Do(t, Request{Method: "POST", Path: "/api/password/", Token: token,
			Body: map[string]string{"current_password": current, "new_password": "a brand new passphrase"}})
	}
	// A right current password with a refused new one is no guess.
	Field(t, s.Do(t, Request{Method: "POST", Path: "/api/password/", Token: token,
		Body: map[string]string{"current_password": testPassword, "new_password": "short"}}).
		ExpectError(t, http.StatusBadRequest, "validation_failed"), "new_password")
	for range 3 {
		Field(t, change("a wrong guess").ExpectError(t, http.StatusBadRequest, "validation_failed"), "current_password")
	}
	// Three guesses lock the username: the right password is refused here
	// and at login until the window ends.
	resp := change(testPassword)
	resp.ExpectError(t, http.StatusTooManyRequests, "rate_limited")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": testPassword}}).
		ExpectError(t, http.StatusTooManyRequests, "rate_limited")
	// The password did not change.
	var stored models.User
	s.DB.Where("username_key = ?", "alice").Take(&stored)
	if ok, _, _ := s.Passwords.Verify(t.Context(), testPassword, stored.PasswordHash); !ok {
		t.Error("the password changed while locked")
	}
}

// A registration waits for a password-hash slot before it opens any
// transaction: on SQLite, whose one connection is also its one writer,
// waiting inside a transaction would stop every other user's writes until
// a slot came free. Here the registration is held at the moment it asks
// for a slot, and another user's token creation must still go through.
func TestRegistrationWaitingForAHashHoldsNoTransaction(t *testing.T) {
	t.Parallel()
	hasher := password.NewHasher(testPasswordParams, 1)
	var armed atomic.Bool
	waiting, proceed := make(chan struct{}), make(chan struct{})
	hasher.OnBusy(func(busy bool) {
		if busy && armed.CompareAndSwap(true, false) {
			close(waiting)
			<-proceed // every slot taken, for as long as the test needs
		}
	})
	s := NewServer(t, WithApp(app.WithPasswordHasher(hasher)),
		WithConfig(func(c *config.Config) { c.AllowRegistration = true }))
	bob := s.CreateUser(t, "bob", testPassword)
	bobToken := s.IssueToken(t, bob)

	armed.Store(true)
	registered := make(chan *Response, 1)
	go func() {
		_, _, resp := s.send(t, Request{Method: "POST", Path: "/api/register/",
			Body: map[string]string{"username": "carol", "email": "carol@example.com", "password": testPassword}})
		registered <- resp
	}()
	select {
	case <-waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the registration never asked for a hash slot")
	}
	created := make(chan *Response, 1)
	go func() {
		_, _, resp := s.send(t, Request{Method: "POST", Path: "/api/tokens/", Token: bobToken, Body: map[string]any{"name": "ci"}})
		created <- resp
	}()
	select {
	case resp := <-created:
		if resp.Status != http.StatusCreated {
			t.Errorf("bob's token creation while a registration waits to hash: got %d %s", resp.Status, resp.Body)
		}
	case <-time.After(10 * time.Second):
		t.Error("bob's token creation waited for a registration that was waiting to hash")
	}
	close(proceed)
	if resp := <-registered; resp.Status != http.StatusCreated {
		t.Errorf("the registration: got %d %s", resp.Status, resp.Body)
	}
}
