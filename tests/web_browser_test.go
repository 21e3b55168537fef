//go:build browser

package tests

import (
	"bytes"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"tokenauth/app"
	"tokenauth/password"
)

// screenshotDir is where the screenshots of the page in the docs are kept;
// every run of TestWebPageManagesTokens makes them anew.
var screenshotDir = filepath.Join("..", "docs")

func TestWebPageManagesTokens(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.CreateUser(t, "alice", testPassword)
	otherSession := s.Login(t, "alice", testPassword)
	b := NewBrowser(t)
	b.Open(s.URL + "/")

	// A wrong password is named under the password field, and nothing is kept.
	b.Type("signin-username", "alice")
	b.Type("signin-password", "not the password")
	b.Click("#signin-submit")
	b.WaitText("#signin-password-error", "Wrong username or password.")
	var invalid string
	b.Eval(`document.getElementById('signin-password').getAttribute('aria-invalid')`, &invalid)
	if invalid != "true" {
		t.Errorf("password field aria-invalid: got %q, want true", invalid)
	}
	if tok := b.SessionToken(); tok != "" {
		t.Errorf("a failed sign-in kept a token: %q", tok)
	}

	// Signing in with the keyboard only: Enter submits the form.
	b.Type("signin-password", testPassword+"\n")
	b.WaitVisible("#tokens-view")
	b.WaitText("#whoami", "alice")
	b.WaitVisible(`#token-rows tr .badge`)
	pageToken := b.SessionToken()
	s.Do(t, Request{Path: "/api/tokens/current/", Token: pageToken}).Expect(t, http.StatusOK)
	var persisted int
	b.Eval(`localStorage.length`, &persisted)
	if persisted != 0 {
		t.Errorf("the page wrote %d items to localStorage", persisted)
	}
	expectPolicyEnforced(t, b)

	// Create a token limited to profile:read, with an expiry, and read its
	// secret from the page.
	b.Type("create-name", "deploy script")
	b.Click("#create-limited")
	b.Click(`input[name=scopes][value="profile:read"]`)
	b.Type("create-days", "7")
	b.Click("#create-submit")
	b.WaitVisible("#secret-panel")
	secret := b.Value("secret-value")
	b.WaitVisible(`button[aria-label="Revoke token deploy script"]`)

	// The secret works, with exactly the scope chosen on the page.
	profile := s.Do(t, Request{Path: "/api/profile/", Token: secret}).Expect(t, http.StatusOK).JSON(t)
	if profile["username"] != "alice" {
		t.Errorf("profile through the new token: got %v, want alice", profile["username"])
	}
	s.Do(t, Request{Path: "/api/tokens/", Token: secret}).ExpectError(t, http.StatusForbidden, "insufficient_scope")
	var current struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	s.Do(t, Request{Path: "/api/tokens/current/", Token: secret}).Expect(t, http.StatusOK).Decode(t, &current)
	if current.Name != "deploy script" || len(current.Scopes) != 1 || current.Scopes[0] != "profile:read" {
		t.Errorf("created token: got %+v, want deploy script with profile:read", current)
	}

	saveScreenshots(t, b)

	// Revoke it on the page: the confirmation starts on Cancel, and once
	// confirmed the row goes and the API refuses the secret.
	b.Do(chromedp.Click(chromedp.ID("secret-done")))
	b.Click(`button[aria-label="Revoke token deploy script"]`)
	b.WaitVisible("#confirm")
	var focused string
	b.Eval(`document.activeElement.id`, &focused)
	if focused != "confirm-cancel" {
		t.Errorf("focus in the confirmation: got #%s, want #confirm-cancel", focused)
	}
	b.Click("#confirm-ok")
	b.WaitGone(`button[aria-label="Revoke token deploy script"]`)
	b.WaitText("#list-ok", "revoked")
	s.Do(t, Request{Path: "/api/profile/", Token: secret}).ExpectError(t, http.StatusUnauthorized, "invalid_token")

	// Sign out everywhere. Escape backs out of the confirmation and puts
	// the focus back on the button; confirmed, every token dies and the
	// page forgets its own.
	b.Click("#logout-all")
	b.WaitVisible("#confirm")
	b.Do(chromedp.KeyEvent(kb.Escape))
	b.Until(`!document.getElementById('confirm').open && document.activeElement.id === 'logout-all'`,
		"Escape to close the confirmation")
	s.Do(t, Request{Path: "/api/tokens/current/", Token: pageToken}).Expect(t, http.StatusOK)
	b.Click("#logout-all")
	b.WaitVisible("#confirm")
	// Closed as Escape closes it and reopened before its close event comes
	// (the event waits for a task, and a person's clicks can go first), the
	// confirmation still answers the latest question.
	var reopened bool
	b.Eval(`(() => {
  document.getElementById('confirm').requestClose();
  document.getElementById('logout-all').click();
  return document.getElementById('confirm').open;
})()`, &reopened)
	if !reopened {
		t.Fatal("the confirmation did not open again")
	}
	b.Click("#confirm-ok")
	b.WaitVisible("#signin-view")
	b.WaitText("#signin-notice", "signed out everywhere")
	if tok := b.SessionToken(); tok != "" {
		t.Errorf("the page kept its token after signing out everywhere")
	}
	for _, tok := range []string{pageToken, otherSession} {
		s.Do(t, Request{Path: "/api/tokens/current/", Token: tok}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	}
	b.ExpectNoProblems()
}

// expectPolicyEnforced checks that the browser applies the page's CSP:
// an HTML sink refuses a plain string, and the refusal is reported (which
// also shows that ExpectNoProblems would see one).
func expectPolicyEnforced(t *testing.T, b *Browser) {
	t.Helper()
	var outcome string
	b.Eval(`(() => {
  try { document.createElement('div').innerHTML = '<img src=x>'; return 'allowed'; }
  catch (e) { return e.name; }
})()`, &outcome)
	if outcome != "TypeError" {
		t.Errorf("innerHTML with a string: got %q, want a TypeError from Trusted Types", outcome)
	}
	var reported []string
	b.Until(`window.__problems.length > 0`, "the violation to be reported")
	b.Eval(`window.__problems.splice(0)`, &reported)
	if len(reported) != 1 || !strings.Contains(reported[0], "require-trusted-types-for") {
		t.Errorf("reported violations: got %q, want the Trusted Types one", reported)
	}
}

// saveScreenshots takes the page at desktop and at phone width, checks
// that the phone layout fits the screen, and writes the shots to docs/
// when they are missing or UPDATE_SCREENSHOTS is set.
func saveScreenshots(t *testing.T, b *Browser) {
	t.Helper()
	desktop := b.Screenshot()
	b.Do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	var fits bool
	b.Eval(`document.documentElement.scrollWidth <= window.innerWidth`, &fits)
	if !fits {
		t.Errorf("at phone width the page is wider than the screen")
	}
	var rowDisplay string
	b.Eval(`getComputedStyle(document.querySelector('#token-rows tr')).display`, &rowDisplay)
	if rowDisplay != "block" {
		t.Errorf("at phone width token rows display as %q, want block (cards)", rowDisplay)
	}
	phone := b.Screenshot()
	b.Do(chromedp.EmulateViewport(1280, 900))

	for name, shot := range map[string][]byte{"web-desktop.png": desktop, "web-phone.png": phone} {
		img, err := png.Decode(bytes.NewReader(shot))
		if err != nil {
			t.Fatalf("%s is not a PNG: %v", name, err)
		}
		if w := img.Bounds().Dx(); name == "web-phone.png" && w != 390 || name == "web-desktop.png" && w != 1280 {
			t.Errorf("%s: width %d", name, w)
		}
		// The shots differ on every run (fresh tokens and times), so the
		// committed ones are replaced only when asked or missing: a test
		// run leaves the work tree as it found it.
		path := filepath.Join(screenshotDir, name)
		if _, err := os.Stat(path); err == nil && os.Getenv("UPDATE_SCREENSHOTS") == "" {
			continue
		}
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatalf("saving %s: %v", name, err)
		}
	}
}

