package models

import (
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
)

// ScopeAll is the scope of a full-access token, such as a login token. Only
// a token with it may manage tokens, change the password or log out
// everywhere, so a leaked narrow token cannot mint a wider one.
const ScopeAll = "*"

// KnownScopes is the catalogue of scopes a token may be limited to. A route
// needs one of them (or ScopeAll); a new resource adds its own here.
var KnownScopes = []string{
	"profile:read",
	"profile:write",
	"articles:read",
	"articles:write",
}

// Scopes is a token's set of scopes, stored as one space-separated column.
type Scopes []string

// Allows tells whether the scopes grant scope.
func (s Scopes) Allows(scope string) bool {
	return slices.Contains(s, ScopeAll) || slices.Contains(s, scope)
}

// Value stores the scopes as a space-separated string.
func (s Scopes) Value() (driver.Value, error) {
	return strings.Join(s, " "), nil
}

// Scan reads a space-separated string of scopes.
func (s *Scopes) Scan(src any) error {
	var text string
	switch v := src.(type) {
	case string:
		text = v
	case []byte:
		text = string(v)
	case nil:
	default:
		return fmt.Errorf("scopes: cannot scan %T", src)
	}
	*s = strings.Fields(text)
	return nil
}

// NormalizeScopes checks requested scopes against the catalogue and returns
// them sorted, without duplicates. No scopes at all means ScopeAll, as for a
// login token.
func NormalizeScopes(requested []string) (Scopes, error) {
	if len(requested) == 0 {
		return Scopes{ScopeAll}, nil
	}
	out := make(Scopes, 0, len(requested))
	for _, s := range requested {
		if s != ScopeAll && !slices.Contains(KnownScopes, s) {
			return nil, invalid("scopes", fmt.Sprintf("unknown scope %q; known scopes are *, %s",
				s, strings.Join(KnownScopes, ", ")))
		}
		out = append(out, s)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if slices.Contains(out, ScopeAll) {
		return Scopes{ScopeAll}, nil
	}
	return out, nil
}
