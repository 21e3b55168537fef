package tests

import (
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
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(http.MethodGet, bc.path, nil)
				if bc.token != "" {
					req.Header.Set("Authorization", "Bearer "+bc.token)
				}
				for pb.Next() {
					w := httptest.NewRecorder()
					s.Router.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("status %d: %s", w.Code, w.Body)
					}
				}
			})
		})
	}
}
