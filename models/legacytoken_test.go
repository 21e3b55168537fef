package models

import (
	"strings"
	"testing"
)

func TestLegacyTokenShape(t *testing.T) {
	t.Parallel()
	hex64 := strings.Repeat("0123456789abcdef", 4)
	hex40 := hex64[:40]
	cases := []struct {
		token string
		want  bool
	}{
		{hex64, true},
		{hex40, true},
		{strings.ToUpper(hex40), true},
		{strings.ToUpper(hex64), false},
		{hex64[:63], false},
		{hex64 + "0", false},
		{hex40[:39] + "g", false},
		{hex64[:63] + "G", false},
		{hex40[:39], false},
		{"", false},
		{strings.Repeat("é", 20), false},
	}
	for _, tc := range cases {
		if got := LegacyTokenShape(tc.token); got != tc.want {
			t.Errorf("LegacyTokenShape(%q): got %v, want %v", tc.token, got, tc.want)
		}
	}
	if _, err := NewLegacyToken(LegacyToken{UserID: 1, Key: "tka_short"}); err == nil {
		t.Error("NewLegacyToken accepted a key of the wrong shape")
	}
	tok, err := NewLegacyToken(LegacyToken{UserID: 1, Key: hex64, Name: "old"})
	if err != nil {
		t.Fatal(err)
	}
	if tok.KeyHash != HashToken(hex64) || tok.Prefix != hex64[:8] || tok.Kind != KindLegacy ||
		!tok.Scopes.Allows("anything") || tok.Secret != "" {
		t.Errorf("legacy token: %+v", tok)
	}
}
