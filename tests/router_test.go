package tests

import (
	"net/http"
	"slices"
	"strings"
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
	// HEAD is allowed wherever GET is, and only there.
	for _, tc := range []struct{ method, path, allow string }{
		{"PUT", "/api/profile/", "GET, HEAD, PATCH"},
		{"DELETE", "/api/profile", "GET, HEAD, PATCH"},
		{"HEAD", "/api/login/", "POST"},
		{"GET", "/api/tokens/1/rotate/", "POST"},
		{"POST", "/healthz", "GET, HEAD"},
		{"PUT", "/", "GET, HEAD"},
		{"DELETE", "/static/app.js", "GET, HEAD"},
	} {
		resp := s.Do(t, Request{Method: tc.method, Path: tc.path, OffSpec: true})
		if resp.Status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: got %d, want 405", tc.method, tc.path, resp.Status)
			continue
		}
		if tc.method != "HEAD" {
			resp.ExpectError(t, http.StatusMethodNotAllowed, "method_not_allowed")
		}
		got := strings.Split(resp.Header.Get("Allow"), ", ")
		want := strings.Split(tc.allow, ", ")
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s %s: Allow: got %q, want %q", tc.method, tc.path, resp.Header.Get("Allow"), tc.allow)
		}
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
