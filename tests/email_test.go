package tests

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"tokenauth/app"
	"tokenauth/clock"
	"tokenauth/config"
	"tokenauth/models"
)

// mailFixture is a server whose mail goes to a test SMTP server, on a
// fake clock.
type mailFixture struct {
	*Server
	mail  *MailServer
	clock *clock.Fake
}

func newMailFixture(t *testing.T, opts ...Option) *mailFixture {
	t.Helper()
	ms := NewMailServer(t)
	// A whole second: PostgreSQL keeps microseconds, so a time with
	// nanoseconds would not compare with itself read back.
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	opts = append([]Option{WithMailServer(ms), WithApp(app.WithClock(clk))}, opts...)
	return &mailFixture{Server: NewServer(t, opts...), mail: ms, clock: clk}
}

// createUserWithEmail creates an active user with that address.
func (f *mailFixture) createUserWithEmail(t *testing.T, username, email string) *models.User {
	t.Helper()
	u := f.CreateUser(t, username, testPassword)
	if err := models.SetEmail(t.Context(), f.DB, u, email, false); err != nil {
		t.Fatal(err)
	}
	return u
}

// requestReset asks for a reset link and checks the one answer it gets.
func (f *mailFixture) requestReset(t *testing.T, body map[string]string) *Response {
	t.Helper()
	resp := f.Do(t, Request{Method: "POST", Path: "/api/password-reset/", Body: body}).Expect(t, http.StatusAccepted)
	if msg, _ := resp.JSON(t)["message"].(string); !strings.Contains(msg, "If an account matches") {
		t.Errorf("reset answer: %s", resp.Body)
	}
	return resp
}

// confirmReset sets a new password with the token of a reset link.
func (f *mailFixture) confirmReset(t *testing.T, token, newPassword string) *Response {
	t.Helper()
	return f.Do(t, Request{Method: "POST", Path: "/api/password-reset/confirm/",
		Body: map[string]string{"token": token, "new_password": newPassword}})
}

