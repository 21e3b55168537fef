//go:build browser

package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"tokenauth/app"
	"tokenauth/clock"
	"tokenauth/config"
)

// A person creates a token limited to a network and a rate, sees where it
// was used, pauses and resumes it, widens its limits after confirming the
// password, and pages through the recent activity.
func TestWebPageManagesTokenPolicy(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, WithApp(app.WithClock(clk)), behindProxy(),
		WithConfig(func(c *config.Config) { c.ReauthMaxAge = 15 * time.Minute }))
	s.CreateUser(t, "alice", testPassword)
	b := NewBrowser(t)
	b.Open(s.URL + "/")
	b.Type("signin-username", "alice")
	b.Type("signin-password", testPassword+"\n")
	b.WaitVisible("#tokens-view")
	b.WaitVisible(`#activity-list li`)
	b.WaitText("#activity-list li:first-child", "Signed in")

	// Create a token limited to one network and 100 requests a minute.
	b.Type("create-name", "deploy")
	b.Type("create-ips", "203.0.113.0/24")
	b.Type("create-limit-requests", "100")
	b.Click("#create-submit")
	b.WaitVisible("#secret-panel")
	secret := b.Value("secret-value")
	if !strings.HasPrefix(secret, "tka_") {
		t.Fatalf("secret: got %q", secret)
	}
	b.Click("#secret-done")
	row := `#token-rows tr:first-child`
	b.WaitText(row, "Only from 203.0.113.0/24; 100 requests per minute")

	// It is used from inside its network and refused from outside.
	s.Do(t, from("/api/profile/", secret, "203.0.113.5")).Expect(t, http.StatusOK)
	s.Do(t, from("/api/profile/", secret, "198.51.100.1")).ExpectError(t, http.StatusForbidden, "ip_not_allowed")
	b.Click("#refresh")
	b.WaitText(row, "from 203.0.113.5")
	b.WaitText("#activity-list", "Token refused: address not allowed")

	// Pausing needs no password; the token is refused at once.
	b.Click(row + ` button[aria-label="Pause token deploy"]`)
	b.WaitText(row, "paused")
	s.Do(t, from("/api/profile/", secret, "203.0.113.5")).ExpectError(t, http.StatusUnauthorized, "invalid_token")

	// After a while, resuming asks for the password first.
	clk.Advance(16 * time.Minute)
	b.Click(row + ` button[aria-label="Resume token deploy"]`)
	b.WaitVisible("#reauth[open]")
	b.Type("reauth-password", "not the password\n")
	b.WaitText("#reauth-password-error", "Password")
	b.Type("reauth-password", testPassword+"\n")
	b.WaitGone("#reauth[open]")
	b.WaitText("#list-ok", "resumed")
	s.Do(t, from("/api/profile/", secret, "203.0.113.5")).Expect(t, http.StatusOK)
	if b.SessionToken() == "" {
		t.Fatal("asking for the password signed the page out")
	}

	// Widening the limits: the proof is still fresh, no dialog this time.
	b.Click(row + ` button[aria-label="Edit the limits of token deploy"]`)
	b.WaitVisible("#edit-panel")
	if got := b.Value("edit-ips"); got != "203.0.113.0/24" {
		t.Errorf("edit-ips: got %q", got)
	}
	b.Type("edit-ips", "")
	b.Type("edit-limit-requests", "")
	b.Click("#edit-submit")
	b.WaitText("#list-ok", "Limits of “deploy” saved.")
	b.Until(`!document.querySelector('#token-rows tr:first-child .limits')`, "the limits gone from the row")
	s.Do(t, from("/api/profile/", secret, "198.51.100.1")).Expect(t, http.StatusOK)

	// A bad range is named under its field.
	b.Click(row + ` button[aria-label="Edit the limits of token deploy"]`)
	b.Type("edit-ips", "10.0.0.0/33")
	b.Click("#edit-submit")
	b.WaitText("#edit-ips-error", "is not an IPv4 or IPv6 address or CIDR")
	b.Click("#edit-cancel")
	b.WaitGone("#edit-panel:not([hidden])")

	// The activity pages: ten events a page, newest first.
	for range 12 {
		s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": "wrong"}}).
			ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	}
	b.Click("#activity-refresh")
	b.WaitText("#activity-list li:first-child", "Failed sign-in")
	b.WaitText("#activity-page", "Page 1 of")
	b.Click("#activity-older")
	b.WaitText("#activity-page", "Page 2 of")
	b.Click("#activity-newer")
	b.WaitText("#activity-page", "Page 1 of")
	b.ExpectNoProblems()
}
