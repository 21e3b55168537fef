package models

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestIPNets(t *testing.T) {
	t.Parallel()
	nets, err := ParseIPNets([]string{"203.0.113.9/24", "2001:db8::/32", "198.51.100.7", "::ffff:192.0.2.0/120"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(nets.Strings(), ","); got != "203.0.113.0/24,2001:db8::/32,198.51.100.7/32,192.0.2.0/24" {
		t.Errorf("parsed: got %s", got)
	}
	cases := []struct {
		ip   string
		want bool
	}{
		{"203.0.113.200", true},
		{"203.0.114.1", false},
		{"::ffff:203.0.113.5", true},
		{"2001:db8:ffff::1", true},
		{"2001:db9::1", false},
		{"198.51.100.7", true},
		{"198.51.100.8", false},
		{"192.0.2.77", true},
		{"not an address", false},
		{"", false},
	}
	for _, tc := range cases {
		if got := nets.Contains(tc.ip); got != tc.want {
			t.Errorf("Contains(%q): got %v, want %v", tc.ip, got, tc.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "fe80::1%eth0", "10.0.0.0/8/8", ""} {
		if _, err := ParseIPNets([]string{bad}); err == nil {
			t.Errorf("ParseIPNets(%q): no error", bad)
		}
	}
}

func TestCoversTellsLoosening(t *testing.T) {
	t.Parallel()
	parse := func(s ...string) IPNets {
		n, err := ParseIPNets(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	nets := []struct {
		old, next IPNets
		loosens   bool
	}{
		{parse("10.0.0.0/8"), parse("10.1.0.0/16"), false},
		{parse("10.1.0.0/16"), parse("10.0.0.0/8"), true},
		{parse("10.0.0.0/8"), nil, true},
		{nil, parse("10.0.0.0/8"), false},
		{parse("10.0.0.0/8", "2001:db8::/32"), parse("2001:db8:1::/48"), false},
		{parse("10.0.0.0/8"), parse("10.0.0.0/8", "192.0.2.1"), true},
	}
	for _, tc := range nets {
		if got := !tc.old.Covers(tc.next); got != tc.loosens {
			t.Errorf("%v -> %v: loosens %v, want %v", tc.old, tc.next, got, tc.loosens)
		}
	}
	perMin := func(n int) RateLimit { return RateLimit{Requests: n, Period: time.Minute} }
	limits := []struct {
		old, next RateLimit
		loosens   bool
	}{
		{perMin(10), perMin(5), false},
		{perMin(5), perMin(10), true},
		{perMin(10), RateLimit{}, true},
		{RateLimit{}, perMin(10), false},
		{perMin(60), RateLimit{Requests: 1, Period: time.Second}, false},
		{perMin(60), RateLimit{Requests: 60, Period: time.Second}, true},
		{perMin(60), RateLimit{Requests: 3600, Period: time.Hour}, true}, // a larger burst
	}
	for _, tc := range limits {
		if got := !tc.old.Covers(tc.next); got != tc.loosens {
			t.Errorf("%v -> %v: loosens %v, want %v", tc.old, tc.next, got, tc.loosens)
		}
	}
}

func TestNetworkUsesMerge(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	use := func(ip string, s int) NetworkUse {
		p, ok := NetworkOf(ip)
		if !ok {
			t.Fatalf("NetworkOf(%q)", ip)
		}
		return NetworkUse{Network: p, LastUsedAt: at.Add(time.Duration(s) * time.Second)}
	}
	var list NetworkUses
	for i := range 7 {
		list = list.Merge(NetworkUses{use("192.0.2."+string(rune('1'+i)), i)})
	}
	list = list.Merge(NetworkUses{use("2001:db8:1:2::1", 10), use("2001:db8:1:2:ffff::9", 11), use("192.0.2.3", 12)})
	var got []string
	for _, n := range list {
		got = append(got, NetworkString(n.Network))
	}
	if want := "192.0.2.3 2001:db8:1:2::/64 192.0.2.7 192.0.2.6 192.0.2.5"; strings.Join(got, " ") != want {
		t.Errorf("merged: got %v, want %s", got, want)
	}
	v, err := list.Value()
	if err != nil {
		t.Fatal(err)
	}
	var back NetworkUses
	if err := back.Scan(v); err != nil || len(back) != len(list) || back[1].Network != netip.MustParsePrefix("2001:db8:1:2::/64") {
		t.Errorf("round trip: got %v, %v", back, err)
	}
}
