package controllers

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzUserResponseJSON checks that a user's hand-written JSON is, byte for
// byte, what encoding/json writes: any username and email (quotes,
// backslashes, HTML, control characters, U+2028, invalid UTF-8), any id,
// with and without a last login.
func FuzzUserResponseJSON(f *testing.F) {
	for _, seed := range []struct {
		username, email string
	}{
		{"alice", "alice@example.com"}, {`"quoted" \ back`, "<b>&amp;</b>"}, {"tab\there\nnew\rline\b\f\x00\x1f\x7f", ""},
		{"Zoë 😀 \u2028\u2029", "\xff\xfe bad \xc3"}, {"'; DROP TABLE users; --", "a@b"},
	} {
		f.Add(uint(7), seed.username, seed.email, true, int64(1795000000), int64(1795000123), true)
		f.Add(uint(0), seed.username, seed.email, false, int64(0), int64(0), false)
	}
	f.Fuzz(func(t *testing.T, id uint, username, email string, active bool, created, lastLogin int64, loggedIn bool) {
		// The years time.Time's MarshalJSON accepts: 0 to 9999.
		const minUnix, maxUnix = -62167219200, 253402300799
		clamp := func(s int64) time.Time {
			return time.Unix(min(max(s, minUnix), maxUnix), 0).UTC()
		}
		u := userResponse{ID: id, Username: username, Email: email, EmailVerified: !active, MFAEnabled: loggedIn, IsActive: active,
			CreatedAt: clamp(created)}
		if loggedIn {
			last := clamp(lastLogin)
			u.LastLoginAt = &last
		}
		want, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("appendJSON:\n got %s\nwant %s", got, want)
		}
	})
}
