//go:build browser

package tests

import (
	"net/http"
	"testing"
)

// A person makes a token for a service behind the proxy on the page: the
// page offers the scopes of EXTRA_SCOPES, and the token it shows passes
// the forward-auth check for that scope and no other.
func TestWebPageMakesATokenForAServiceBehindTheProxy(t *testing.T) {
	t.Parallel()
	s := NewServer(t, withExtraScopes("orders:read", "orders:write"))
	s.CreateUser(t, "alice", testPassword)
	b := NewBrowser(t)
	b.Open(s.URL + "/")
	b.Type("signin-username", "alice")
	b.Type("signin-password", testPassword+"\n")
	b.WaitVisible("#tokens-view")

	b.Type("create-name", "orders worker")
	b.Click("#create-limited")
	b.Click(`input[name=scopes][value="orders:read"]`)
	b.Click("#create-submit")
	b.WaitVisible("#secret-panel")
	secret := b.Value("secret-value")

	resp := s.Do(t, Request{Path: "/api/auth/check?scope=orders:read", Token: secret}).Expect(t, http.StatusOK)
	if got := resp.Header.Get("X-Auth-Scopes"); got != "orders:read" {
		t.Errorf("X-Auth-Scopes: got %q, want orders:read", got)
	}
	s.Do(t, Request{Path: "/api/auth/check?scope=orders:write", Token: secret}).ExpectError(t, http.StatusForbidden, "insufficient_scope")
	s.Do(t, Request{Path: "/api/profile/", Token: secret}).ExpectError(t, http.StatusForbidden, "insufficient_scope")
}