func TestWebPageChangesPassword(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.CreateUser(t, "bob", testPassword)
	otherSession := s.Login(t, "bob", testPassword)
	b := NewBrowser(t)
	b.Open(s.URL + "/")
	signIn(b, "bob", testPassword)

	const newPassword = "an even sturdier passphrase 43"
	// The two new passwords must agree before anything is sent.
	b.Type("password-current", testPassword)
	b.Type("password-new", newPassword)
	b.Type("password-confirm", newPassword+"x")
	b.Click("#password-submit")
	b.WaitText("#password-confirm-error", "differ")

	// A wrong current password is named under its field.
	b.Type("password-current", "not the password")
	b.Type("password-confirm", newPassword)
	b.Click("#password-submit")
	b.WaitText("#password-current-error", "Current password is not your current password.")

	// A new password that breaks the policy is named under its field.
	b.Type("password-current", testPassword)
	b.Type("password-new", "short")
	b.Type("password-confirm", "short")
	b.Click("#password-submit")
	b.WaitText("#password-new-error", "New password must be at least")

	b.Type("password-new", newPassword)
	b.Type("password-confirm", newPassword+"\n")
	b.WaitText("#password-ok", "Password changed")

	// The page's own token lives on; every other one is revoked.
	s.Do(t, Request{Path: "/api/tokens/current/", Token: b.SessionToken()}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/api/tokens/current/", Token: otherSession}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Method: "POST", Path: "/api/login/",
		Body: map[string]string{"username": "bob", "password": testPassword}}).ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	s.Login(t, "bob", newPassword)
	b.ExpectNoProblems()
}

