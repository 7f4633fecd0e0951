// Package clientip finds the client address of a request that may have come
// through reverse proxies. The address keys the checkout submission limit and
// the login limit and is the origin of gateway audit records, so a header the
// client writes must not decide it: only hops added by proxies we trust count.
package clientip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ParseTrusted parses a comma-separated list of CIDRs (or single addresses)
// of the proxies allowed to name a client in the proxy header.
func ParseTrusted(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: not a CIDR or address", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("trusted proxy %q: write IPv4 ranges as IPv4", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// ErrNoTrustedProxies: a proxy header without trusted proxies would let any
// client choose its own address.
var ErrNoTrustedProxies = errors.New("clientip: a proxy header needs trusted proxies")

// Resolver picks the client address. The zero Resolver uses the peer address.
type Resolver struct {
	header  string
	trusted []netip.Prefix
}

// New returns a Resolver reading header (e.g. X-Forwarded-For) from the
// trusted proxies; header "" means the peer is the client.
func New(header string, trusted []netip.Prefix) (*Resolver, error) {
	if header != "" && len(trusted) == 0 {
		return nil, ErrNoTrustedProxies
	}
	return &Resolver{header: header, trusted: trusted}, nil
}

// Header is the proxy header read, "" when none.
func (r *Resolver) Header() string { return r.header }

func (r *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the client address for a request from peer with the
// proxy header's values (all occurrences, in order). Each proxy appends the
// address it received from, so the chain is read from the right: the first
// address not of a trusted proxy is the client. Before anything else the
// peer itself must be a trusted proxy, otherwise the header is the client's
// own words and is ignored. A hop that is not an IP address makes the chain
// worthless: the peer is used (a proxy's address, never a value the client
// wrote).
func (r *Resolver) ClientIP(peer netip.Addr, values []string) netip.Addr {
	peer = peer.Unmap()
	if r == nil || r.header == "" || !r.isTrusted(peer) {
		return peer
	}
	client := peer
	for i := len(values) - 1; i >= 0; i-- {
		hops := strings.Split(values[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			a, ok := parseHop(hops[j])
			if !ok {
				return peer
			}
			client = a
			if !r.isTrusted(a) {
				return client
			}
		}
	}
	return client
}

// parseHop reads one address of the chain: "203.0.113.7", "[2001:db8::1]"
// or "2001:db8::1", optionally with a port.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
