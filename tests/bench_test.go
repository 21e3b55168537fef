package tests

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkRouter serves requests through the whole router, without the
// network: the unauthenticated /healthz (the framework's floor) next to the
// authenticated /api/profile/ with its token cached, so that the
// difference is the cost of authentication; and the forward-auth check,
// with the same cached token. Run with -benchmem.
func BenchmarkRouter(b *testing.B) {
	s := NewServer(b, withoutLogs())
	_, tok := s.UserWithToken(b, "alice")
	for _, bc := range []struct{ name, path, token string }{
		{"healthz", "/healthz", ""},
		{"profile", "/api/profile/", tok},
		{"check", "/api/auth/check?scope=profile:read", tok},
	} {
		b.Run(bc.name, func(b *testing.B) { getInParallel(b, s, bc.path, bc.token) })
	}
}

// BenchmarkTokenList lists the tokens of a user with the most tokens a
// user may hold (MAX_TOKENS_PER_USER) and of one with 10: the growth
// target of bench/run.sh, without the network. Run with -benchmem.
func BenchmarkTokenList(b *testing.B) {
	s := NewServer(b, withoutLogs())
	for _, n := range []int{10, s.Config.MaxTokensPerUser} {
		user := s.CreateUser(b, fmt.Sprintf("holder%d", n), testPassword)
		tok := s.IssueToken(b, user)
		for range n - 1 {
			s.IssueToken(b, user)
		}
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) { getInParallel(b, s, "/api/tokens/", tok) })
	}
}

// getInParallel GETs path through the router, with token when there is
// one, from every core at once, and fails on any answer but 200.
func getInParallel(b *testing.B, s *Server, path, token string) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for pb.Next() {
			w := httptest.NewRecorder()
			s.Router.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}
