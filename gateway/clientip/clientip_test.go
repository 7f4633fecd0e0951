package clientip

import (
	"errors"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted, err := ParseTrusted("10.0.0.0/8, 192.0.2.1, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New("X-Forwarded-For", trusted)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		peer   string
		values []string
		want   string
	}{
		{"peer/untrusted-peer-ignores-header", "198.51.100.9", []string{"1.2.3.4"}, "198.51.100.9"},
		{"peer/trusted-peer-no-header", "10.1.1.1", nil, "10.1.1.1"},
		{"hdr/trusted-peer-one-hop", "10.1.1.1", []string{"203.0.113.7"}, "203.0.113.7"},
		{"hdr/spoofed-left-entries-ignored", "10.1.1.1", []string{"1.2.3.4, 5.6.7.8, 203.0.113.7"}, "203.0.113.7"},
		{"hdr/skips-trusted-hops", "10.1.1.1", []string{"1.2.3.4, 203.0.113.7, 10.2.2.2, 192.0.2.1"}, "203.0.113.7"},
		{"hdr/several-header-lines", "10.1.1.1", []string{"1.2.3.4", "203.0.113.7, 10.9.9.9"}, "203.0.113.7"},
		{"hdr/ipv6-with-port", "10.1.1.1", []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"hdr/ipv4-mapped", "::ffff:10.1.1.1", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"peer/garbage-hop", "10.1.1.1", []string{"1.2.3.4, not-an-ip"}, "10.1.1.1"},
		{"peer/empty-hop", "10.1.1.1", []string{"203.0.113.7, "}, "10.1.1.1"},
		{"peer/zone", "10.1.1.1", []string{"fe80::1%eth0"}, "10.1.1.1"},
		{"hdr/all-trusted", "10.1.1.1", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.ClientIP(netip.MustParseAddr(tt.peer), tt.values)
			if got != netip.MustParseAddr(tt.want) {
				t.Errorf("ClientIP(%s, %q) = %s, want %s", tt.peer, tt.values, got, tt.want)
			}
		})
	}
}

func TestNoHeaderUsesPeer(t *testing.T) {
	r, err := New("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.ClientIP(netip.MustParseAddr("198.51.100.9"), []string{"1.2.3.4"}); got.String() != "198.51.100.9" {
		t.Fatalf("got %s", got)
	}
}

func TestNewRefusesHeaderWithoutTrust(t *testing.T) {
	if _, err := New("X-Forwarded-For", nil); !errors.Is(err, ErrNoTrustedProxies) {
		t.Fatalf("err = %v, want ErrNoTrustedProxies", err)
	}
}

func TestParseTrusted(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "proxy.local", "10.0.0.0/8,nope", "::ffff:10.0.0.0/104"} {
		if _, err := ParseTrusted(bad); err == nil {
			t.Errorf("ParseTrusted(%q) accepted", bad)
		}
	}
	got, err := ParseTrusted(" 10.1.2.3/8 ,::1 ,")
	if err != nil || len(got) != 2 || got[0].String() != "10.0.0.0/8" || got[1].String() != "::1/128" {
		t.Fatalf("got %v, %v", got, err)
	}
}