func TestWebPageReturnsToSignInWhenTheSessionEnds(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.CreateUser(t, "carol", testPassword)
	b := NewBrowser(t)
	b.Open(s.URL + "/")
	signIn(b, "carol", testPassword)

	// The page's token dies elsewhere (here through the API, as another
	// tab or an operator would); the next call brings back the sign-in form.
	s.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: b.SessionToken()}).Expect(t, http.StatusNoContent)
	b.Click("#refresh")
	b.WaitVisible("#signin-view")
	b.WaitText("#signin-notice", "Your session has ended")
	if tok := b.SessionToken(); tok != "" {
		t.Errorf("the page kept a dead token")
	}

	// A reload keeps a live session: the token is in sessionStorage.
	signIn(b, "carol", testPassword)
	b.Open(s.URL + "/")
	b.WaitVisible("#tokens-view")
	b.WaitText("#whoami", "carol")
	b.ExpectNoProblems()
}

func TestWebPageShowsTheWaitWhenRateLimited(t *testing.T) {
	t.Parallel()
	// One failure locks the username for 15 minutes.
	s := NewServer(t, withLimits(1, 15*time.Minute, 1000))
	s.CreateUser(t, "dave", testPassword)
	b := NewBrowser(t)
	b.Open(s.URL + "/")
	b.Type("signin-username", "dave")
	b.Type("signin-password", "not the password\n")
	b.WaitText("#signin-password-error", "Wrong username or password.")

	// Locked: even the right password gets 429, and the page says how long
	// to wait, from Retry-After.
	b.Type("signin-password", testPassword+"\n")
	b.WaitText("#signin-error", "Too many attempts. Try again in 15 minutes.")
	if tok := b.SessionToken(); tok != "" {
		t.Errorf("a refused sign-in kept a token")
	}
	b.ExpectNoProblems()
}

// While every password-hash slot stays busy past the queue timeout, the
// sign-in form says the server is busy and when to try again, and signs in
// once a slot frees.
func TestWebPageSaysWhenPasswordChecksAreOverloaded(t *testing.T) {
	t.Parallel()
	gate := newSlotGate()
	hasher := gate.hasher(1, password.WithQueueTimeout(time.Millisecond))
	s := NewServer(t, WithConfig(noLoginLimits), WithApp(app.WithPasswordHasher(hasher)))
	gate.openAtCleanup(t)
	createUngated(t, s, "erin")
	held := make(chan *Response, 1)
	go func() { held <- s.Do(t, login("erin", testPassword)) }()
	waitFor(t, "a login to hold the one slot", func() bool { inside, _ := gate.counts(); return inside == 1 })

	b := NewBrowser(t)
	b.Open(s.URL + "/")
	b.Type("signin-username", "erin")
	b.Type("signin-password", testPassword+"\n")
	b.WaitText("#signin-error", "The server is busy checking other passwords. Try again in 1 second.")
	if tok := b.SessionToken(); tok != "" {
		t.Errorf("a refused sign-in kept a token")
	}
	gate.release()
	(<-held).Expect(t, http.StatusOK)
	b.Click("#signin-submit")
	b.WaitVisible("#tokens-view")
	b.ExpectNoProblems()
}

