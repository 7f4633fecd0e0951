package web_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/clientip"
	"github.com/blindgate/blindgate/gateway/ingest"
	"github.com/blindgate/blindgate/internal/ratelimit"
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

// TestSubmitLimitSpoofedHeader: a client that writes its own
// X-Forwarded-For still hits the per-IP submission limit.
func TestSubmitLimitSpoofedHeader(t *testing.T) {
	tests := []struct {
		name    string
		trusted string
		xff     func(i int) string
	}{
		// Not from a trusted proxy: the header is ignored, the peer is counted.
		{"429/untrusted-peer", "10.0.0.0/8", func(i int) string { return fmt.Sprintf("198.51.100.%d", i) }},
		// Through the trusted proxy, left-hand entries are the client's words;
		// the proxy-appended right-most one is counted.
		{"429/trusted-peer-spoofed-left", "0.0.0.0/32", func(i int) string { return fmt.Sprintf("198.51.100.%d, 203.0.113.7", i) }},
		{"429/trusted-peer-garbage", "0.0.0.0/32", func(i int) string { return fmt.Sprintf("not-an-ip-%d", i) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limits := ingest.DefaultLimits()
			limits.PerIP = ratelimit.Limit{Name: "ip", Rate: 3, Period: time.Hour, Burst: 3}
			f := newTestServer(t, fixtureOpt{limits: &limits, clientIP: resolver(t, tt.trusted)})
			var last answer
			for i := 0; i < 5; i++ {
				sid := f.newSession(t, nil)
				last = f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, "4242424242424241", sid)},
					"X-Forwarded-For", tt.xff(i))
			}
			if last.status != http.StatusTooManyRequests || last.code() != "rate_limited" {
				t.Fatalf("5th submit with a spoofed header: %d %s", last.status, last.body)
			}
		})
	}
	t.Run("200/distinct-clients-behind-trusted-proxy", func(t *testing.T) {
		limits := ingest.DefaultLimits()
		limits.PerIP = ratelimit.Limit{Name: "ip", Rate: 3, Period: time.Hour, Burst: 3}
		f := newTestServer(t, fixtureOpt{limits: &limits, clientIP: resolver(t, "0.0.0.0/32")})
		for i := 0; i < 5; i++ {
			sid := f.newSession(t, nil)
			a := f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, visa, sid)},
				"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
			if a.status != http.StatusOK {
				t.Fatalf("client %d behind the proxy: %d %s", i, a.status, a.body)
			}
		}
	})
}
