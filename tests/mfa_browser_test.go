//go:build browser

package tests

import (
	"net/http"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// A person enrols an authenticator app from the page, signs out, signs in
// with a code, and, once REAUTH_MAX_AGE has passed, meets the password
// prompt when creating a token, after which the token is created.
func TestWebPageTwoFactorAndStepUp(t *testing.T) {
	t.Parallel()
	f := newStepUpFixture(t)
	code := func(secret string) string {
		t.Helper()
		c, err := totp.GenerateCode(secret, f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	b := NewBrowser(t)
	b.Open(f.URL + "/")
	signIn(b, "alice", testPassword)
	b.WaitText("#twofa-state", "off")

	// Enrol: the QR code shows (a data: URL the page's policy allows), and
	// a code from the key turns it on.
	b.Click("#twofa-start")
	b.WaitVisible("#twofa-enrol")
	b.Until(`document.getElementById('twofa-qr').complete && document.getElementById('twofa-qr').naturalWidth > 0`,
		"the QR code to load")
	var secret string
	b.Eval(`document.getElementById('twofa-secret').textContent`, &secret)
	if len(secret) != 32 {
		t.Fatalf("the key on the page: %q", secret)
	}
	b.Type("twofa-code", code(secret))
	b.Click("#twofa-confirm")
	b.WaitVisible("#recovery-panel")
	b.WaitText("#twofa-state", "on")
	var codes int
	b.Eval(`document.querySelectorAll('#recovery-codes li').length`, &codes)
	if codes != 10 {
		t.Errorf("the page shows %d recovery codes, want 10", codes)
	}
	b.Click("#recovery-done")
	b.WaitGone("#recovery-codes li")
	if f.Do(t, Request{Path: "/api/profile/", Token: b.SessionToken()}).Expect(t, http.StatusOK).JSON(t)["mfa_enabled"] != true {
		t.Fatal("the page says on, the API does not")
	}

	// Sign out, then in: the password, then the code.
	f.clock.Advance(30 * time.Second)
	b.Click("#signout")
	b.WaitVisible("#signin-view")
	b.Type("signin-username", "alice")
	b.Type("signin-password", testPassword+"\n")
	b.WaitVisible("#mfa-view")
	if tok := b.SessionToken(); tok != "" {
		t.Fatal("the password alone gave the page a token")
	}
	b.Type("mfa-code", "000000\n")
	b.WaitText("#mfa-code-error", "wrong")
	b.Type("mfa-code", code(secret)+"\n")
	b.WaitVisible("#tokens-view")
	b.WaitVisible(`#token-rows tr .badge`)

	// Time passes: creating a token asks for the password and a code, then
	// goes ahead.
	f.clock.Advance(f.Config.ReauthMaxAge + time.Minute)
	b.Type("create-name", "after a while")
	b.Click("#create-submit")
	b.Until(`document.getElementById('reauth').open`, "the re-authentication prompt")
	b.Type("reauth-password", "not the password")
	b.Type("reauth-code", code(secret))
	b.Click("#reauth-submit")
	b.WaitText("#reauth-password-error", "Password")
	b.Type("reauth-password", testPassword)
	b.Type("reauth-code", code(secret))
	b.Click("#reauth-submit")
	b.WaitVisible("#secret-panel")
	created := b.Value("secret-value")
	f.Do(t, Request{Path: "/api/tokens/current/", Token: created}).Expect(t, http.StatusOK)

	// Cancelling the prompt changes nothing, and says so.
	f.clock.Advance(f.Config.ReauthMaxAge + time.Minute)
	b.Click("#secret-done")
	b.Type("create-name", "cancelled")
	b.Click("#create-submit")
	b.Until(`document.getElementById('reauth').open`, "the re-authentication prompt")
	b.Click("#reauth-cancel")
	b.WaitText("#create-error", "Nothing was changed")
	b.ExpectNoProblems()
}
