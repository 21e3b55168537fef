package tests

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"tokenauth/config"
	"tokenauth/mail"
	"tokenauth/models"
)

// confirmEmail follows an email link.
func (f *mailFixture) confirmEmail(t *testing.T, token string) *Response {
	t.Helper()
	return f.Do(t, Request{Method: "POST", Path: "/api/email/verify/confirm/", Body: map[string]string{"token": token}})
}

func (f *mailFixture) profile(t *testing.T, token string) map[string]any {
	t.Helper()
	return f.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, http.StatusOK).JSON(t)
}

func TestRegistrationMailsAVerificationLink(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t, WithConfig(func(c *config.Config) {
		c.AllowRegistration = true
		c.PublicURL = "https://app.example.com/"
	}))
	body := f.Do(t, Request{Method: "POST", Path: "/api/register/",
		Body: map[string]string{"username": "gina", "email": "gina@example.com", "password": testPassword}}).
		Expect(t, http.StatusCreated).JSON(t)
	if user, _ := body["user"].(map[string]any); user["email_verified"] != false {
		t.Errorf("a new account: %v", body)
	}
	got := f.mail.WaitForMailTo(t, "gina@example.com")
	link, token := got.Link(t)
	if got.Subject != "Verify your email address for tokenauth" || !strings.HasPrefix(link, "https://app.example.com/verify#token=tke_") {
		t.Errorf("mail %q with link %s", got.Subject, link)
	}
	if !strings.Contains(got.Text, "1 day") {
		t.Errorf("the mail does not say when the link ends:\n%s", got.Text)
	}
	f.confirmEmail(t, token).Expect(t, http.StatusNoContent)
	tok := f.Login(t, "gina", testPassword)
	if p := f.profile(t, tok); p["email_verified"] != true {
		t.Errorf("after following the link: %v", p)
	}
	f.confirmEmail(t, token).ExpectError(t, http.StatusBadRequest, "invalid_verification_token")
	u := mustFindUser(t, f.Server, "gina")
	types := f.eventTypes(t, u.ID)
	if !slices.Contains(types, models.EventEmailVerificationSent) || !slices.Contains(types, models.EventEmailVerified) {
		t.Errorf("events: %v", types)
	}
}

func TestVerificationLinkOnRequest(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	_, tok := f.UserWithToken(t, "hank")
	narrow := f.IssueToken(t, mustFindUser(t, f.Server, "hank"), "profile:write")
	for i := range mail.LinksPerHour {
		resp := f.Do(t, Request{Method: "POST", Path: "/api/email/verify/", Token: narrow}).Expect(t, http.StatusAccepted)
		if !strings.Contains(string(resp.Body), "hank@example.com") {
			t.Errorf("answer %d: %s", i, resp.Body)
		}
	}
	// A few an hour, then 429 until the oldest is an hour old.
	resp := f.Do(t, Request{Method: "POST", Path: "/api/email/verify/", Token: narrow})
	resp.ExpectError(t, http.StatusTooManyRequests, "rate_limited")
	if resp.Header.Get("Retry-After") != "3600" {
		t.Errorf("Retry-After: %q", resp.Header.Get("Retry-After"))
	}
	waitFor(t, "three links", func() bool { return len(f.mail.MailsTo("hank@example.com")) == mail.LinksPerHour })
	mails := f.mail.MailsTo("hank@example.com")

	// Only the newest link works.
	_, oldest := mails[0].Link(t)
	f.confirmEmail(t, oldest).ExpectError(t, http.StatusBadRequest, "invalid_verification_token")
	_, newest := mails[len(mails)-1].Link(t)
	f.confirmEmail(t, newest).Expect(t, http.StatusNoContent)
	if p := f.profile(t, tok); p["email_verified"] != true {
		t.Errorf("profile: %v", p)
	}
	f.clock.Advance(time.Hour)
	f.Do(t, Request{Method: "POST", Path: "/api/email/verify/", Token: tok}).ExpectError(t, http.StatusConflict, "conflict")
}

func TestVerificationLinkExpires(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	_, tok := f.UserWithToken(t, "ivy")
	f.Do(t, Request{Method: "POST", Path: "/api/email/verify/", Token: tok}).Expect(t, http.StatusAccepted)
	_, token := f.mail.WaitForMailTo(t, "ivy@example.com").Link(t)
	f.clock.Advance(mail.EmailLinkTTL)
	f.confirmEmail(t, token).ExpectError(t, http.StatusBadRequest, "invalid_verification_token")
	if p := f.profile(t, tok); p["email_verified"] != false {
		t.Errorf("profile: %v", p)
	}
}

// A verification link proves the address it was sent to: once the
// account has another address, it is void.
func TestVerificationLinkOfAFormerAddressIsVoid(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	u, tok := f.UserWithToken(t, "jack")
	f.Do(t, Request{Method: "POST", Path: "/api/email/verify/", Token: tok}).Expect(t, http.StatusAccepted)
	_, token := f.mail.WaitForMailTo(t, "jack@example.com").Link(t)
	if err := models.SetEmail(t.Context(), f.DB, u, "jack@elsewhere.example", false); err != nil {
		t.Fatal(err)
	}
	f.confirmEmail(t, token).ExpectError(t, http.StatusBadRequest, "invalid_verification_token")
}

