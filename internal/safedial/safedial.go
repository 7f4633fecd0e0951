// Package safedial opens TCP connections to a host name without SSRF: the
// name is resolved once, every address is checked before any dial (one
// refused address refuses the name: a mix of public and private answers is
// an attack or a misconfiguration), and the connection goes to a checked
// address itself, so a second, rebinding resolution never happens. The key
// service's forward sender and the gateway's webhook sender share it.
package safedial

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// Resolver resolves a host name; net.DefaultResolver fits. Injectable so
// tests can serve any answer without DNS.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer opens a TCP connection to an address already checked; tests
// inject one that refuses anything but loopback.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// AddressError is a refusal by the address check; nothing was dialed.
type AddressError struct{ Addr netip.Addr }

func (e *AddressError) Error() string { return "address " + e.Addr.String() + " refused" }

// Errors of Dial besides *AddressError and the dialer's own.
var (
	ErrResolve   = errors.New("resolve failed")
	ErrNoAddress = errors.New("no address")
)

// Dial resolves host (an IP literal is used as is), checks every address
// with allowed, and dials the checked addresses in order on port.
func Dial(ctx context.Context, r Resolver, d Dialer, host, port string, allowed func(netip.Addr) bool) (net.Conn, error) {
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, ErrResolve
		}
	}
	if len(ips) == 0 {
		return nil, ErrNoAddress
	}
	for _, ip := range ips {
		if !allowed(ip) {
			return nil, &AddressError{ip.Unmap()}
		}
	}
	var last error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}

// AddressAllowed reports whether ip may be dialed: a global unicast
// address outside the private and shared ranges, or one inside a prefix
// of allow.
func AddressAllowed(ip netip.Addr, allow []netip.Prefix) bool {
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
