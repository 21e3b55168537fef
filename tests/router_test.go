package tests

import (
	"net/http"
	"testing"
)

func TestPathsWorkWithAndWithoutTrailingSlash(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, token := s.UserWithToken(t, "alice")
	for _, path := range []string{"/api/profile", "/api/profile/", "/api/tokens", "/api/tokens/", "/api/tokens/current", "/api/tokens/current/", "/healthz", "/healthz/"} {
		resp := s.Do(t, Request{Path: path, Token: token})
		if resp.Status != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200 without a redirect; body %s", path, resp.Status, resp.Body)
		}
	}
}

func TestUnknownRoutesAreJSON404(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	for _, path := range []string{"/nope", "/api/", "/api/profile/extra", "/api//profile", "/api/tokens/1/nope/", "/%2e%2e/etc/passwd"} {
		resp := s.Do(t, Request{Path: path, OffSpec: true})
		resp.ExpectError(t, http.StatusNotFound, "not_found")
		if got := resp.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", path, got)
		}
	}
}

func TestMethodNotAllowedNamesTheAllowedMethods(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	resp := s.Do(t, Request{Method: "PUT", Path: "/api/profile/", OffSpec: true})
	resp.ExpectError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	if got := resp.Header.Get("Allow"); got != "GET, PATCH" && got != "PATCH, GET" {
		t.Errorf("Allow: got %q, want GET and PATCH", got)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	if got := s.Do(t, Request{Path: "/healthz"}).Expect(t, http.StatusOK).JSON(t)["status"]; got != "ok" {
		t.Errorf("healthz status: %v", got)
	}
	if got := s.Do(t, Request{Path: "/readyz"}).Expect(t, http.StatusOK).JSON(t)["status"]; got != "ready" {
		t.Errorf("readyz status: %v", got)
	}
	sqlDB, err := s.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.Close()
	s.Do(t, Request{Path: "/readyz"}).ExpectError(t, http.StatusServiceUnavailable, "unavailable")
	s.Do(t, Request{Path: "/healthz"}).Expect(t, http.StatusOK)
}
