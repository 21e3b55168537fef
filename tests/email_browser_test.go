//go:build browser

package tests

import (
	"net/http"
	"strings"
	"testing"
)

// The whole forgotten-password flow, as a person does it: from the
// sign-in page to a new password, with the link from the mail.
func TestWebPageResetsAForgottenPassword(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	f.createUserWithEmail(t, "olga", "olga@example.com")
	before := f.Login(t, "olga", testPassword)
	b := NewBrowser(t)
	b.Open(f.URL + "/")

	b.Click("#forgot-open")
	b.WaitVisible("#forgot-view")
	b.Type("forgot-who", "olga@example.com\n")
	b.WaitText("#forgot-ok", "If an account matches, a link is on its way")

	link, _ := f.mail.WaitForMailTo(t, "olga@example.com").Link(t)
	if !strings.HasPrefix(link, "http://localhost:8080/reset#token=") {
		t.Fatalf("link: %s", link)
	}
	// The link, opened on the server under test.
	b.Open(f.URL + strings.TrimPrefix(link, "http://localhost:8080"))
	b.WaitVisible("#reset-view")
	// The token leaves the address bar at once.
	var address string
	b.Eval(`location.href`, &address)
	if strings.Contains(address, "token") || !strings.HasSuffix(address, "/reset") {
		t.Errorf("address after opening the link: %s", address)
	}

	// The two passwords must agree, and follow the policy.
	b.Type("reset-new", newTestPassword)
	b.Type("reset-confirm", newTestPassword+"x\n")
	b.WaitText("#reset-confirm-error", "differ")
	b.Type("reset-new", "short")
	b.Type("reset-confirm", "short\n")
	b.WaitText("#reset-new-error", "New password must be at least")
	b.Type("reset-new", newTestPassword)
	b.Type("reset-confirm", newTestPassword+"\n")
	b.WaitVisible("#signin-view")
	b.WaitText("#signin-notice", "Your password is changed")

	// Every old token is dead, and the new password signs in on the page.
	f.Do(t, Request{Path: "/api/tokens/current/", Token: before}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	b.Type("signin-username", "olga")
	b.Type("signin-password", newTestPassword+"\n")
	b.WaitVisible("#tokens-view")
	b.WaitText("#email-address", "olga@example.com")
	b.WaitText("#email-state", "verified")

	// The link is used: opened again, it says so.
	b.Open(f.URL + strings.TrimPrefix(link, "http://localhost:8080"))
	b.Type("reset-new", "yet another passphrase 12")
	b.Type("reset-confirm", "yet another passphrase 12\n")
	b.WaitText("#reset-error", "This link is invalid, used")
	b.ExpectNoProblems()
}

// The account shows whether the address is verified, sends a new link,
// and shows a change of address that waits for its link.
func TestWebPageVerifiesAndChangesTheAddress(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	f.createUserWithEmail(t, "pete", "pete@example.com")
	b := NewBrowser(t)
	b.Open(f.URL + "/")
	signIn(b, "pete", testPassword)
	b.WaitText("#email-state", "not verified")

	b.Click("#email-verify")
	b.WaitText("#email-ok", "A new link is on its way to pete@example.com")
	link, _ := f.mail.WaitForMailTo(t, "pete@example.com").Link(t)
	b.Open(f.URL + strings.TrimPrefix(link, "http://localhost:8080"))
	b.WaitText("#verify-ok", "Your email address is verified.")
	b.Click("#verify-continue")
	b.WaitVisible("#tokens-view")
	b.WaitText("#email-state", "verified")
	b.WaitGone("#email-verify-row:not([hidden])")

	b.Type("email-new", "pete@new.example\n")
	b.WaitText("#email-pending", "Follow the link we mailed to pete@new.example")
	b.WaitText("#email-address", "pete@example.com")
	_, token := f.mail.WaitForMailTo(t, "pete@new.example").Link(t)
	f.confirmEmail(t, token).Expect(t, http.StatusNoContent)
	b.Open(f.URL + "/")
	b.WaitText("#email-address", "pete@new.example")
	b.ExpectNoProblems()
}