func TestEmailChangeNeedsTheNewAddress(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	u, tok := f.UserWithToken(t, "kate")
	if err := models.SetEmail(t.Context(), f.DB, u, "kate@example.com", true); err != nil {
		t.Fatal(err)
	}
	body := f.Do(t, Request{Method: "PATCH", Path: "/api/profile/", Token: tok,
		Body: map[string]string{"email": "kate@new.example"}}).Expect(t, http.StatusAccepted).JSON(t)
	if body["pending_email"] != "kate@new.example" {
		t.Errorf("answer: %v", body)
	}
	// The old address gets a notice without a link; the new one the link.
	notice := f.mail.WaitForMailTo(t, "kate@example.com")
	if strings.Contains(notice.Text, "#token=") || strings.Contains(notice.HTML, "#token=") || !strings.Contains(notice.Text, "kate@new.example") {
		t.Errorf("notice to the old address:\n%s", notice.Text)
	}
	if notice.Subject != "Your tokenauth email address is being changed" {
		t.Errorf("notice subject: %q", notice.Subject)
	}
	confirm := f.mail.WaitForMailTo(t, "kate@new.example")
	_, token := confirm.Link(t)
	if p := f.profile(t, tok); p["email"] != "kate@example.com" || p["email_verified"] != true {
		t.Errorf("before the link is followed: %v", p)
	}
	f.confirmEmail(t, token).Expect(t, http.StatusNoContent)
	if p := f.profile(t, tok); p["email"] != "kate@new.example" || p["email_verified"] != true {
		t.Errorf("after: %v", p)
	}
	types := f.eventTypes(t, u.ID)
	if !slices.Contains(types, models.EventEmailChangeRequested) || !slices.Contains(types, models.EventEmailChanged) {
		t.Errorf("events: %v", types)
	}
	// A reset by the new address finds the account.
	f.requestReset(t, map[string]string{"email": "KATE@new.example"})
	waitFor(t, "a reset link", func() bool { return len(f.mail.MailsTo("kate@new.example")) == 2 })
}

// An address another account has verified is refused, when the change is
// asked for and again when its link is followed.
func TestEmailChangeToAVerifiedAddressIsAConflict(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	owner := f.CreateUser(t, "owner", testPassword)
	if err := models.SetEmail(t.Context(), f.DB, owner, "taken@example.com", true); err != nil {
		t.Fatal(err)
	}
	_, tok := f.UserWithToken(t, "liam")
	f.Do(t, Request{Method: "PATCH", Path: "/api/profile/", Token: tok,
		Body: map[string]string{"email": "TAKEN@example.com"}}).ExpectError(t, http.StatusConflict, "conflict")

	// The race: the address is free when asked for, verified by another
	// account before the link is followed.
	f.Do(t, Request{Method: "PATCH", Path: "/api/profile/", Token: tok,
		Body: map[string]string{"email": "race@example.com"}}).Expect(t, http.StatusAccepted)
	_, token := f.mail.WaitForMailTo(t, "race@example.com").Link(t)
	if err := models.SetEmail(t.Context(), f.DB, owner, "race@example.com", true); err != nil {
		t.Fatal(err)
	}
	f.confirmEmail(t, token).ExpectError(t, http.StatusConflict, "conflict")
	if p := f.profile(t, tok); p["email"] != "liam@example.com" {
		t.Errorf("profile after the refused change: %v", p)
	}
	// An unverified holder of the address is no conflict: addresses are
	// not unique, verified ones are.
	f.createUserWithEmail(t, "unverified", "shared@example.com")
	f.Do(t, Request{Method: "PATCH", Path: "/api/profile/", Token: tok,
		Body: map[string]string{"email": "shared@example.com"}}).Expect(t, http.StatusAccepted)
}

func TestLoginRequiresAVerifiedEmailWhenConfigured(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t, WithConfig(func(c *config.Config) { c.RequireVerifiedEmail = true }))
	f.CreateUser(t, "mona", testPassword)
	login := func(password string) *Response {
		return f.Do(t, Request{Method: "POST", Path: "/api/login/",
			Body: map[string]string{"username": "mona", "password": password}})
	}
	// A wrong password tells nothing of the address.
	login("not the password").ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	f.Do(t, Request{Method: "POST", Path: "/api/login/",
		Body: map[string]string{"username": "nobody", "password": testPassword}}).ExpectError(t, http.StatusUnauthorized, "invalid_credentials")

	// The right one is 403, saying how to get a link, and mails one.
	body := login(testPassword).ExpectError(t, http.StatusForbidden, "email_not_verified")
	if msg, _ := body["error"].(string); !strings.Contains(msg, "A link was mailed") {
		t.Errorf("message: %q", msg)
	}
	if _, ok := body["token"]; ok {
		t.Errorf("a refused login carries a token: %v", body)
	}
	_, token := f.mail.WaitForMailTo(t, "mona@example.com").Link(t)
	f.confirmEmail(t, token).Expect(t, http.StatusNoContent)
	tok := f.Login(t, "mona", testPassword)
	if p := f.profile(t, tok); p["email_verified"] != true {
		t.Errorf("profile: %v", p)
	}
	if got := metric(t, f.Server, `tokenauth_logins_total{outcome="email_not_verified"}`); got != "1" {
		t.Errorf("logins refused for an unverified address: %s", got)
	}
}

// The operator sets an address at once, verified or not.
func TestSetEmailByOperator(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	u, tok := f.UserWithToken(t, "nina")
	f.Do(t, Request{Method: "PATCH", Path: "/api/profile/", Token: tok,
		Body: map[string]string{"email": "pending@example.com"}}).Expect(t, http.StatusAccepted)
	_, token := f.mail.WaitForMailTo(t, "pending@example.com").Link(t)
	if err := models.SetEmail(t.Context(), f.OpenDatabase(t), u, "set@example.com", true); err != nil {
		t.Fatal(err)
	}
	// The pending change is void, and the new address is in force on the
	// next request.
	f.confirmEmail(t, token).ExpectError(t, http.StatusBadRequest, "invalid_verification_token")
	waitFor(t, "the change to reach the cache", func() bool {
		p := f.profile(t, tok)
		return p["email"] == "set@example.com" && p["email_verified"] == true
	})
}
