package auth

import (
	"strings"
	"unicode"
)

// ParseBearer extracts the token of an "Authorization: Bearer <token>"
// header, given every value the request has for it. The scheme is
// case-insensitive (RFC 7235). No header, or another scheme, is
// ErrNoToken; several headers, or a Bearer with no token or with more than
// one, is ErrMalformedHeader.
func ParseBearer(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", ErrNoToken
	case 1:
	default:
		return "", ErrMalformedHeader
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	// One credential, without spaces inside (strings.Fields' rule, without
	// the slice it allocates).
	token := strings.TrimSpace(rest)
	if token == "" || strings.IndexFunc(token, unicode.IsSpace) >= 0 {
		return "", ErrMalformedHeader
	}
	return token, nil
}
