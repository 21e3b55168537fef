package controllers

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"tokenauth/models"
)

// FuzzTokenResponseJSON checks that a token's hand-written JSON is, byte
// for byte, what encoding/json writes: any name, scopes, client and
// metadata (quotes, HTML, control characters, U+2028, invalid UTF-8,
// uncompacted JSON), each optional field present or not, and a list of
// them as the list route answers it.
func FuzzTokenResponseJSON(f *testing.F) {
	for _, seed := range []struct {
		name, scope, agent, metadata string
	}{
		{"laptop", "profile:read", "curl/8.5", `{"team":"web"}`},
		{`"quoted" \ back`, "<b>", "tab\there\nnew\x00\x1f\x7f", `{"a": [1, 2], "h": "<&>"}`},
		{"Zoë 😀 \u2028\u2029", "\xff\xfe", "\xc3", `{"x":"\u2028"}`},
		{"", "", "", `not json`},
		{"'; DROP TABLE api_tokens; --", "*", "Mozilla/5.0", ""},
	} {
		f.Add(uint(7), seed.name, seed.scope, seed.agent, seed.metadata, int64(1795000000), uint8(0xff), 100, "1m", "tka_secret")
		f.Add(uint(0), seed.name, seed.scope, seed.agent, seed.metadata, int64(0), uint8(0), 0, "", "")
	}
	f.Fuzz(func(t *testing.T, id uint, name, scope, agent, metadata string, unix int64, present uint8, requests int, per, secret string) {
		// The years time.Time's MarshalJSON accepts: 0 to 9999.
		const minUnix, maxUnix = -62167219200, 253402300799
		at := time.Unix(min(max(unix, minUnix), maxUnix), 0).UTC()
		has := func(bit uint) bool { return present&(1<<bit) != 0 }
		r := tokenResponse{ID: id, Name: name, Prefix: "tka_abcdefgh", CreatedAt: at, Current: has(0), Enabled: has(1),
			Legacy: has(2), Token: secret}
		if has(3) {
			r.Scopes, r.AllowedIPs = []string{scope, "profile:read"}, []string{"10.0.0.0/8", scope}
		}
		if has(4) {
			r.LastUsedAt, r.ExpiresAt, r.PreviousSecretExpiresAt = &at, &at, &at
			r.LastIP, r.LastUserAgent = &agent, &agent
		}
		if has(5) {
			r.Networks = models.NetworkUses{
				{Network: netip.MustParsePrefix("192.0.2.7/32"), LastUsedAt: at.Add(1500 * time.Millisecond)},
				{Network: netip.MustParsePrefix("2001:db8::/64"), LastUsedAt: at},
			}
		} else if has(6) {
			r.Networks = models.NetworkUses{}
		}
		if has(7) {
			r.RateLimit = &rateLimit{Requests: requests, Per: per}
		}
		if metadata != "" && json.Valid([]byte(metadata)) {
			r.Metadata = json.RawMessage(metadata)
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("appendJSON:\n got %s\nwant %s", got, want)
		}
		list := []tokenResponse{r, {ID: id + 1, CreatedAt: at}}
		want, err = json.Marshal(map[string]any{"tokens": list})
		if err != nil {
			t.Fatal(err)
		}
		if got := newTokenList().json(); string(got) != `{"tokens":[]}` {
			t.Fatalf("an empty list: %s", got)
		}
		l := newTokenList()
		for _, r := range list {
			l.add(r)
		}
		got := l.json()
		if string(got) != string(want) {
			t.Fatalf("a list:\n got %s\nwant %s", got, want)
		}
	})
}