// signIn signs in on the page and waits for the list of tokens.
func signIn(b *Browser, username, password string) {
	b.t.Helper()
	b.Type("signin-username", username)
	b.Type("signin-password", password)
	b.Click("#signin-submit")
	b.WaitVisible("#tokens-view")
	b.WaitVisible(`#token-rows tr`)
	// The page goes on to load the activity and the profile: a test that
	// ends the session through the API before those calls are answered
	// would see the page sign out on its own.
	b.Until(`document.querySelector('#activity-page').textContent !== '' &&
  document.querySelector('#twofa-state').textContent !== ''`, "the activity and the profile to load")
}

// TestWebPageSaysHowToGetAnAccount: without registration the sign-in form
// sends a newcomer to the operator; with it, the page registers them and
// signs them in.
func TestWebPageSaysHowToGetAnAccount(t *testing.T) {
	t.Parallel()
	t.Run("registration off", func(t *testing.T) {
		t.Parallel()
		s := NewServer(t)
		b := NewBrowser(t)
		b.Open(s.URL + "/")
		b.WaitVisible("#signin-form")
		text := b.WaitText("#no-account", "tokenauth createuser")
		if !strings.Contains(text, "operator") {
			t.Errorf("the sign-in form says %q, want it to send a newcomer to the operator", text)
		}
		var offers bool
		b.Eval(`document.getElementById('register-open') !== null || document.getElementById('register-form') !== null`, &offers)
		if offers {
			t.Error("the page offers to register while registration is off")
		}
		b.ExpectNoProblems()
	})

	t.Run("registration on", func(t *testing.T) {
		t.Parallel()
		s := NewServer(t, WithConfig(func(c *cfgT) { c.AllowRegistration = true }))
		s.CreateUser(t, "taken", testPassword)
		b := NewBrowser(t)
		b.Open(s.URL + "/")
		var noAccount bool
		b.Eval(`document.getElementById('no-account') !== null`, &noAccount)
		if noAccount {
			t.Error("the page sends newcomers to the operator while anyone may register")
		}
		b.Click("#register-open")
		b.WaitVisible("#register-form")
		if visible := b.Value("signin-username"); visible != "" {
			t.Errorf("sign-in username: %q", visible)
		}

		// Mistakes are named under their fields: passwords that differ
		// (found on the page), then what the API refuses.
		b.Type("register-username", "taken")
		b.Type("register-email", "newcomer@example.com")
		b.Type("register-password", "a sturdy passphrase 7")
		b.Type("register-confirm", "a sturdy passphrase 8")
		b.Click("#register-submit")
		b.WaitText("#register-confirm-error", "The two passwords differ.")
		b.Type("register-confirm", "a sturdy passphrase 7")
		b.Type("register-email", "notanemail")
		b.Click("#register-submit")
		b.WaitText("#register-email-error", "Email must be a valid email address.")
		b.Type("register-email", "newcomer@example.com")
		b.Click("#register-submit")
		b.WaitText("#register-username-error", "This username is taken")
		if tok := b.SessionToken(); tok != "" {
			t.Errorf("a refused registration kept a token")
		}

		// A free username: the account is made and the page signs in with it.
		b.Type("register-username", "newcomer")
		b.Type("register-password", "a sturdy passphrase 7")
		b.Type("register-confirm", "a sturdy passphrase 7\n")
		b.WaitVisible("#tokens-view")
		b.WaitText("#whoami", "newcomer")
		b.WaitVisible(`#token-rows tr .badge`)
		profile := s.Do(t, Request{Path: "/api/profile/", Token: b.SessionToken()}).Expect(t, http.StatusOK).JSON(t)
		if profile["username"] != "newcomer" || profile["email"] != "newcomer@example.com" {
			t.Errorf("the page's session belongs to %v <%v>, want newcomer <newcomer@example.com>", profile["username"], profile["email"])
		}

		// Signed out, the page offers sign-in again, and back from the
		// registration form.
		b.Click("#signout")
		b.WaitVisible("#signin-form")
		b.Click("#register-open")
		b.WaitVisible("#register-form")
		b.Click("#register-close")
		b.WaitVisible("#signin-form")
		signIn(b, "newcomer", "a sturdy passphrase 7")
		b.ExpectNoProblems()
	})
}
