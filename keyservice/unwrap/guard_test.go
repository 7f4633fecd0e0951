package unwrap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/card"
	"github.com/blindgate/blindgate/keyservice/guard"
)

func (f *fixture) inspect(t *testing.T, merchant, pan string) (Masked, error) {
	t.Helper()
	jwe := f.encrypt(t, pan, f.now, "cs_1")
	return f.svc.Inspect(context.Background(), Meta{Client: "gateway"}, InspectInput{JWE: jwe, Session: "cs_1", Merchant: merchant})
}

func TestFingerprintPerMerchant(t *testing.T) {
	f := newFixture(t, nil)
	a1, err := f.inspect(t, "m_alice", testPAN)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := f.inspect(t, "m_alice", testPAN)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.inspect(t, "m_bob", testPAN)
	if err != nil {
		t.Fatal(err)
	}
	if a1.Fingerprint != a2.Fingerprint {
		t.Fatal("fingerprint not stable within a merchant")
	}
	if a1.Fingerprint == b.Fingerprint {
		t.Fatal("the same card has the same fingerprint at two merchants")
	}
	if _, err := f.inspect(t, "", testPAN); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("no merchant: %v", err)
	}
}

func TestMaskingDefaultAndBIN8(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    card.Masking
		pan  string
		bin  string
	}{
		{"default/16", card.Masking{}, testPAN, "424242"},
		{"default/15", card.Masking{}, "378282246310005", "378282"},
		{"bin8/16", card.Masking{BIN8: true}, testPAN, "42424242"},
		{"bin8/15-stays-6", card.Masking{BIN8: true}, "378282246310005", "378282"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.Masking = tt.m })
			m, err := f.inspect(t, "m_1", tt.pan)
			if err != nil || m.BIN != tt.bin {
				t.Fatalf("bin %q err %v, want %q", m.BIN, err, tt.bin)
			}
		})
	}
}

// candidates returns n Luhn-valid PANs sharing pan's first 6 and last 4:
// what a prober would try.
func candidates(pan string, n int) []string {
	var out []string
	mid := len(pan) - 10
	for i := 0; len(out) < n; i++ {
		c := pan[:6] + fmt.Sprintf("%0*d", mid, i) + pan[len(pan)-4:]
		if c != pan && card.Luhn(c) {
			out = append(out, c)
		}
	}
	return out
}

func guardRefuses(t *testing.T, f *fixture) {
	t.Helper()
	// The genuine card, and a handful of real colliding cards, pass.
	if _, err := f.inspect(t, "m_1", testPAN); err != nil {
		t.Fatal(err)
	}
	cands := candidates(testPAN, 20)
	for i, c := range cands[:DefaultGuardMax-1] {
		if _, err := f.inspect(t, "m_1", c); err != nil {
			t.Fatalf("candidate %d: %v", i, err)
		}
	}
	// The next distinct card is refused, and so is every card after it,
	// the genuine one included (otherwise its acceptance would be the oracle).
	for _, c := range append(cands[DefaultGuardMax-1:DefaultGuardMax+2], testPAN) {
		_, err := f.inspect(t, "m_1", c)
		var ee *EnumerationError
		if !errors.As(err, &ee) || ee.RetryAfter != DefaultGuardWindow {
			t.Fatalf("err = %v, want an enumeration refusal", err)
		}
	}
	// Another merchant, or another last 4, is not affected.
	if _, err := f.inspect(t, "m_2", testPAN); err != nil {
		t.Fatalf("other merchant: %v", err)
	}
	if _, err := f.inspect(t, "m_1", "4000056655665556"); err != nil {
		t.Fatalf("other card: %v", err)
	}
	var alarms, refused int
	for _, e := range f.events(t) {
		// The whole record must not hold the number; its text fields must
		// not hold the first 6 or (in an alarm) the last 4. Time, hashes and
		// resource ids are left out of the short checks: their digits are
		// random and once matched "4242" by chance.
		raw := fmt.Sprintf("%+v", e)
		text := strings.Join([]string{e.Client, e.Actor, e.Origin, e.Kid, e.Reason, e.Code}, "|")
		if strings.Contains(raw, testPAN) || strings.Contains(text, testPAN[:6]) || strings.Contains(text, testPAN[12:]) && e.Event == audit.EventAlarm {
			t.Fatalf("audit event holds card digits: %s", raw)
		}
		switch {
		case e.Event == audit.EventAlarm && strings.Contains(e.Reason, "card enumeration"):
			alarms++
		case e.Event == audit.EventInspect && e.Code == "card_enumeration" && e.Outcome == audit.OutcomeDenied:
			refused++
		}
	}
	if alarms != 4 || refused != 4 {
		t.Fatalf("alarms=%d refused=%d, want 4 each", alarms, refused)
	}
	if !strings.Contains(f.logLines.String(), "level=ERROR msg=\"ALARM") {
		t.Fatalf("no ERROR ALARM log line: %s", f.logLines.String())
	}
}

