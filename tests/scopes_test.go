package tests

import (
	"bytes"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
)

// scopes returns the scopes the routes of the service's spec require
// (x-required-scope), but "*", sorted: what the catalogue that token
// creation validates against must hold, taken from the contract and not
// from a list a test keeps.
func (s *Server) scopes(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, item := range s.contract.doc.Paths.Map() {
		for _, op := range item.Operations() {
			if scope, _ := op.Extensions["x-required-scope"].(string); scope != "" && scope != "*" && !slices.Contains(out, scope) {
				out = append(out, scope)
			}
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		t.Fatal("the spec requires no scope at all")
	}
	return out
}

// withSpecPaths returns spec with entries added to its paths, as a
// resource adds its own to docs/openapi.yaml.
func withSpecPaths(t testing.TB, spec []byte, paths string) []byte {
	t.Helper()
	if paths == "" {
		return spec
	}
	before, after, ok := bytes.Cut(spec, []byte("\npaths:\n"))
	if !ok {
		t.Fatal("the spec has no paths")
	}
	return slices.Concat(before, []byte("\npaths:\n"), []byte(paths), after)
}

// TestScopesOfTokensAreThoseOfTheRoutes checks the catalogue that token
// creation validates against: every scope a route checks, and no other.
func TestScopesOfTokensAreThoseOfTheRoutes(t *testing.T) {
	t.Parallel()
	checkScopeCatalogue(t, NewServer(t))
}

func checkScopeCatalogue(t *testing.T, s *Server) {
	_, token := s.UserWithToken(t, "catalogue")
	scopes := s.scopes(t)
	for _, scope := range append([]string{"*"}, scopes...) {
		body := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: token,
			Body: map[string]any{"name": scope, "scopes": []string{scope}}}).Expect(t, http.StatusCreated).JSON(t)
		if got, _ := body["scopes"].([]any); !slices.Equal(got, []any{scope}) {
			t.Errorf("scopes: got %v, want [%s]", got, scope)
		}
	}
	body := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: token,
		Body: map[string]any{"name": "x", "scopes": []string{"nothing:here"}}}).ExpectError(t, http.StatusBadRequest, "validation_failed")
	msg := Field(t, body, "scopes")
	if known := "*, " + strings.Join(scopes, ", "); !strings.Contains(msg, "nothing:here") || !strings.HasSuffix(msg, known) {
		t.Errorf("fields.scopes: got %q, want it to name the scope and list the known ones (%s)", msg, known)
	}
}

// The service's own spec is docs/openapi.yaml as written: the scopes the
// file lists are exactly those its routes check, so tools that read the
// file see what the service serves.
func TestServedSpecIsTheFile(t *testing.T) {
	t.Parallel()
	file, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(t)
	if served := s.Do(t, Request{Path: "/api/openapi.yaml"}).Expect(t, http.StatusOK).Body; !bytes.Equal(served, file) {
		t.Errorf("the served spec differs from docs/openapi.yaml: list the scopes %q in components.schemas.Scope", s.scopes(t))
	}
}
