package api_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/card"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/guard"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/replay"
	"github.com/blindgate/blindgate/keyservice/unwrap"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// TestAttackerWithCheckoutKeyIsRefused plays the attacker of issue 9: they
// hold the gateway's checkout signing key and a stored token (first 6, last
// 4, expiry, fingerprint), and loop over Luhn-valid middle digits, asking a
// real key service on Redis for the fingerprint of each candidate and
// comparing. Before the fix a Visa came back after ~100 inspects; now the
// search is refused within a few candidates and the audit log holds an
// alarm, whichever operation answers fingerprints: inspect, or a rewrap
// refresh (which takes any ciphertext, with no freshness check). A plain
// rewrap answers no fingerprint at all. Asking under another merchant id
// does not help: fingerprints are per merchant, so they never match the
// target's.
func TestAttackerWithCheckoutKeyIsRefused(t *testing.T) {
	type probe func(t *testing.T, gw *client.Client, jwe, sid, merchant string) (string, error)
	probes := map[string]probe{
		"inspect": func(t *testing.T, gw *client.Client, jwe, sid, merchant string) (string, error) {
			m, err := gw.Inspect(context.Background(), wire.InspectRequest{JWE: jwe, Session: sid, Merchant: merchant})
			return m.Fingerprint, err
		},
		"rewrap-refresh": func(t *testing.T, gw *client.Client, jwe, _, merchant string) (string, error) {
			r, err := gw.Rewrap(context.Background(), wire.RewrapRequest{JWE: jwe, Merchant: merchant, Refresh: true})
			return r.Fingerprint, err
		},
		"rewrap": func(t *testing.T, gw *client.Client, jwe, _, merchant string) (string, error) {
			r, err := gw.Rewrap(context.Background(), wire.RewrapRequest{JWE: jwe, Merchant: merchant})
			if err == nil && (r.Fingerprint != "" || r.BIN != "" || r.Last4 != "") {
				t.Fatalf("a plain rewrap answered masked fields: %+v", r)
			}
			return r.Fingerprint, err
		},
	}
	for name, ask := range probes {
		t.Run(name, func(t *testing.T) { attackWithCheckoutKey(t, ask, name != "rewrap") })
	}
}

func attackWithCheckoutKey(t *testing.T, ask func(t *testing.T, gw *client.Client, jwe, sid, merchant string) (string, error), answersFingerprints bool) {
	rdb := testenv.Redis(t)
	z := kstest.NewZone(t, kstest.Options{
		Clients: []kstest.Client{{ID: "gateway", Ops: []string{wire.OpInspect, wire.OpRewrap}}},
		Replay:  replay.NewRedis(rdb, "bg:ks:jti:"), Limiter: ratelimit.NewRedis(rdb, "bg:ks:rl:"),
		Guard:  guard.NewRedis(rdb, "bg:ks:eg:"),
		Listen: true,
	})
	gw := z.Client(t, "gateway")
	ctx := context.Background()
	const victimPAN, merchant = "4000056655665556", "m_victimshop"
	cardJSON := func(pan string) string {
		return fmt.Sprintf(`{"pan":%q,"exp_month":12,"exp_year":%d,"name":"","iat":%d}`, pan, time.Now().Year()+2, time.Now().Unix())
	}
	// The victim pays: the stored token is what the attacker starts from.
	target, err := gw.Inspect(ctx, wire.InspectRequest{JWE: z.Encrypt(t, cardJSON(victimPAN), "cs_victim"), Session: "cs_victim", Merchant: merchant})
	if err != nil {
		t.Fatal(err)
	}

	found, tried, refusedAt := false, 0, 0
	for mid := 0; mid < 1_000_000 && refusedAt == 0; mid++ {
		cand := target.BIN + fmt.Sprintf("%06d", mid) + target.Last4
		if !card.Luhn(cand) {
			continue
		}
		tried++
		sid := fmt.Sprintf("cs_probe%d", tried)
		fp, err := ask(t, gw, z.Encrypt(t, cardJSON(cand), sid), sid, merchant)
		var ce *client.Error
		switch {
		case errors.As(err, &ce) && ce.Code == "card_enumeration" && ce.Status == 429:
			refusedAt = tried
		case err != nil:
			t.Fatalf("candidate %d: %v", tried, err)
		case fp == target.Fingerprint:
			found = true
		}
		if tried > 50 {
			break
		}
	}
	if !answersFingerprints {
		// Nothing to compare, so nothing to guard: the run never refuses
		// and never matches.
		if found || refusedAt != 0 {
			t.Fatalf("plain rewrap: found=%v refused at %d", found, refusedAt)
		}
		return
	}
	if found || refusedAt == 0 || refusedAt > unwrap.DefaultGuardMax {
		t.Fatalf("found=%v refused at candidate %d of %d, want a refusal within %d candidates", found, refusedAt, tried, unwrap.DefaultGuardMax)
	}
	// Every further candidate, the right one included, is refused.
	sid := "cs_probe_right"
	_, err = ask(t, gw, z.Encrypt(t, cardJSON(victimPAN), sid), sid, merchant)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != "card_enumeration" || ce.RetryAfter <= 0 {
		t.Fatalf("the right candidate after the refusal: %v", err)
	}
	// The same card under another merchant id has an unrelated fingerprint.
	other, err := gw.Inspect(ctx, wire.InspectRequest{JWE: z.Encrypt(t, cardJSON(victimPAN), "cs_o"), Session: "cs_o", Merchant: "m_attacker"})
	if err != nil || other.Fingerprint == target.Fingerprint {
		t.Fatalf("other merchant: %v %s", err, other.Fingerprint)
	}
	alarms := z.Events(t, audit.Filter{Event: audit.EventAlarm})
	if len(alarms) == 0 || !strings.Contains(alarms[0].Reason, "card enumeration") || alarms[0].Client != "gateway" {
		t.Fatalf("no enumeration alarm in the audit log: %+v", alarms)
	}
	for _, e := range z.Events(t, audit.Filter{}) {
		// Six middle digits are checked in the text fields only: a time's
		// nanoseconds or a hash could hold them by chance.
		text := strings.Join([]string{e.Client, e.Actor, e.Origin, e.Kid, e.Reason, e.Code, e.Resource}, "|")
		if s := fmt.Sprintf("%+v", e); strings.Contains(s, victimPAN) || strings.Contains(text, victimPAN[6:12]) || strings.Contains(s, target.Fingerprint) {
			t.Fatalf("audit event holds card data: %s", s)
		}
	}
}
