package models

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// MaxAllowedIPs bounds the networks a token may be limited to.
const MaxAllowedIPs = 20

// MaxMetadataBytes bounds a token's metadata, as compact JSON.
const MaxMetadataBytes = 2048

// MaxNetworks is how many of the networks a token was used from it keeps.
const MaxNetworks = 5

// The shortest and longest window of a per-token rate limit.
const (
	MinRatePeriod = time.Second
	MaxRatePeriod = 24 * time.Hour
)

// IPNets is a list of networks, stored as comma-separated CIDRs. A token
// whose AllowedIPs is empty may be used from anywhere.
type IPNets []netip.Prefix

// ParseIPNets reads CIDRs (or bare addresses, taken as one-address
// networks), each masked to its network. It names the first bad one.
func ParseIPNets(list []string) (IPNets, error) {
	nets := make(IPNets, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				if a.Zone() != "" {
					err = errors.New("an address with a zone")
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%q is not an IPv4 or IPv6 address or CIDR", truncate(s, 60))
		}
		if p.Addr().Is4In6() {
			bits := p.Bits() - 96
			if bits < 0 {
				return nil, fmt.Errorf("%q is not an IPv4 or IPv6 address or CIDR", truncate(s, 60))
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), bits)
		}
		p = p.Masked()
		if !slices.Contains(nets, p) {
			nets = append(nets, p)
		}
	}
	return nets, nil
}

// Contains tells whether ip (an address as text) is in one of the
// networks. An address that does not parse is in none.
func (n IPNets) Contains(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range n {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Strings returns the networks as CIDRs.
func (n IPNets) Strings() []string {
	out := make([]string, len(n))
	for i, p := range n {
		out[i] = p.String()
	}
	return out
}

// Covers tells whether every address of other is in n: replacing other
// by n loosens nothing. An empty list allows everything.
func (n IPNets) Covers(other IPNets) bool {
	if len(n) == 0 {
		return true
	}
	if len(other) == 0 {
		return false
	}
	for _, o := range other {
		inside := false
		for _, p := range n {
			if p.Bits() <= o.Bits() && p.Contains(o.Addr()) {
				inside = true
				break
			}
		}
		if !inside {
			return false
		}
	}
	return true
}

// Value stores the networks as comma-separated CIDRs.
func (n IPNets) Value() (driver.Value, error) {
	return strings.Join(n.Strings(), ","), nil
}

// Scan reads comma-separated CIDRs.
func (n *IPNets) Scan(src any) error {
	text, err := scanText("allowed_ips", src)
	if err != nil {
		return err
	}
	*n = nil
	if text == "" {
		return nil
	}
	nets, err := ParseIPNets(strings.Split(text, ","))
	if err != nil {
		return fmt.Errorf("allowed_ips: %w", err)
	}
	*n = nets
	return nil
}

// NetworkOf is the network a client address belongs to: the address
// itself for IPv4, its /64 for IPv6 (the block a single customer usually
// gets). ok is false for text that is not an address.
func NetworkOf(ip string) (p netip.Prefix, ok bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32), true
	}
	p, _ = a.Prefix(64)
	return p, true
}

// NetworkUse is one network a token was used from, and when last.
type NetworkUse struct {
	Network    netip.Prefix
	LastUsedAt time.Time
}

// NetworkString spells a network as people read it: an IPv4 address
// alone, an IPv6 network as a CIDR.
func NetworkString(p netip.Prefix) string {
	if p.Addr().Is4() && p.Bits() == 32 {
		return p.Addr().String()
	}
	return p.String()
}

type networkUseJSON struct {
	Network    string    `json:"network"`
	LastUsedAt time.Time `json:"last_used_at"`
}

// MarshalJSON writes the network as NetworkString spells it, and its last
// use as ShownLastUsedAt.
func (u NetworkUse) MarshalJSON() ([]byte, error) {
	return json.Marshal(networkUseJSON{Network: NetworkString(u.Network), LastUsedAt: u.ShownLastUsedAt()})
}

// ShownLastUsedAt is the network's last use as the API shows it: in UTC,
// to the second.
func (u NetworkUse) ShownLastUsedAt() time.Time { return u.LastUsedAt.UTC().Truncate(time.Second) }

