package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// sentinelDownAfter is how long the Sentinels wait before they call the
// primary down (down-after-milliseconds); most of the refused window.
const sentinelDownAfter = 2 * time.Second

// TestSentinelFailover runs the gateway and the key service on a Redis
// Sentinel group (a primary, one replica, three Sentinels) and stops the
// primary while two shoppers pay: the Sentinels promote the replica, both
// services follow it without a restart, payments are refused with 503
// only while there is no primary, none hangs past its timeout, and every
// acknowledged token is on the promoted replica. The window of refused
// payments is logged (docs/SCALING.md records it).
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{
		Redis:       redisSentinel(sentinelDownAfter),
		GatewayArgs: trustDockerProxy,
		Operators:   []operatorSpec{{"sam", "revealer"}},
	})
	bo := s.boLogin(t, "sam")
	rr := newRoundRobin(s)
	before := s.mustPay(t, brandCards[0])
	deploy := s.RedisDeploy
	primary := containerIPs(t, deploy.Nodes[0])[0] + ":6379"
	replica := containerIPs(t, deploy.Nodes[1])[0] + ":6379"
	if got := sentinelPrimary(t, deploy); got != primary {
		t.Fatalf("Sentinels name %s the primary, want %s", got, primary)
	}

	l := rr.startLoad(2, 20*time.Millisecond)
	t.Cleanup(l.stop)
	eventually(t, 60*time.Second, "5 payments before the failover", func() (bool, string) {
		n, msg := l.okSince(time.Time{})
		return n >= 5, msg
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := 10 * time.Second
	stoppedAt := time.Now()
	// SIGTERM: Redis 7 waits (shutdown-timeout, 10 s) for its replica to
	// have every write before it exits, so nothing acknowledged is lost.
	if err := deploy.Nodes[0].Stop(ctx, &stop); err != nil {
		t.Fatalf("stop the primary: %v", err)
	}
	eventually(t, 60*time.Second, "the Sentinels promote the replica", func() (bool, string) {
		got := sentinelPrimary(t, deploy)
		return got == replica, got
	})
	promotedAt := time.Now()
	eventually(t, 60*time.Second, "5 payments after the failover", func() (bool, string) {
		n, msg := l.okSince(promotedAt)
		return n >= 5, msg
	})
	l.stop()
	w := l.window(stoppedAt, time.Now())
	refusedFor := time.Duration(0)
	if w.Refused > 0 {
		refusedFor = w.Last.Sub(w.First)
	}
	t.Logf("Sentinel failover (down-after %s): the replica was promoted within %s of the primary's stop; %s",
		sentinelDownAfter, promotedAt.Sub(stoppedAt).Round(100*time.Millisecond), w.since(stoppedAt))
	// A bound on the outage that can fail: the Sentinels' detection plus
	// their failover timeout. Longer means a client did not follow them.
	if refusedFor > sentinelDownAfter+10*time.Second+callTimeout {
		t.Errorf("payments refused for %s", refusedFor.Round(100*time.Millisecond))
	}

	var acked []payment
	var refused []error
	for _, o := range l.results() {
		if o.Err != nil {
			refused = append(refused, o.Err)
		} else {
			acked = append(acked, o.P)
		}
	}
	_, _, longest, hung := rr.stats()
	t.Logf("load: %d payments acknowledged, %d refused; slowest answer %s", len(acked), len(refused), longest.Round(time.Millisecond))

	t.Run("no-request-hung", func(t *testing.T) {
		for _, h := range hung {
			t.Errorf("hung: %s", h)
		}
	})

	t.Run("refusals-were-503", func(t *testing.T) {
		for _, err := range refused {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
				t.Errorf("payment refused with %v during the failover, want 503 (fail closed, retry later)", err)
			}
		}
	})

	t.Run("every-acknowledged-token-kept", func(t *testing.T) {
		stored := map[string]tokenView{}
		for _, v := range s.tokens(t) {
			stored[v.ID] = v
		}
		for _, p := range append(acked, before) {
			if v, ok := stored[p.Token]; !ok || v.Last4 != p.Card.Last4 {
				t.Errorf("token %s (acknowledged) after the failover: %+v, found %v", p.Token, v, ok)
			}
		}
	})

	t.Run("operator-session-kept-and-reveals", func(t *testing.T) {
		reason := "E2E reveal after the Sentinel failover"
		st, pan := bo.reveal(t, before.Token, reason)
		if st != http.StatusOK || pan != before.Card.PAN {
			t.Fatalf("reveal with the session made before the failover: HTTP %d, number matches: %v", st, pan == before.Card.PAN)
		}
		checkReveals(t, s.auditTrail(t), []revealRecord{{Token: before.Token, Actor: bo.op.ID, Reason: reason}})
	})

	t.Run("readyz-200", func(t *testing.T) {
		eventually(t, 30*time.Second, "gateway /readyz 200 on the promoted replica", func() (bool, string) {
			st, b := get(t, s.GatewayURL+"/readyz")
			return st == http.StatusOK, fmt.Sprintf("%d %s", st, b)
		})
	})
}
