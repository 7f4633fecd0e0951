package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/nonce"
	"github.com/blindgate/blindgate/keyservice/replay"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// TestRevealRoundTrips: an approved reveal, with the stores on one Redis
// client as keyservice/app wires them, makes revealRoundTrips round trips
// (issue 17): the claim of its jti, the take of its nonce, and its four
// limits in one batch. Counted after a first reveal has loaded the
// scripts.
func TestRevealRoundTrips(t *testing.T) {
	const revealRoundTrips = 2
	rdb := testenv.Redis(t)
	trips := testenv.CountTrips(rdb)
	ts := newTestServerWith(t, backends{replay: replay.NewRedis(rdb, "bg:ks:jti:"), limiter: ratelimit.NewRedis(rdb, "bg:ks:rl:")}, func(o *kstest.Options) {
		o.Nonces = nonce.NewRedis(rdb, "bg:ks:nonce:")
		o.Limits = nil
	})
	a := ts.EnrolPasskey(t, "backoffice", "op_rita")
	jwe := ts.cardJWE(t, testPAN, "cs_1", time.Now())
	for i := range 2 {
		resp, m := ts.call(t, ts.backoffic, http.MethodPost, wire.PathRevealChallenge, wire.RevealChallengeRequest{Actor: "op_rita", Token: "tok_1"})
		if resp.StatusCode != 200 {
			t.Fatalf("challenge: %d %v", resp.StatusCode, m)
		}
		n, _ := m["nonce"].(string)
		key, _ := kstest.BrowserKey(t)
		req := wire.RevealRequest{JWE: jwe, Actor: "op_rita", Reason: "chargeback 1234", Token: "tok_1", Nonce: n, BrowserKey: key,
			Assertion: kstest.Assertion(t, a, n, "tok_1", "chargeback 1234", key)}
		before := trips.Load()
		if resp, m := ts.call(t, ts.backoffic, http.MethodPost, wire.PathReveal, req); resp.StatusCode != 200 {
			t.Fatalf("reveal %d: %d %v", i+1, resp.StatusCode, m)
		}
		if got := trips.Load() - before; i == 1 && got != revealRoundTrips {
			t.Fatalf("a reveal made %d Redis round trips, want %d", got, revealRoundTrips)
		}
	}
}
