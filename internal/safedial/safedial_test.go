package safedial

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
)

type answers []netip.Addr

func (a answers) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) { return a, nil }

type noDial struct{ t *testing.T }

func (d noDial) DialContext(_ context.Context, _, addr string) (net.Conn, error) {
	d.t.Errorf("dialed %s: the check must refuse first", addr)
	return nil, errors.New("no")
}

// TestDialRefusesBeforeDialing: one refused address refuses the name, and
// nothing is dialed.
func TestDialRefusesBeforeDialing(t *testing.T) {
	for name, ips := range map[string]answers{
		"private":         {netip.MustParseAddr("10.0.0.1")},
		"mixed":           {netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("192.168.1.1")},
		"mapped-loopback": {netip.MustParseAddr("::ffff:127.0.0.1")},
		"metadata":        {netip.MustParseAddr("169.254.169.254")},
		"cgnat":           {netip.MustParseAddr("100.64.0.1")},
	} {
		_, err := Dial(context.Background(), ips, noDial{t}, "h.example", "443", func(ip netip.Addr) bool { return AddressAllowed(ip, nil) })
		var ae *AddressError
		if !errors.As(err, &ae) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Dial(context.Background(), answers{}, noDial{t}, "h.example", "443", func(netip.Addr) bool { return true }); !errors.Is(err, ErrNoAddress) {
		t.Errorf("no answers: %v", err)
	}
}