// eventTypes returns the types of the user's events, oldest first.
func (f *mailFixture) eventTypes(t *testing.T, userID uint) []string {
	t.Helper()
	events, _, err := models.ListEvents(t.Context(), f.DB, userID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i := len(events) - 1; i >= 0; i-- {
		types = append(types, events[i].Type)
	}
	return types
}

// waitForOutbox waits until the outbox has nothing left to send, and
// nothing left to answer.
func (f *mailFixture) waitForOutbox(t *testing.T) {
	t.Helper()
	waitFor(t, "the outbox to empty", func() bool {
		f.Mail.WakeAll()
		// Requests first: answering one queues its mail in the same
		// transaction, so once no request is left every mail it made is
		// in the count that follows.
		resets, err := models.CountDeliveries(t.Context(), f.DB, models.ResetRequestTable)
		if err != nil {
			t.Fatal(err)
		}
		mails, err := models.CountDeliveries(t.Context(), f.DB, models.MailTable)
		if err != nil {
			t.Fatal(err)
		}
		return resets.Pending == 0 && mails.Pending == 0
	})
}

const newTestPassword = "a brand new passphrase 77"

func TestPasswordResetByEmail(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t, WithConfig(func(c *config.Config) {
		c.PublicURL = "https://app.example.com"
		c.LoginUserFailures = 2
	}))
	alice := f.createUserWithEmail(t, "alice", "Alice@Example.com")
	before := f.Login(t, "alice", testPassword)
	// Two wrong passwords lock the username: the reset unlocks it.
	for range 2 {
		f.Do(t, Request{Method: "POST", Path: "/api/login/",
			Body: map[string]string{"username": "alice", "password": "wrong password"}}).ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	}
	f.Do(t, Request{Method: "POST", Path: "/api/login/",
		Body: map[string]string{"username": "alice", "password": testPassword}}).ExpectError(t, http.StatusTooManyRequests, "rate_limited")

	// The address is found in any case.
	f.requestReset(t, map[string]string{"email": "alice@EXAMPLE.com"})
	got := f.mail.WaitForMailTo(t, "Alice@Example.com")
	if got.Subject != "Reset your tokenauth password" || got.From != "no-reply@localhost" {
		t.Errorf("mail: subject %q from %q", got.Subject, got.From)
	}
	link, token := got.Link(t)
	if !strings.HasPrefix(link, "https://app.example.com/reset#token=tkr_") {
		t.Errorf("link: got %s, want PUBLIC_URL/reset#token=tkr_...", link)
	}
	for _, want := range []string{"alice", "1 hour", "If it was not you"} {
		if !strings.Contains(got.Text, want) || !strings.Contains(got.HTML, want) {
			t.Errorf("the mail does not say %q:\n%s", want, got.Text)
		}
	}

	// The policy applies, and a refused password leaves the link usable.
	body := f.confirmReset(t, token, "short").ExpectError(t, http.StatusBadRequest, "validation_failed")
	if msg := Field(t, body, "new_password"); !strings.Contains(msg, "at least") {
		t.Errorf("new_password: %q", msg)
	}
	f.confirmReset(t, token, newTestPassword).Expect(t, http.StatusNoContent)

	// Every token is revoked, the lockout is gone, the new password works
	// and the old one does not; the link proved the address.
	f.Do(t, Request{Path: "/api/tokens/current/", Token: before}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	f.Do(t, Request{Method: "POST", Path: "/api/login/",
		Body: map[string]string{"username": "alice", "password": testPassword}}).ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	after := f.Login(t, "alice", newTestPassword)
	profile := f.Do(t, Request{Path: "/api/profile/", Token: after}).Expect(t, http.StatusOK).JSON(t)
	if profile["email_verified"] != true {
		t.Errorf("email_verified after a reset: got %v, want true", profile["email_verified"])
	}

	// The link works once.
	f.confirmReset(t, token, "yet another passphrase 88").ExpectError(t, http.StatusBadRequest, "invalid_reset_token")
	types := f.eventTypes(t, alice.ID)
	for _, want := range []string{models.EventPasswordResetRequested, models.EventPasswordReset, models.EventEmailVerified} {
		if !slices.Contains(types, want) {
			t.Errorf("events %v lack %s", types, want)
		}
	}
	// Nothing secret is left in the outbox once the mail is sent.
	var m models.Mail
	if err := f.DB.Where("recipient = ?", "Alice@Example.com").Take(&m).Error; err != nil {
		t.Fatal(err)
	}
	if m.Body != "" || m.DeliveredAt == nil || m.Attempts != 1 {
		t.Errorf("sent mail: body %d bytes, delivered %v, attempts %d", len(m.Body), m.DeliveredAt, m.Attempts)
	}
}

func TestPasswordResetMailsEveryActiveAccountOfTheAddress(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	first := f.createUserWithEmail(t, "first", "shared@example.com")
	second := f.createUserWithEmail(t, "second", "Shared@Example.com")
	off := f.createUserWithEmail(t, "off", "shared@example.com")
	if err := models.SetActive(t.Context(), f.DB, off, false); err != nil {
		t.Fatal(err)
	}
	f.createUserWithEmail(t, "other", "other@example.com")

	f.requestReset(t, map[string]string{"email": "shared@example.com"})
	f.waitForOutbox(t)
	mails := f.mail.Mails()
	if len(mails) != 2 {
		t.Fatalf("got %d mails, want 2 (one per active account)", len(mails))
	}
	// Each link resets its own account.
	for _, u := range []*models.User{first, second} {
		var mine *ReceivedMail
		for i := range mails {
			if strings.Contains(mails[i].Text, `"`+u.Username+`"`) {
				mine = &mails[i]
			}
		}
		if mine == nil {
			t.Fatalf("no mail names %s", u.Username)
		}
		if mine.To[0] != u.Email {
			t.Errorf("%s's mail went to %v", u.Username, mine.To)
		}
		_, token := mine.Link(t)
		f.confirmReset(t, token, newTestPassword).Expect(t, http.StatusNoContent)
		f.Login(t, u.Username, newTestPassword)
	}
	if types := f.eventTypes(t, off.ID); slices.Contains(types, models.EventPasswordResetRequested) {
		t.Errorf("a deactivated account got a link: %v", types)
	}
}

func TestPasswordResetByUsername(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	f.createUserWithEmail(t, "Bob", "bob@example.com")
	f.CreateUser(t, "noaddress", testPassword)
	if err := models.SetEmail(t.Context(), f.DB, mustFindUser(t, f.Server, "noaddress"), "", false); err != nil {
		t.Fatal(err)
	}

	f.requestReset(t, map[string]string{"username": "BOB"})
	f.requestReset(t, map[string]string{"username": "noaddress"})
	f.waitForOutbox(t)
	mails := f.mail.Mails()
	if len(mails) != 1 || mails[0].To[0] != "bob@example.com" {
		t.Fatalf("mails: got %+v, want one to bob@example.com", mails)
	}
	_, token := mails[0].Link(t)
	f.confirmReset(t, token, newTestPassword).Expect(t, http.StatusNoContent)
	f.Login(t, "bob", newTestPassword)
}

func mustFindUser(t *testing.T, s *Server, username string) *models.User {
	t.Helper()
	u, err := models.FindUserByUsername(t.Context(), s.DB, username)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPasswordResetRequestIsValidated(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	cases := []struct {
		name  string
		body  any
		field string
	}{
		{"neither", map[string]string{}, "email"},
		{"both", map[string]string{"email": "a@example.com", "username": "a"}, "username"},
		{"not an address", map[string]string{"email": "not an address"}, "email"},
		{"unknown field", map[string]string{"email": "a@example.com", "password": "x"}, "password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := s.Do(t, Request{Method: "POST", Path: "/api/password-reset/", Body: tc.body}).
				ExpectError(t, http.StatusBadRequest, "validation_failed")
			Field(t, body, tc.field)
		})
	}
	for _, body := range []map[string]string{{"token": "tkr_nonsense", "new_password": newTestPassword}, {"token": ""}} {
		resp := s.Do(t, Request{Method: "POST", Path: "/api/password-reset/confirm/", Body: body})
		if resp.Status != http.StatusBadRequest {
			t.Errorf("confirm %v: got %d", body, resp.Status)
		}
	}
}

// A reset link stops working once used, once expired, once the password
// changes any other way, once a newer link is sent, and once the account
// is deactivated.
func TestResetLinkStopsWorking(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		void func(t *testing.T, f *mailFixture, u *models.User, token string)
	}{
		{"used", func(t *testing.T, f *mailFixture, _ *models.User, token string) {
			f.confirmReset(t, token, newTestPassword).Expect(t, http.StatusNoContent)
		}},
		{"expired", func(t *testing.T, f *mailFixture, _ *models.User, _ string) {
			f.clock.Advance(f.Config.PasswordResetTTL)
		}},
		{"password changed", func(t *testing.T, f *mailFixture, u *models.User, _ string) {
			tok := f.Login(t, u.Username, testPassword)
			f.Do(t, Request{Method: "POST", Path: "/api/password/", Token: tok,
				Body: map[string]string{"current_password": testPassword, "new_password": newTestPassword}}).Expect(t, http.StatusNoContent)
		}},
		{"superseded", func(t *testing.T, f *mailFixture, u *models.User, _ string) {
			f.requestReset(t, map[string]string{"email": u.Email})
			waitFor(t, "a second link", func() bool { return len(f.mail.MailsTo(u.Email)) == 2 })
		}},
		{"deactivated", func(t *testing.T, f *mailFixture, u *models.User, _ string) {
			if err := models.SetActive(t.Context(), f.DB, u, false); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newMailFixture(t)
			u := f.createUserWithEmail(t, "carol", "carol@example.com")
			f.requestReset(t, map[string]string{"email": u.Email})
			_, token := f.mail.WaitForMailTo(t, u.Email).Link(t)
			tc.void(t, f, u, token)
			f.confirmReset(t, token, "a third passphrase 99").ExpectError(t, http.StatusBadRequest, "invalid_reset_token")
		})
	}
}

func TestResetLinkWorksUntilItExpires(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	u := f.createUserWithEmail(t, "dora", "dora@example.com")
	f.requestReset(t, map[string]string{"email": u.Email})
	_, token := f.mail.WaitForMailTo(t, u.Email).Link(t)
	f.clock.Advance(f.Config.PasswordResetTTL - time.Second)
	f.confirmReset(t, token, newTestPassword).Expect(t, http.StatusNoContent)
}

// An account gets a few reset links an hour, however many requests name
// it; the answer to the requests never changes.
func TestPasswordResetIsLimitedPerAccount(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	u := f.createUserWithEmail(t, "erin", "erin@example.com")
	for range 5 {
		f.requestReset(t, map[string]string{"email": u.Email})
	}
	f.waitForOutbox(t)
	if n := len(f.mail.MailsTo(u.Email)); n != 3 {
		t.Fatalf("got %d links in an hour, want 3", n)
	}
	f.clock.Advance(time.Hour)
	f.requestReset(t, map[string]string{"email": u.Email})
	f.waitForOutbox(t)
	if n := len(f.mail.MailsTo(u.Email)); n != 4 {
		t.Fatalf("an hour later: got %d links in all, want 4", n)
	}
}