func TestGuardRefusesAndAlarmsMemory(t *testing.T) {
	f := newFixture(t, nil)
	guardRefuses(t, f)
	// The window slides: a day later the bucket is empty.
	f.now = f.now.Add(DefaultGuardWindow + time.Minute)
	if _, err := f.inspect(t, "m_1", testPAN); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestGuardRefusesAndAlarmsRedis(t *testing.T) {
	rdb := testenv.Redis(t)
	f := newFixture(t, func(c *Config) { c.Guard.Counter = guard.NewRedis(rdb, "bg:ks:eg:") })
	guardRefuses(t, f)
	// Redis learns nothing: no key or member holds card digits or fingerprints.
	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys %v %v", keys, err)
	}
	for _, k := range keys {
		members, _ := rdb.ZRange(context.Background(), k, 0, -1).Result()
		for _, v := range append(members, k) {
			if strings.Contains(v, "424242") || strings.Contains(v, "fpm_") || strings.Contains(v, "m_1") {
				t.Fatalf("redis holds %q", v)
			}
		}
	}
	// Redis down: refuse (fail closed).
	_ = rdb.Close()
	if _, err := f.inspect(t, "m_3", testPAN); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("redis down: %v", err)
	}
}

func TestInspectVolumeAlarms(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Limits = DefaultLimits()
		c.Limits.InspectMerchantDaily = ratelimit.Limit{Name: "imd", Rate: 5, Period: 24 * time.Hour, Burst: 5}
	})
	for i := range 7 {
		if _, err := f.inspect(t, "m_1", testPAN); err != nil {
			t.Fatalf("inspect %d: %v (volume alarms but does not refuse by default)", i, err)
		}
	}
	var reasons []string
	for _, e := range f.events(t) {
		if e.Event == audit.EventAlarm {
			reasons = append(reasons, e.Reason)
		}
	}
	if len(reasons) != 2 || !strings.Contains(reasons[0]+reasons[1], "80%") || !strings.Contains(reasons[0]+reasons[1], "exhausted") {
		t.Fatalf("alarms %q, want one at 80%% and one at exhaustion", reasons)
	}
	g := newFixture(t, func(c *Config) {
		c.Limits = DefaultLimits()
		c.Limits.InspectMerchantDaily = ratelimit.Limit{Name: "imd", Rate: 2, Period: 24 * time.Hour, Burst: 2}
		c.Limits.RefuseInspectVolume = true
	})
	for range 2 {
		if _, err := g.inspect(t, "m_1", testPAN); err != nil {
			t.Fatal(err)
		}
	}
	var le *ratelimit.Refused
	if _, err := g.inspect(t, "m_1", testPAN); !errors.As(err, &le) || le.Limit != "imd" {
		t.Fatalf("refusing volume: %v", err)
	}
}

func (f *fixture) cvc(t *testing.T, digits string, iat time.Time, session string) string {
	t.Helper()
	pt := fmt.Sprintf(`{"cvc":%q,"iat":%d}`, digits, iat.Unix())
	pub := f.kr.PublicKeys()[0]
	out, err := jose.Encrypt([]byte(pt), pub.Key, pub.Kid, map[string]string{jose.HeaderSessionID: session})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestInspectValidatesCVC(t *testing.T) {
	f := newFixture(t, nil)
	const amex = "378282246310005"
	tests := []struct {
		name, pan string
		cvc       func() string
		ok        bool
	}{
		{"ok/visa-3", testPAN, func() string { return f.cvc(t, "123", f.now, "cs_1") }, true},
		{"ok/amex-4", amex, func() string { return f.cvc(t, "1234", f.now, "cs_1") }, true},
		{"ok/none", testPAN, func() string { return "" }, true},
		{"422/visa-4", testPAN, func() string { return f.cvc(t, "1234", f.now, "cs_1") }, false},
		{"422/amex-3", amex, func() string { return f.cvc(t, "123", f.now, "cs_1") }, false},
		{"422/other-session", testPAN, func() string { return f.cvc(t, "123", f.now, "cs_other") }, false},
		{"422/stale", testPAN, func() string { return f.cvc(t, "123", f.now.Add(-time.Hour), "cs_1") }, false},
		{"422/garbage", testPAN, func() string { return "a.b.c.d.e" }, false},
		{"422/not-a-cvc", testPAN, func() string { return f.encrypt(t, testPAN, f.now, "cs_1") }, false},
		{"422/letters", testPAN, func() string { return f.cvc(t, "12a", f.now, "cs_1") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jwe := f.encrypt(t, tt.pan, f.now, "cs_1")
			_, err := f.svc.Inspect(context.Background(), Meta{Client: "gateway"}, InspectInput{JWE: jwe, Session: "cs_1", Merchant: "m_1", CVCJWE: tt.cvc()})
			if tt.ok != (err == nil) || !tt.ok && !errors.Is(err, ErrCVCInvalid) {
				t.Fatalf("err = %v, want ok=%v or ErrCVCInvalid", err, tt.ok)
			}
			if err != nil && (strings.Contains(err.Error(), "123") || strings.Contains(f.logLines.String(), "1234")) {
				t.Fatalf("cvc digits leaked: %v", err)
			}
		})
	}
	for _, e := range f.events(t) {
		if e.Outcome != audit.OutcomeSuccess && e.Code != "cvc_invalid" {
			t.Fatalf("cvc refusal audited as %+v", e)
		}
	}
}
