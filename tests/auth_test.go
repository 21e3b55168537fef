package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"tokenauth/models"
)

func TestAuthorizationHeader(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, token := s.UserWithToken(t, "alice")
	flipped := token[:20] + string(token[20]^1) + token[21:] // breaks the checksum
	unknown := mustIssueUnknownLookingToken(t)

	cases := []struct {
		name       string
		header     string
		wantStatus int
		wantCode   string
		wantAuthn  string // expected WWW-Authenticate, "" to skip
	}{
		{"no header", "", 401, "authentication_required", `Bearer realm="api"`},
		{"basic scheme", "Basic YWxpY2U6cGFzcw==", 401, "authentication_required", `Bearer realm="api"`},
		{"token scheme", "Token " + token, 401, "authentication_required", ""},
		{"bearer without token", "Bearer", 400, "invalid_request", `Bearer realm="api", error="invalid_request"`},
		{"bearer with blank token", "Bearer   ", 400, "invalid_request", ""},
		{"bearer with two tokens", "Bearer " + token + " " + token, 400, "invalid_request", ""},
		{"malformed token", "Bearer not-a-token", 401, "invalid_token", `Bearer realm="api", error="invalid_token"`},
		{"bad checksum", "Bearer " + flipped, 401, "invalid_token", ""},
		{"well-formed but unknown", "Bearer " + unknown, 401, "invalid_token", ""},
		{"SQL as token", "Bearer ' OR 1=1 --", 400, "invalid_request", ""},
		{"unicode token", "Bearer tka_ünïcødé", 401, "invalid_token", ""},
		{"valid", "Bearer " + token, 200, "", ""},
		{"scheme in lower case", "bearer " + token, 200, "", ""},
		{"scheme in upper case", "BEARER " + token, 200, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{Path: "/api/profile/"}
			if tc.header != "" {
				req.Header = map[string]string{"Authorization": tc.header}
			}
			resp := s.Do(t, req)
			if tc.wantCode == "" {
				resp.Expect(t, tc.wantStatus)
				return
			}
			resp.ExpectError(t, tc.wantStatus, tc.wantCode)
			if tc.wantAuthn != "" {
				if got := resp.Header.Get("WWW-Authenticate"); got != tc.wantAuthn {
					t.Errorf("WWW-Authenticate: got %q, want %q", got, tc.wantAuthn)
				}
			}
		})
	}
}

// mustIssueUnknownLookingToken returns a token in the right format that no
// database holds.
func mustIssueUnknownLookingToken(t *testing.T) string {
	t.Helper()
	s := NewServer(t)
	_, token := s.UserWithToken(t, "elsewhere")
	return token
}

func TestTwoAuthorizationHeadersAreRefused(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, token := s.UserWithToken(t, "alice")
	req, err := http.NewRequest("GET", s.URL+"/api/profile/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Authorization", "Bearer "+token)
	req.Header.Add("Authorization", "Bearer "+token)
	if got := s.statusOf(t, req); got != http.StatusBadRequest {
		t.Errorf("status: got %d, want 400", got)
	}
}

func TestAuthenticatedResponsesAreNotStored(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, token := s.UserWithToken(t, "alice")
	resp := s.Do(t, Request{Path: "/api/profile", Token: token}).Expect(t, http.StatusOK)
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}
	expires, err := time.Parse(time.RFC3339, resp.Header.Get("Token-Expires-At"))
	if err != nil {
		t.Fatalf("Token-Expires-At: %v", err)
	}
	if d := time.Until(expires) - s.Config.TokenTTL; d < -time.Minute || d > time.Minute {
		t.Errorf("Token-Expires-At %v is not about TOKEN_TTL from now", expires)
	}
}

func TestExpiredRevokedAndDisabledTokensAreRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		spoil func(t *testing.T, s *Server, u *models.User)
	}{
		{"expired", func(t *testing.T, s *Server, u *models.User) {
			exec(t, s, "UPDATE api_tokens SET expires_at = ? WHERE user_id = ?", time.Now().UTC().Add(-time.Second), u.ID)
		}},
		{"revoked", func(t *testing.T, s *Server, u *models.User) {
			exec(t, s, "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ?", time.Now().UTC(), u.ID)
		}},
		{"idle", func(t *testing.T, s *Server, u *models.User) {
			old := time.Now().UTC().Add(-s.Config.TokenIdleTimeout - time.Hour)
			exec(t, s, "UPDATE api_tokens SET last_used_at = ?, created_at = ? WHERE user_id = ?", old, old, u.ID)
		}},
		{"user deactivated", func(t *testing.T, s *Server, u *models.User) {
			exec(t, s, "UPDATE users SET is_active = ? WHERE id = ?", false, u.ID)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The cache is off so that the database change is seen at once;
			// changes made through the API invalidate the cache themselves
			// (see the lifecycle tests).
			s := NewServer(t, WithConfig(func(c *cfgT) { c.TokenCacheTTL = 0 }))
			u, token := s.UserWithToken(t, "alice")
			s.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, http.StatusOK)
			// Write the use down first, so that what the test writes next
			// is all this instance knows.
			if err := s.Resolver.FlushUsage(t.Context()); err != nil {
				t.Fatal(err)
			}
			tc.spoil(t, s, u)
			resp := s.Do(t, Request{Path: "/api/profile/", Token: token})
			resp.ExpectError(t, http.StatusUnauthorized, "invalid_token")
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate: got %q", got)
			}
		})
	}
}

func TestLastUsedIsRecordedBehind(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, token := s.UserWithToken(t, "alice")
	s.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, http.StatusOK)

	var tok models.APIToken
	if err := s.DB.Where("key_hash = ?", models.HashToken(token)).Take(&tok).Error; err != nil {
		t.Fatal(err)
	}
	if tok.LastUsedAt != nil {
		t.Fatalf("last_used_at written on the request itself: %v", tok.LastUsedAt)
	}
	// The API already knows of the use before it is written.
	var current struct {
		LastUsedAt *time.Time `json:"last_used_at"`
	}
	s.Do(t, Request{Path: "/api/tokens/current/", Token: token}).Expect(t, http.StatusOK).Decode(t, &current)
	if current.LastUsedAt == nil {
		t.Fatalf("GET /api/tokens/current/ shows no last use")
	}
	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.DB.Where("key_hash = ?", models.HashToken(token)).Take(&tok).Error; err != nil {
		t.Fatal(err)
	}
	if tok.LastUsedAt == nil || time.Since(*tok.LastUsedAt) > time.Minute {
		t.Fatalf("last_used_at after the flush: got %v, want about now", tok.LastUsedAt)
	}
	if s.Resolver.Stats().PendingUses != 0 {
		t.Errorf("pending uses after the flush: %d", s.Resolver.Stats().PendingUses)
	}
}

func exec(t *testing.T, s *Server, sql string, args ...any) {
	t.Helper()
	if err := s.DB.Exec(sql, args...).Error; err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
