package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestRedisRestart restarts Redis (append-only file on) under the whole
// product while payments flow: the gateway reports not ready and refuses
// payments while it is down (fail closed: a card submitted to a session
// opened before the outage gets a 503 and no token), then the gateway and
// the key service recover on their own, payments go through again, and
// nothing stored is lost: every acknowledged token, an open checkout session
// and an operator's back-office session all survive, the session refused
// during the outage takes a card afterwards, and the operator can still
// reveal (key-service limits and audit included).
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{
		GatewayArgs: []string{"-submit-per-ip", "1000"},
		Operators:   []operatorSpec{{"rob", "revealer"}},
	})
	bo := s.boLogin(t, "rob")
	before := []payment{s.mustPay(t, brandCards[0]), s.mustPay(t, brandCards[1])}
	openSession := s.mustSession(t)
	// Opened, and the page's keys fetched, before the outage: the
	// submission during it is a real card submission, not a failure to
	// start one.
	outageSession := s.mustSession(t)
	keys := s.publicKeys(t)

	tr := s.startTraffic(brandCards[2], 100*time.Millisecond)
	t.Cleanup(tr.stop)
	tr.waitOK(t, 3, time.Time{}, 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := 10 * time.Second
	downAt := time.Now()
	if err := s.Redis.Stop(ctx, &stop); err != nil {
		t.Fatalf("stop redis: %v", err)
	}
	eventually(t, 15*time.Second, "gateway /readyz 503 while Redis is down", func() (bool, string) {
		st, b := get(t, s.GatewayURL+"/readyz")
		return st == http.StatusServiceUnavailable, fmt.Sprintf("%d %s", st, b)
	})
	// Fail closed: with its store away the gateway refuses a card (503,
	// the page's "retry later") rather than answer with a token it may lose.
	if p, err := s.payWithKey(ctx, outageSession, brandCards[4], keys[0]); !isCode(err, http.StatusServiceUnavailable, "unavailable") &&
		!isCode(err, http.StatusServiceUnavailable, "keyservice_unavailable") {
		t.Errorf("card submitted with Redis down: token %q, error %v; want 503 unavailable or keyservice_unavailable", p.Token, err)
	}
	if err := s.Redis.Start(ctx); err != nil {
		t.Fatalf("start redis: %v", err)
	}
	upAt := time.Now()
	eventually(t, 30*time.Second, "gateway /readyz 200 after Redis is back", func() (bool, string) {
		st, b := get(t, s.GatewayURL+"/readyz")
		return st == http.StatusOK, fmt.Sprintf("%d %s", st, b)
	})
	// A payment needs the gateway's stores and the key service's replay
	// cache and limiter, all in Redis: payments going through again is the
	// key service's recovery too.
	tr.waitOK(t, 3, upAt, 30*time.Second)
	tr.stop()
	ok, failed := tr.results()
	t.Logf("Redis down %s; traffic %d ok, %d refused while it was away; recovered %s after its start",
		upAt.Sub(downAt).Round(100*time.Millisecond), len(ok), len(failed), time.Since(upAt).Round(100*time.Millisecond))

	t.Run("refused-while-down-not-lost", func(t *testing.T) {
		for _, err := range failed {
			if !isStatus(err, http.StatusServiceUnavailable) && !isStatus(err, http.StatusBadGateway) {
				t.Errorf("while Redis was down a payment failed with %v, want 503 (fail closed, retry later)", err)
			}
		}
	})

	t.Run("every-acknowledged-token-kept", func(t *testing.T) {
		stored := map[string]tokenView{}
		for _, v := range s.tokens(t) {
			stored[v.ID] = v
		}
		for _, p := range append(before, ok...) {
			v, found := stored[p.Token]
			if !found {
				t.Errorf("token %s (acknowledged) is gone after the Redis restart", p.Token)
				continue
			}
			if v.Last4 != p.Card.Last4 || v.Brand != p.Card.Brand {
				t.Errorf("token %s: %+v, want %s …%s", p.Token, v, p.Card.Brand, p.Card.Last4)
			}
		}
		if max := len(before) + len(ok) + len(failed); len(stored) > max {
			t.Errorf("%d tokens stored, at most %d payments were attempted", len(stored), max)
		}
	})

	t.Run("open-session-kept", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p, err := s.payInto(ctx, openSession, brandCards[3])
		if err != nil {
			t.Fatalf("paying into the session created before the restart: %v", err)
		}
		if v := s.token(t, p.Token); v.Last4 != brandCards[3].Last4 {
			t.Errorf("token %+v", v)
		}
	})

	t.Run("session-refused-during-outage-takes-a-card", func(t *testing.T) {
		// Had the refused submission minted a token after all, the session
		// would be completed and refuse this other card.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p, err := s.payInto(ctx, outageSession, brandCards[5])
		if err != nil {
			t.Fatalf("paying into the session refused during the outage: %v", err)
		}
		if v := s.token(t, p.Token); v.Last4 != brandCards[5].Last4 {
			t.Errorf("token %+v", v)
		}
	})

	t.Run("operator-session-kept-and-reveals", func(t *testing.T) {
		reason := "E2E reveal after the Redis restart"
		st, pan := bo.reveal(t, before[0].Token, reason)
		if st != http.StatusOK || pan != before[0].Card.PAN {
			t.Fatalf("reveal with the pre-restart session: HTTP %d, number matches: %v", st, pan == before[0].Card.PAN)
		}
		checkReveals(t, s.auditTrail(t), []revealRecord{{Token: before[0].Token, Actor: bo.op.ID, Reason: reason}})
	})
}
