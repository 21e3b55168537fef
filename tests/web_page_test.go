package tests

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"tokenauth/web"
)

func TestWebPageIsServedWithItsOwnPolicy(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	resp := s.Do(t, Request{Path: "/"}).Expect(t, http.StatusOK)
	for name, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": web.ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-cache",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, directive := range []string{"script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "require-trusted-types-for 'script'"} {
		if !strings.Contains(csp, directive) {
			t.Errorf("page CSP %q lacks %q", csp, directive)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("page CSP allows unsafe code: %q", csp)
	}

	// No inline script or style, and nothing from another origin.
	html := string(resp.Body)
	if regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]`).MatchString(html) || strings.Contains(html, "<style") || strings.Contains(html, " style=") {
		t.Errorf("the page has inline script or style")
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(html, -1)
	if len(refs) == 0 {
		t.Fatal("the page references no asset")
	}
	for _, ref := range refs {
		path := ref[1]
		if strings.HasPrefix(path, "#") {
			continue
		}
		if !strings.HasPrefix(path, "/static/") {
			t.Errorf("the page loads %q, not one of its own assets", path)
			continue
		}
		asset := s.Do(t, Request{Path: path}).Expect(t, http.StatusOK)
		if got := asset.Header.Get("Content-Security-Policy"); got != web.ContentSecurityPolicy {
			t.Errorf("%s CSP: got %q", path, got)
		}
		if asset.Header.Get("X-Content-Type-Options") != "nosniff" || asset.Header.Get("Content-Type") == "" {
			t.Errorf("%s: Content-Type %q, X-Content-Type-Options %q", path,
				asset.Header.Get("Content-Type"), asset.Header.Get("X-Content-Type-Options"))
		}
	}

	checkPageOffersTheScopes(t, s)
}

// checkPageOffersTheScopes checks that the page offers the scopes the
// routes check, all and only those.
func checkPageOffersTheScopes(t *testing.T, s *Server) {
	html := string(s.Do(t, Request{Path: "/"}).Expect(t, http.StatusOK).Body)
	var offered []string
	for _, m := range regexp.MustCompile(`name="scopes" value="([^"]*)"`).FindAllStringSubmatch(html, -1) {
		offered = append(offered, m[1])
	}
	if want := s.scopes(t); !slices.Equal(offered, want) {
		t.Errorf("scopes offered: got %v, want %v", offered, want)
	}
}

func TestWebPageAssets(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	tests := []struct {
		path, contentType string
	}{
		{"/static/app.js", "text/javascript; charset=utf-8"},
		{"/static/app.css", "text/css; charset=utf-8"},
		{"/static/favicon.svg", "image/svg+xml"},
	}
	for _, tt := range tests {
		resp := s.Do(t, Request{Path: tt.path}).Expect(t, http.StatusOK)
		if got := resp.Header.Get("Content-Type"); got != tt.contentType {
			t.Errorf("%s Content-Type: got %q, want %q", tt.path, got, tt.contentType)
		}
		// A browser that has the file revalidates it for nothing.
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("%s has no ETag", tt.path)
		}
		again := s.Do(t, Request{Path: tt.path, Header: map[string]string{"If-None-Match": etag}})
		if again.Status != http.StatusNotModified || len(again.Body) != 0 {
			t.Errorf("%s with its ETag: got %d with %d bytes, want 304 with none", tt.path, again.Status, len(again.Body))
		}
	}

	// The template is not an asset, and neither is anything else.
	for _, path := range []string{"/static/index.html", "/static/nope.js"} {
		s.Do(t, Request{Path: path}).ExpectError(t, http.StatusNotFound, "not_found")
	}
	for _, path := range []string{"/static/", "/static/../go.mod"} {
		s.Do(t, Request{Path: path, OffSpec: true}).ExpectError(t, http.StatusNotFound, "not_found")
	}
	s.Do(t, Request{Method: "POST", Path: "/", OffSpec: true}).ExpectError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	// The API keeps its own, stricter policy.
	if got := s.Do(t, Request{Path: "/healthz"}).Header.Get("Content-Security-Policy"); got != "default-src 'none'; frame-ancestors 'none'" {
		t.Errorf("API CSP: got %q", got)
	}
}

// TestWebPageSaysWhereAccountsComeFrom checks the page as served: the
// sign-in form sends a newcomer to the operator, or offers the
// registration form when anyone may register (the browser test uses it).
func TestWebPageSaysWhereAccountsComeFrom(t *testing.T) {
	t.Parallel()
	for _, open := range []bool{false, true} {
		s := NewServer(t, WithConfig(func(c *cfgT) { c.AllowRegistration = open }))
		html := string(s.Do(t, Request{Path: "/"}).Expect(t, http.StatusOK).Body)
		operator := strings.Contains(html, `id="no-account"`) && strings.Contains(html, "tokenauth createuser")
		form := strings.Contains(html, `id="register-open"`) && strings.Contains(html, `id="register-form"`)
		if operator == open || form != open {
			t.Errorf("ALLOW_REGISTRATION=%t: the page sends newcomers to the operator: %t, offers to register: %t", open, operator, form)
		}
	}
}
