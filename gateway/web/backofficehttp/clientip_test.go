package backofficehttp_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/blindgate/blindgate/gateway/clientip"
	"github.com/blindgate/blindgate/internal/audit"
)

// app.Test's peer address is always 0.0.0.0: trusting 0.0.0.0/32 makes the
// test client a trusted proxy, trusting only 10.0.0.0/8 makes it a stranger.
func resolver(t *testing.T, trusted string) *clientip.Resolver {
	t.Helper()
	p, err := clientip.ParseTrusted(trusted)
	if err != nil {
		t.Fatal(err)
	}
	r, err := clientip.New("X-Forwarded-For", p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLoginLimitSpoofedHeader: the per-IP login limit and the audit origin
// use the same client address, which a spoofed header does not change.
func TestLoginLimitSpoofedHeader(t *testing.T) {
	tests := []struct {
		name, trusted, origin string
		xff                   func(i int) string
	}{
		{"429/untrusted-peer", "10.0.0.0/8", "0.0.0.0", func(i int) string { return fmt.Sprintf("198.51.100.%d", i) }},
		{"429/trusted-peer-spoofed-left", "0.0.0.0/32", "203.0.113.7", func(i int) string { return fmt.Sprintf("198.51.100.%d,203.0.113.7", i) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{noKS: true, clientIP: resolver(t, tt.trusted)})
			c := f.client()
			var last response
			for i := 0; i < 21; i++ {
				c.header["X-Forwarded-For"] = tt.xff(i)
				last = c.loginWith(t, "user"+string(rune('a'+i)), "some wrong password", "123456")
			}
			if last.status != http.StatusTooManyRequests {
				t.Fatalf("21st login with a spoofed header: %d", last.status)
			}
			evs := f.gwEvents(t, audit.Filter{Event: audit.EventLogin})
			if len(evs) == 0 {
				t.Fatal("no login audited")
			}
			for _, e := range evs {
				if e.Origin != tt.origin {
					t.Fatalf("audit origin %q, want %q", e.Origin, tt.origin)
				}
			}
		})
	}
}
