package tests

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestHeadAnswersAsGet sends each GET and then the same request as HEAD:
// the HEAD gets the GET's status and headers, and no body on the wire
// (Server.Do reads a HEAD answer off the connection itself).
func TestHeadAnswersAsGet(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	user, token := s.UserWithToken(t, "alice")
	narrow := s.IssueToken(t, user, "articles:read")
	etag := s.Do(t, Request{Path: "/static/app.js"}).Expect(t, http.StatusOK).Header.Get("ETag")

	cases := []struct {
		name   string
		req    Request
		status int
	}{
		{"liveness", Request{Path: "/healthz"}, http.StatusOK},
		{"liveness with the slash", Request{Path: "/healthz/"}, http.StatusOK},
		{"readiness", Request{Path: "/readyz"}, http.StatusOK},
		{"the spec", Request{Path: "/api/openapi.yaml"}, http.StatusOK},
		{"the web page", Request{Path: "/"}, http.StatusOK},
		{"a script of the page", Request{Path: "/static/app.js"}, http.StatusOK},
		{"an unchanged script", Request{Path: "/static/app.js", Header: map[string]string{"If-None-Match": etag}}, http.StatusNotModified},
		{"an asset that does not exist", Request{Path: "/static/nope.js"}, http.StatusNotFound},
		{"an authenticated route", Request{Path: "/api/profile/", Token: token}, http.StatusOK},
		{"an authenticated route without the slash", Request{Path: "/api/tokens/current", Token: token}, http.StatusOK},
		{"a list", Request{Path: "/api/articles/?page=1", Token: token}, http.StatusOK},
		{"a bad query", Request{Path: "/api/articles/?page=0", Token: token}, http.StatusBadRequest},
		{"no token", Request{Path: "/api/profile/"}, http.StatusUnauthorized},
		{"an unknown token", Request{Path: "/api/tokens/", Token: "tka_" + strings.Repeat("x", 49)}, http.StatusUnauthorized},
		{"a token without the scope", Request{Path: "/api/profile/", Token: narrow}, http.StatusForbidden},
		{"an article that does not exist", Request{Path: "/api/articles/999/", Token: token}, http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			get := s.Do(t, tc.req).Expect(t, tc.status)
			headReq := tc.req
			headReq.Method = http.MethodHead
			head := s.Do(t, headReq)
			if head.Status != get.Status {
				t.Fatalf("HEAD %s: got %d, want %d as GET answered", tc.req.Path, head.Status, get.Status)
			}
			if len(head.Body) != 0 {
				t.Errorf("HEAD %s: %d bytes of body on the wire, want none: %.100q", tc.req.Path, len(head.Body), head.Body)
			}
			if got, want := sameHeaders(head.Header), sameHeaders(get.Header); !slices.Equal(got, want) {
				t.Errorf("HEAD %s: headers\n got %q\nwant %q (as GET)", tc.req.Path, got, want)
			}
			// The length of the body it stands for, when GET said it.
			if want := get.Header.Get("Content-Length"); want != "" && head.Header.Get("Content-Length") != want {
				t.Errorf("HEAD %s: Content-Length %q, want %q as GET", tc.req.Path, head.Header.Get("Content-Length"), want)
			}
			if head.Header.Get("X-Request-Id") == "" {
				t.Errorf("HEAD %s: no X-Request-ID", tc.req.Path)
			}
		})
	}
}

// sameHeaders lists the headers that a HEAD answer and its GET's share,
// as "Name: value" lines: all but the ones that differ between any two
// requests (Date, X-Request-ID) and the body's framing, which the test
// compares on its own.
func sameHeaders(h http.Header) []string {
	var lines []string
	for name, values := range h {
		switch name {
		case "Date", "X-Request-Id", "Content-Length":
			continue
		}
		for _, v := range values {
			lines = append(lines, name+": "+v)
		}
	}
	slices.Sort(lines)
	return lines
}
