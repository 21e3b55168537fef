//go:build browser

package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// otherOriginPage serves a blank page from an origin of its own, for the
// browser to run cross-origin calls from.
func otherOriginPage(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><title>another origin</title><p>another origin</p>"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// crossOriginResult is what a fetch from the page saw.
type crossOriginResult struct {
	Status  int               `json:"status"`
	Body    map[string]any    `json:"body"`
	Headers map[string]string `json:"headers"`
	Error   string            `json:"error"`
}

// crossOriginFetch is a fetch from the page in the tab, as a web client
// on that origin would make it: with the Bearer header, so the browser
// sends a preflight first.
func crossOriginFetch(b *Browser, method, url, token string) crossOriginResult {
	b.t.Helper()
	var res crossOriginResult
	b.Eval(fmt.Sprintf(`(async () => {
  try {
    const r = await fetch(%q, {method: %q, headers: {Authorization: 'Bearer ' + %q}});
    const text = await r.text();
    const headers = {};
    for (const name of ['Token-Expires-At', 'WWW-Authenticate', 'X-Request-ID']) {
      headers[name] = r.headers.get(name) || '';
    }
    return {status: r.status, body: text ? JSON.parse(text) : null, headers, error: ''};
  } catch (e) {
    return {status: 0, body: null, headers: {}, error: e.name + ': ' + e.message};
  }
})()`, url, method, token), &res)
	return res
}

func TestBrowserCallsTheAPIOnlyFromAllowedOrigins(t *testing.T) {
	t.Parallel()
	allowed := otherOriginPage(t)
	notListed := otherOriginPage(t)
	s := NewServer(t, withCORS(allowed.URL))
	_, token := s.UserWithToken(t, "alice")
	b := NewBrowser(t)

	// From the listed origin: the preflight passes, the call goes through
	// with the Bearer header, and the exposed headers can be read.
	b.Open(allowed.URL + "/")
	res := crossOriginFetch(b, "GET", s.URL+"/api/tokens/", token)
	if res.Status != http.StatusOK || res.Error != "" {
		t.Fatalf("GET /api/tokens/ from %s: got %+v, want 200", allowed.URL, res)
	}
	if tokens, _ := res.Body["tokens"].([]any); len(tokens) != 1 {
		t.Errorf("tokens: got %v, want the one login token", res.Body["tokens"])
	}
	if res.Headers["Token-Expires-At"] == "" || res.Headers["X-Request-ID"] == "" {
		t.Errorf("exposed headers not readable from the page: %v", res.Headers)
	}
	expectPreflight(t, s, "/api/tokens/", http.StatusNoContent)

	// An error is readable too, with its code and why the token was refused.
	res = crossOriginFetch(b, "GET", s.URL+"/api/tokens/current/", "tka_not_a_real_token")
	if res.Status != http.StatusUnauthorized || res.Body["code"] != "invalid_token" ||
		!strings.Contains(res.Headers["WWW-Authenticate"], "invalid_token") {
		t.Errorf("a refused token from the listed origin: got %+v", res)
	}

	// DELETE needs its own preflight; revoking a token works across origins.
	doomed := s.Login(t, "alice", testPassword)
	var current struct {
		ID uint `json:"id"`
	}
	s.Do(t, Request{Path: "/api/tokens/current/", Token: doomed}).Expect(t, http.StatusOK).Decode(t, &current)
	res = crossOriginFetch(b, "DELETE", fmt.Sprintf("%s/api/tokens/%d/", s.URL, current.ID), token)
	if res.Status != http.StatusNoContent {
		t.Fatalf("DELETE from %s: got %+v, want 204", allowed.URL, res)
	}
	s.Do(t, Request{Path: "/api/tokens/current/", Token: doomed}).ExpectError(t, http.StatusUnauthorized, "invalid_token")

	// From an origin that is not listed, the browser refuses: the preflight
	// gets 403, the page sees only a network error, and the token lives.
	survivor := s.Login(t, "alice", testPassword)
	s.Do(t, Request{Path: "/api/tokens/current/", Token: survivor}).Expect(t, http.StatusOK).Decode(t, &current)
	b.Open(notListed.URL + "/")
	path := fmt.Sprintf("/api/tokens/%d/", current.ID)
	res = crossOriginFetch(b, "DELETE", s.URL+path, token)
	if res.Status != 0 || !strings.HasPrefix(res.Error, "TypeError") {
		t.Fatalf("a call from %s: got %+v, want the browser to block it", notListed.URL, res)
	}
	expectPreflight(t, s, path, http.StatusForbidden)
	s.Do(t, Request{Path: "/api/tokens/current/", Token: survivor}).Expect(t, http.StatusOK)
	b.ExpectNoProblems()
}

// expectPreflight checks in the service's request log that a preflight for
// path reached it and got status.
func expectPreflight(t *testing.T, s *Server, path string, status int) {
	t.Helper()
	for _, line := range strings.Split(s.Logs.String(), "\n") {
		var entry struct {
			Method string `json:"method"`
			Path   string `json:"path"`
			Status int    `json:"status"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil &&
			entry.Method == http.MethodOptions && entry.Path == path && entry.Status == status {
			return
		}
	}
	t.Errorf("no preflight for %s answered %d in the log:\n%s", path, status, s.Logs.String())
}
