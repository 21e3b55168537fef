package models

import (
	"fmt"
	"strings"
	"time"
)

// Lengths of the bare hex keys imported from Django: an APIToken key is 32
// random bytes in lower-case hex, a Django REST framework authtoken key 20.
const (
	APITokenKeyLength  = 64
	AuthTokenKeyLength = 40
	// legacyPrefixLength is how much of a legacy key is kept for display:
	// 8 hex characters, as many secret characters as a tka_ prefix shows.
	legacyPrefixLength = 8
)

// LegacyTokenShape tells whether s has the shape of a key imported from
// Django: 64 lower-case hex characters (APIToken) or 40 hex characters
// (authtoken). The shape only admits s to the one indexed lookup every
// unknown token gets; whether such a token exists is the database's answer.
func LegacyTokenShape(s string) bool {
	switch len(s) {
	case APITokenKeyLength:
		return isHex(s, false)
	case AuthTokenKeyLength:
		return isHex(s, true)
	}
	return false
}

// HoldsToken tells whether s holds what may be a client's secret: a token
// of ours (its prefix) or a key imported from Django, that is a run of hex
// digits with LegacyTokenShape between non-hex characters or the ends of
// s. Other runs of hex, such as a 32-character id or a 128-character
// digest, are not keys. It allocates nothing.
func HoldsToken(s string) bool {
	if strings.Contains(s, TokenPrefix) {
		return true
	}
	if len(s) < AuthTokenKeyLength {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isHexDigit(s[i], true) {
			continue
		}
		if LegacyTokenShape(s[start:i]) {
			return true
		}
		start = i + 1
	}
	return false
}

// isHex tells whether s is all hex digits, in lower case unless upper is
// allowed.
func isHex(s string, upper bool) bool {
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i], upper) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte, upper bool) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || upper && 'A' <= c && c <= 'F'
}

// LegacyToken describes a token imported from Django, with the key its
// clients hold.
type LegacyToken struct {
	UserID     uint
	Key        string
	Name       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	ExpiresAt  *time.Time
}

// NewLegacyToken returns the token to store for an imported key: hashed
// like every other secret (the key itself is not kept), of kind legacy,
// with full scope as the key had in Django. The key must have
// LegacyTokenShape, or the middleware would never look it up.
func NewLegacyToken(l LegacyToken) (*APIToken, error) {
	if !LegacyTokenShape(l.Key) {
		return nil, fmt.Errorf("a legacy token key must be 64 lower-case or 40 hex characters, got %d characters", len(l.Key))
	}
	return &APIToken{UserID: l.UserID, Name: l.Name, Kind: KindLegacy, KeyHash: HashToken(l.Key),
		Prefix: l.Key[:legacyPrefixLength], Scopes: Scopes{ScopeAll}, CreatedAt: l.CreatedAt,
		LastUsedAt: l.LastUsedAt, ExpiresAt: l.ExpiresAt}, nil
}
