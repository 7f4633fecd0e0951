// Package publicaddr is the one rule for which addresses a card may travel
// to: a public unicast address, or one inside a prefix the operator named.
// The key service's forward sender and the egress proxy (cmd/egress) both
// apply it, so the two layers cannot drift apart.
package publicaddr

import "net/netip"

// Allowed reports whether ip may be dialed: a global unicast address
// outside the private and special-purpose ranges, or one inside a prefix of
// allow (the operator's explicit exception, say a processor reached over a
// private link).
func Allowed(ip netip.Addr, allow []netip.Prefix) bool {
	ip = ip.Unmap()
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	switch {
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsLoopback(), ip.IsPrivate(), ip.IsLinkLocalUnicast(),
		ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast(), ip.IsMulticast(), !ip.IsGlobalUnicast():
		return false
	}
	for _, p := range refusedPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// refusedPrefixes are special-purpose ranges netip does not flag: shared
// address space (carrier NAT), benchmarking, IETF protocol assignments, the
// IPv4 "this network" and class E ranges, NAT64 and 6to4 (which embed an
// IPv4 address, possibly a private one), and the IPv6 discard prefix.
var refusedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("100::/64"),
}