// UnmarshalJSON reads what MarshalJSON wrote.
func (u *NetworkUse) UnmarshalJSON(b []byte) error {
	var v networkUseJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	nets, err := ParseIPNets([]string{v.Network})
	if err != nil || len(nets) != 1 {
		return fmt.Errorf("network %q: %w", v.Network, err)
	}
	u.Network, u.LastUsedAt = nets[0], v.LastUsedAt
	return nil
}

// NetworkUses is a token's recent networks, newest first, stored as JSON.
type NetworkUses []NetworkUse

// Has tells whether the network is in the list.
func (n NetworkUses) Has(p netip.Prefix) bool {
	for _, u := range n {
		if u.Network == p {
			return true
		}
	}
	return false
}

// Merge returns the networks of both lists, each with its later time,
// newest first, at most MaxNetworks of them.
func (n NetworkUses) Merge(other NetworkUses) NetworkUses {
	out := slices.Clone(n)
	for _, u := range other {
		i := slices.IndexFunc(out, func(x NetworkUse) bool { return x.Network == u.Network })
		switch {
		case i < 0:
			out = append(out, u)
		case u.LastUsedAt.After(out[i].LastUsedAt):
			out[i].LastUsedAt = u.LastUsedAt
		}
	}
	slices.SortStableFunc(out, func(a, b NetworkUse) int { return b.LastUsedAt.Compare(a.LastUsedAt) })
	if len(out) > MaxNetworks {
		out = out[:MaxNetworks]
	}
	return out
}

// Value stores the list as JSON.
func (n NetworkUses) Value() (driver.Value, error) {
	if len(n) == 0 {
		return "", nil
	}
	b, err := json.Marshal([]NetworkUse(n))
	return string(b), err
}

// Scan reads the JSON list. Unreadable text reads as no networks: the
// list is a record, and a request must not fail over it.
func (n *NetworkUses) Scan(src any) error {
	text, err := scanText("networks", src)
	if err != nil {
		return err
	}
	*n = nil
	if text != "" {
		var list []NetworkUse
		if json.Unmarshal([]byte(text), &list) == nil {
			*n = list
		}
	}
	return nil
}

// RateLimit is a budget of requests per period; the zero value is none.
type RateLimit struct {
	Requests int
	Period   time.Duration
}

// IsZero tells whether there is no limit.
func (r RateLimit) IsZero() bool { return r.Requests <= 0 || r.Period <= 0 }

// Covers tells whether r allows at least what other allows at every
// moment: replacing other by r loosens nothing only when other covers r.
// No limit covers every limit.
func (r RateLimit) Covers(other RateLimit) bool {
	if r.IsZero() {
		return true
	}
	if other.IsZero() {
		return false
	}
	// A higher rate, and a burst at least as large.
	return r.Requests >= other.Requests &&
		float64(r.Requests)/r.Period.Seconds() >= float64(other.Requests)/other.Period.Seconds()
}

// String is the limit as USER_RATE_LIMIT spells it, such as "1000/1h".
func (r RateLimit) String() string {
	if r.IsZero() {
		return ""
	}
	return fmt.Sprintf("%d/%s", r.Requests, FormatPeriod(r.Period))
}

// FormatPeriod spells a period in its largest whole unit: "1h", "15m",
// "90s".
func FormatPeriod(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// ParsePeriod reads the window of a rate limit: a Go duration of whole
// seconds from MinRatePeriod to MaxRatePeriod ("1s", "1m", "1h", "24h"),
// or the words second, minute, hour, day.
func ParsePeriod(s string) (time.Duration, error) {
	switch s {
	case "second":
		return time.Second, nil
	case "minute":
		return time.Minute, nil
	case "hour":
		return time.Hour, nil
	case "day":
		return 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d%time.Second != 0 || d < MinRatePeriod || d > MaxRatePeriod {
		return 0, errors.New(`must be whole seconds from "1s" to "24h" (or second, minute, hour, day)`)
	}
	return d, nil
}

// scanText reads a text column that may be NULL.
func scanText(column string, src any) (string, error) {
	switch v := src.(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("%s: cannot scan %T", column, src)
}
