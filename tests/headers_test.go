package tests

import (
	"testing"

	"github.com/gin-gonic/gin"

	"tokenauth/config"
)

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	t.Parallel()
	s := NewServer(t,
		WithConfig(func(c *config.Config) { c.LoginIPPerMinute = 1; c.MaxBodyBytes = 64 }),
		WithRoutes(func(r *gin.Engine) {
			r.GET("/test/panic", func(*gin.Context) { panic("boom") })
		}))
	_, token := s.UserWithToken(t, "alice") // spends the login budget
	cases := []struct {
		name          string
		req           Request
		wantStatus    int
		authenticated bool
	}{
		{"liveness", Request{Path: "/healthz"}, 200, false},
		{"authenticated read", Request{Path: "/api/profile/", Token: token}, 200, true},
		{"authenticated error", Request{Method: "POST", Path: "/api/tokens/", Token: token, Body: "[]"}, 400, true},
		{"no token", Request{Path: "/api/profile/"}, 401, false},
		{"unknown token", Request{Path: "/api/profile/", Token: "tka_nope"}, 401, false},
		{"no route", Request{Path: "/nowhere", OffSpec: true}, 404, false},
		{"wrong method", Request{Method: "DELETE", Path: "/api/login/", OffSpec: true}, 405, false},
		{"body too large", Request{Method: "POST", Path: "/api/tokens/", Token: token, Body: `{"name":"` + string(make([]byte, 100)) + `"}`}, 413, false},
		{"rate limited", Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": testPassword}}, 429, false},
		{"token in the URL", Request{Path: "/healthz?access_token=x"}, 400, false},
		{"panic", Request{Path: "/test/panic", OffSpec: true}, 500, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.Do(t, tc.req).Expect(t, tc.wantStatus)
			want := map[string]string{
				"X-Content-Type-Options":  "nosniff",
				"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
				"Referrer-Policy":         "no-referrer",
				"Content-Type":            "application/json; charset=utf-8",
			}
			if tc.authenticated {
				want["Cache-Control"] = "no-store"
			}
			for name, value := range want {
				if got := resp.Header.Get(name); got != value {
					t.Errorf("%s: got %q, want %q", name, got, value)
				}
			}
			if resp.Header.Get("X-Request-ID") == "" {
				t.Error("no X-Request-ID")
			}
		})
	}
}
