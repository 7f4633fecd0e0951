package safedial

import (
	"net/netip"
	"testing"
)

func TestAddressAllowed(t *testing.T) {
	tests := []struct {
		name, ip string
		allow    []string
		want     bool
	}{
		{"public-v4", "93.184.216.34", nil, true},
		{"public-v6", "2606:2800:220:1::1", nil, true},
		{"refused/loopback", "127.0.0.1", nil, false},
		{"refused/loopback-v6", "::1", nil, false},
		{"refused/private-10", "10.0.0.1", nil, false},
		{"refused/private-172", "172.18.0.5", nil, false},
		{"refused/private-192", "192.168.1.1", nil, false},
		{"refused/link-local-metadata", "169.254.169.254", nil, false},
		{"refused/v4-mapped-private", "::ffff:10.0.0.1", nil, false},
		{"refused/unspecified", "0.0.0.0", nil, false},
		{"refused/cgnat", "100.64.0.1", nil, false},
		{"refused/nat64", "64:ff9b::a00:1", nil, false},
		{"refused/6to4", "2002:a00:1::1", nil, false},
		{"refused/ula", "fd00::1", nil, false},
		{"refused/multicast", "224.0.0.1", nil, false},
		{"allowed/private-named", "172.18.0.5", []string{"172.18.0.0/16"}, true},
		{"refused/private-other-prefix", "172.19.0.5", []string{"172.18.0.0/16"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var allow []netip.Prefix
			for _, p := range tc.allow {
				allow = append(allow, netip.MustParsePrefix(p))
			}
			if got := AddressAllowed(netip.MustParseAddr(tc.ip), allow); got != tc.want {
				t.Errorf("AddressAllowed(%s, %v) = %v, want %v", tc.ip, tc.allow, got, tc.want)
			}
		})
	}
}
