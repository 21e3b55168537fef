package models

import (
	"strings"
	"testing"
)

// FuzzWellFormedToken checks the format parser on arbitrary strings: no
// panic; whatever it accepts has the documented shape and checksum; and
// changing any one character of an accepted token makes it rejected (CRC32
// catches every single-character change, so a typo never reaches the
// database).
func FuzzWellFormedToken(f *testing.F) {
	for range 4 {
		secret, err := NewTokenSecret()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(secret)
	}
	for _, seed := range []string{"", "tka_", "tka_" + strings.Repeat("0", 49), "TKA_" + strings.Repeat("a", 49),
		"tka_" + strings.Repeat("é", 25), "tka_0000000000000000000000000000000000000000000000000"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !WellFormedToken(s) {
			return
		}
		if len(s) != TokenLength || !strings.HasPrefix(s, TokenPrefix) {
			t.Fatalf("accepted %q of length %d", s, len(s))
		}
		body := s[:len(s)-tokenChecksumChars]
		if tokenChecksum(body) != s[len(body):] {
			t.Fatalf("accepted %q with a wrong checksum", s)
		}
		for i := len(TokenPrefix); i < len(s); i++ {
			if !isBase62(s[i]) {
				t.Fatalf("accepted %q with %q at %d", s, s[i], i)
			}
			b := []byte(s)
			b[i] = base62Digits[(strings.IndexByte(base62Digits, s[i])+1)%len(base62Digits)]
			if WellFormedToken(string(b)) {
				t.Fatalf("%q and %q, one character apart, are both accepted", s, b)
			}
		}
	})
}
