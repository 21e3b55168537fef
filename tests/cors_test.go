package tests

import (
	"net/http"
	"strings"
	"testing"

	"tokenauth/config"
	"tokenauth/models"
)

const allowedOrigin = "https://app.example.com"

func withCORS(origins ...string) Option {
	return WithConfig(func(c *config.Config) { c.CORSAllowedOrigins = origins })
}

// preflight is the request a browser sends before a cross-origin call that
// carries the Authorization header.
func preflight(origin, path, method string) Request {
	return Request{Method: "OPTIONS", Path: path, Header: map[string]string{
		"Origin":                         origin,
		"Access-Control-Request-Method":  method,
		"Access-Control-Request-Headers": "authorization,content-type",
	}}
}

// doCrossOrigin sends r without holding it to docs/openapi.yaml. The CORS
// layer answers preflights and refuses unlisted origins before any route
// runs, alike on every route; the spec states that rule once among its
// conventions rather than on every operation.
func (s *Server) doCrossOrigin(t testing.TB, r Request) *Response {
	t.Helper()
	_, _, resp := s.send(t, r)
	return resp
}

func headerList(h http.Header, name string) []string {
	var out []string
	for _, v := range h.Values(name) {
		for _, item := range strings.Split(v, ",") {
			out = append(out, strings.ToLower(strings.TrimSpace(item)))
		}
	}
	return out
}

func expectListed(t *testing.T, h http.Header, name string, want ...string) {
	t.Helper()
	got := headerList(h, name)
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == strings.ToLower(w)
		}
		if !found {
			t.Errorf("%s: got %q, want it to list %s", name, h.Values(name), w)
		}
	}
}

func TestCORSPreflightForAnAllowedOrigin(t *testing.T) {
	t.Parallel()
	// The setting is matched the way browsers spell an origin.
	s := NewServer(t, withCORS("https://App.Example.com/", "http://localhost:3000"))
	tests := []struct{ path, method string }{
		{"/api/tokens/", "GET"},
		{"/api/tokens/", "POST"},
		{"/api/tokens/7/", "DELETE"},
		{"/api/tokens/7", "PATCH"},
		{"/api/login/", "POST"},
		{"/api/logout-all/", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp := s.doCrossOrigin(t, preflight(allowedOrigin, tt.path, tt.method)).Expect(t, http.StatusNoContent)
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != allowedOrigin {
				t.Errorf("Access-Control-Allow-Origin: got %q, want %q", got, allowedOrigin)
			}
			expectListed(t, resp.Header, "Access-Control-Allow-Methods", tt.method)
			expectListed(t, resp.Header, "Access-Control-Allow-Headers", "Authorization", "Content-Type")
			expectListed(t, resp.Header, "Vary", "Origin")
			if got := resp.Header.Get("Access-Control-Max-Age"); got != "7200" {
				t.Errorf("Access-Control-Max-Age: got %q, want 7200", got)
			}
			if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
				t.Errorf("Access-Control-Allow-Credentials: got %q, want none (no cookies)", got)
			}
		})
	}
}

func TestCORSRequestsFromAnAllowedOrigin(t *testing.T) {
	t.Parallel()
	s := NewServer(t, withCORS(allowedOrigin))
	_, token := s.UserWithToken(t, "alice")
	origin := map[string]string{"Origin": allowedOrigin}

	resp := s.Do(t, Request{Path: "/api/tokens/", Token: token, Header: origin}).Expect(t, http.StatusOK)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != allowedOrigin {
		t.Errorf("Access-Control-Allow-Origin: got %q, want %q", got, allowedOrigin)
	}
	expectListed(t, resp.Header, "Access-Control-Expose-Headers", "Retry-After", "Token-Expires-At", "WWW-Authenticate", "X-Request-ID")

	// Errors are readable too, so a page can show why.
	resp = s.Do(t, Request{Path: "/api/tokens/", Header: origin})
	resp.ExpectError(t, http.StatusUnauthorized, "authentication_required")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != allowedOrigin {
		t.Errorf("Access-Control-Allow-Origin on an error: got %q, want %q", got, allowedOrigin)
	}
}

func TestCORSRefusesOtherOrigins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		origins []string
		origin  string
	}{
		{"not listed", []string{allowedOrigin}, "https://evil.example.com"},
		{"another port", []string{allowedOrigin}, "https://app.example.com:8443"},
		{"another scheme", []string{allowedOrigin}, "http://app.example.com"},
		{"a suffix of the listed origin", []string{allowedOrigin}, "https://app.example.com.evil.example"},
		{"null (sandboxed or file pages)", []string{allowedOrigin}, "null"},
		{"nothing listed", nil, allowedOrigin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(t, withCORS(tt.origins...))
			user := s.CreateUser(t, "alice", testPassword)

			resp := s.doCrossOrigin(t, preflight(tt.origin, "/api/tokens/", "GET"))
			resp.ExpectError(t, http.StatusForbidden, "origin_not_allowed")
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Errorf("Access-Control-Allow-Origin: got %q, want none", got)
			}

			// A request a browser sends without a preflight (a "simple" POST)
			// is refused before it does anything: no login, no token.
			resp = s.doCrossOrigin(t, Request{Method: "POST", Path: "/api/login/", Header: map[string]string{"Origin": tt.origin},
				Body: map[string]string{"username": "alice", "password": testPassword}})
			resp.ExpectError(t, http.StatusForbidden, "origin_not_allowed")
			var count int64
			if err := s.DB.Model(&models.APIToken{}).Where("user_id = ?", user.ID).Count(&count).Error; err != nil {
				t.Fatal(err)
			}
			if count != 0 {
				t.Errorf("a refused cross-origin login issued %d tokens", count)
			}
		})
	}
}

func TestCORSLeavesNonBrowserAndSameOriginRequestsAlone(t *testing.T) {
	t.Parallel()
	s := NewServer(t) // no origins listed
	_, token := s.UserWithToken(t, "alice")
	tests := []struct {
		name   string
		header map[string]string
	}{
		{"no Origin header", nil},
		{"the service's own origin", map[string]string{"Origin": s.URL}},
		// Behind a proxy that rewrites Host, the browser still says so.
		{"same-origin by Sec-Fetch-Site", map[string]string{"Origin": "https://tokens.example.com", "Sec-Fetch-Site": "same-origin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: token, Header: tt.header,
				Body: map[string]any{"name": "ci"}}).Expect(t, http.StatusCreated)
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Errorf("Access-Control-Allow-Origin: got %q, want none", got)
			}
		})
	}
	// A cross-site page cannot claim to be same-origin by its Origin alone.
	s.doCrossOrigin(t, Request{Path: "/api/tokens/", Token: token, Header: map[string]string{
		"Origin": "https://evil.example.com", "Sec-Fetch-Site": "cross-site"}}).ExpectError(t, http.StatusForbidden, "origin_not_allowed")
}
