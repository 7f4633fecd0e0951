package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalidAllowList wraps every reason an allow-list is refused.
var ErrInvalidAllowList = errors.New("egress: invalid allow-list")

// Rule is one allowed target: a host name (or IP literal) and port, and the
// private prefixes that name may resolve to. Without Private, only public
// addresses (safedial.AddressAllowed) are dialed.
type Rule struct {
	Host    string
	Port    string
	Private []netip.Prefix
}

// Target is the CONNECT authority the rule allows, host:port.
func (r Rule) Target() string { return net.JoinHostPort(r.Host, r.Port) }

// AllowList maps a CONNECT target to its rule.
type AllowList map[string]Rule

// ParseAllowList reads entries, one per line or separated by commas:
//
//	host:port [private-prefix ...]
//
// as `keyservice destinations list -hosts` prints them (the prefixes are the
// destination's allow_private). Blank lines and lines starting with # are
// skipped. Host names are compared in lower case; no wildcard exists.
func ParseAllowList(text string) (AllowList, error) {
	al := AllowList{}
	sc := bufio.NewScanner(strings.NewReader(text))
	n := 0
	for sc.Scan() {
		n++
		for _, entry := range strings.Split(sc.Text(), ",") {
			f := strings.Fields(entry)
			if len(f) == 0 || strings.HasPrefix(f[0], "#") {
				continue
			}
			r, err := parseRule(f)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %w", ErrInvalidAllowList, n, err)
			}
			if prev, ok := al[r.Target()]; ok {
				r.Private = append(prev.Private, r.Private...)
			}
			al[r.Target()] = r
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAllowList, err)
	}
	return al, nil
}

func parseRule(f []string) (Rule, error) {
	host, port, err := net.SplitHostPort(f[0])
	if err != nil {
		return Rule{}, fmt.Errorf("%q is not host:port", f[0])
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return Rule{}, fmt.Errorf("%q: bad port", f[0])
	}
	host = strings.ToLower(host)
	if host == "" || strings.ContainsAny(host, "*/@ ") {
		return Rule{}, fmt.Errorf("%q: bad host", f[0])
	}
	r := Rule{Host: host, Port: port}
	for _, s := range f[1:] {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Rule{}, fmt.Errorf("%q: not a prefix", s)
		}
		r.Private = append(r.Private, p.Masked())
	}
	return r, nil
}

// Lookup returns the rule for a CONNECT authority.
func (al AllowList) Lookup(authority string) (Rule, bool) {
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		return Rule{}, false
	}
	r, ok := al[net.JoinHostPort(strings.ToLower(host), port)]
	return r, ok
}
