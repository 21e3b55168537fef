package tests

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestScopesOfTokensAreThoseOfTheRoutes checks the catalogue that token
// creation validates against: every scope a route checks, and no other.
func TestScopesOfTokensAreThoseOfTheRoutes(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, token := s.UserWithToken(t, "alice")
	for _, scope := range []string{"profile:read", "profile:write", "articles:read", "articles:write", "*"} {
		body := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: token,
			Body: map[string]any{"name": scope, "scopes": []string{scope}}}).Expect(t, http.StatusCreated).JSON(t)
		if got, _ := body["scopes"].([]any); !slices.Equal(got, []any{scope}) {
			t.Errorf("scopes: got %v, want [%s]", got, scope)
		}
	}
	body := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: token,
		Body: map[string]any{"name": "x", "scopes": []string{"articles:delete"}}}).ExpectError(t, http.StatusBadRequest, "validation_failed")
	msg := Field(t, body, "scopes")
	if !strings.Contains(msg, "articles:delete") || !strings.Contains(msg, "*, articles:read, articles:write, profile:read, profile:write") {
		t.Errorf("fields.scopes: got %q, want it to name the scope and list the known ones", msg)
	}
}
