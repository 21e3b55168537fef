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

// ScopeCatalogue is the set of scopes a token may be limited to. routes.New
// fills it with the scopes its routes check, so a resource declares its
// scopes by using them in its block of the route table, and no token can be
// limited to a scope that no route checks. It is filled while the router is
// built, before any request, and only read afterwards.
type ScopeCatalogue struct {
	names []string
}

// Add puts scope in the catalogue. ScopeAll is always allowed and is not
// listed.
func (c *ScopeCatalogue) Add(scope string) {
	if scope != ScopeAll && !slices.Contains(c.names, scope) {
		c.names = append(c.names, scope)
		slices.Sort(c.names)
	}
}

// Names returns the scopes in the catalogue, sorted.
func (c *ScopeCatalogue) Names() []string {
	return slices.Clone(c.names)
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

// Normalize checks requested scopes against the catalogue and returns them
// sorted, without duplicates. No scopes at all means ScopeAll, as for a
// login token.
func (c *ScopeCatalogue) Normalize(requested []string) (Scopes, error) {
	if len(requested) == 0 {
		return Scopes{ScopeAll}, nil
	}
	out := make(Scopes, 0, len(requested))
	for _, s := range requested {
		if s != ScopeAll && !slices.Contains(c.names, s) {
			return nil, invalid("scopes", fmt.Sprintf("unknown scope %q; known scopes are %s",
				s, strings.Join(append([]string{ScopeAll}, c.names...), ", ")))
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

// scopeNameMaxLength is the longest scope name: what a proxy's ?scope= or
// EXTRA_SCOPES may name.
const scopeNameMaxLength = 64

// ValidScopeName tells whether s can name a scope: 1 to 64 letters,
// digits and . _ - : /. Nothing else can reach a header (the scope of a
// WWW-Authenticate challenge, X-Auth-Scopes) or the space-separated scopes
// column.
func ValidScopeName(s string) bool {
	if s == "" || len(s) > scopeNameMaxLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case b == '.' || b == '_' || b == '-' || b == ':' || b == '/':
		default:
			return false
		}
	}
	return true
}
