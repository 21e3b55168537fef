package auth

import (
	"strings"
	"testing"
)

// FuzzBearerToken feeds arbitrary Authorization headers, once or twice, to
// the parser. It must never panic, and must answer either one token taken
// from a Bearer header or one of the two documented refusals.
func FuzzBearerToken(f *testing.F) {
	for _, seed := range []string{
		"Bearer tka_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG123456",
		"bearer x", "BEARER  x  ", "Bearer", "Bearer ", "Bearer a b", "Basic YWxpY2U6cHc=",
		"Token abc", "", " ", "Bearer\tx", "Bearer\u00a0x", "\x00Bearer x", "Bearer x\r\n",
	} {
		f.Add(seed, false)
	}
	f.Add("Bearer x", true)
	f.Fuzz(func(t *testing.T, header string, twice bool) {
		values := []string{header}
		if twice {
			values = append(values, header)
		}
		token, err := ParseBearer(values)
		if err != nil {
			if err != ErrNoToken && err != ErrMalformedHeader {
				t.Fatalf("%q: unexpected error %v", header, err)
			}
			if token != "" {
				t.Fatalf("%q: a token (%q) and an error", header, token)
			}
			if twice && err != ErrMalformedHeader {
				t.Fatalf("two Authorization headers: got %v, want ErrMalformedHeader", err)
			}
			return
		}
		if twice {
			t.Fatalf("two Authorization headers were accepted")
		}
		if token == "" || strings.ContainsFunc(token, isSpace) {
			t.Fatalf("%q: token %q is empty or holds white space", header, token)
		}
		scheme, _, _ := strings.Cut(strings.TrimSpace(header), " ")
		if !strings.EqualFold(scheme, "Bearer") || !strings.Contains(header, token) {
			t.Fatalf("%q: token %q does not come from a Bearer header", header, token)
		}
	})
}

func isSpace(r rune) bool { return strings.TrimSpace(string(r)) == "" }
