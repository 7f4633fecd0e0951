package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/unwrap"
)

// luhn reports whether pan passes the Luhn check (the gateway links no card
// code, so the attacker here brings its own, as a real one would).
func luhn(pan string) bool {
	sum, double := 0, false
	for i := len(pan) - 1; i >= 0; i-- {
		d := int(pan[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum, double = sum+d, !double
	}
	return sum%10 == 0
}

// TestMerchantEnumerationThroughCheckoutIsRefused plays a merchant with only
// its API key: it knows one of its tokens (first 6, last 4, fingerprint),
// creates checkout sessions, submits a candidate card ciphertext to each
// through the public checkout, and reads the new token's fingerprint. The
// key service's guard refuses the search within a few candidates (the
// refusal reaches the page as card_enumeration) and alarms.
func TestMerchantEnumerationThroughCheckoutIsRefused(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	const victimPAN = "4000056655665556"
	sid := f.newSession(t, nil)
	sub := f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, victimPAN, sid)})
	tok, _ := sub.json["token"].(string)
	target := f.do(t, http.MethodGet, "/v1/tokens/"+tok, f.secret, nil)
	bin, last4, fp := target.json["bin"].(string), target.json["last4"].(string), target.json["fingerprint"].(string)
	if target.status != 200 || len(bin) != 6 || fp == "" {
		t.Fatalf("victim token: %d %s", target.status, target.body)
	}

	tried, refusedAt := 0, 0
	for mid := 0; refusedAt == 0 && tried < 40; mid++ {
		cand := bin + fmt.Sprintf("%06d", mid) + last4
		if !luhn(cand) {
			continue
		}
		tried++
		sid := f.newSession(t, nil)
		// Each probe from its own address: the per-IP limit is not what stops it.
		a := f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, cand, sid)}, "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", tried))
		switch {
		case a.status == http.StatusTooManyRequests && a.code() == "card_enumeration":
			refusedAt = tried
		case a.status != 200:
			t.Fatalf("candidate %d: %d %s", tried, a.status, a.body)
		default:
			got := f.do(t, http.MethodGet, "/v1/tokens/"+a.json["token"].(string), f.secret, nil)
			if got.json["fingerprint"] == fp {
				t.Fatalf("candidate %d matched the victim's fingerprint", tried)
			}
		}
	}
	if refusedAt == 0 || refusedAt > unwrap.DefaultGuardMax {
		t.Fatalf("refused at candidate %d of %d, want within %d", refusedAt, tried, unwrap.DefaultGuardMax)
	}
	alarms := f.kz.Events(t, audit.Filter{Event: audit.EventAlarm})
	if len(alarms) == 0 || !strings.Contains(alarms[0].Reason, "card enumeration") || !strings.Contains(alarms[0].Reason, f.merchant.ID) {
		t.Fatalf("no enumeration alarm naming the merchant: %+v", alarms)
	}
}
