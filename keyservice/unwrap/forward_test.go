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
	"github.com/blindgate/blindgate/keyservice/card"
	"github.com/blindgate/blindgate/keyservice/keyring"
)

// OpenCard is forward's decryption: a stored card is not checked for age or
// expiry (the processor decides), but its number is (never sent otherwise),
// and a CVC must be the one captured with it, within its lifetime.
func TestOpenCard(t *testing.T) {
	f := newFixture(t, nil)
	old := f.now.Add(-400 * 24 * time.Hour) // long past inspect's freshness
	expired := func() string {
		pt := fmt.Sprintf(`{"pan":%q,"exp_month":1,"exp_year":2020,"name":"A","iat":%d}`, testPAN, old.Unix())
		pub := f.kr.PublicKeys()[0]
		out, err := jose.Encrypt([]byte(pt), pub.Key, pub.Kid, map[string]string{jose.HeaderSessionID: "cs_1"})
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}()
	recent := f.now.Add(-time.Minute)
	for _, tc := range []struct {
		name     string
		jwe, cvc string
		want     error
		wantCVC  bool
	}{
		{"ok/old-card", f.encrypt(t, testPAN, old, "cs_1"), "", nil, false},
		{"ok/expired-card", expired, "", nil, false},
		{"ok/with-cvc", f.encrypt(t, testPAN, old, "cs_1"), f.cvc(t, "123", recent, "cs_1"), nil, true},
		{"refused/luhn", f.encrypt(t, "4242424242424241", old, "cs_1"), "", card.ErrLuhn, false},
		{"refused/cvc-of-another-session", f.encrypt(t, testPAN, old, "cs_1"), f.cvc(t, "123", recent, "cs_2"), ErrCVCInvalid, false},
		{"refused/stale-cvc", f.encrypt(t, testPAN, old, "cs_1"), f.cvc(t, "123", old, "cs_1"), ErrCVCInvalid, false},
		{"refused/cvc-length", f.encrypt(t, testPAN, old, "cs_1"), f.cvc(t, "1234", recent, "cs_1"), ErrCVCInvalid, false},
		{"refused/garbage", "a.b.c.d.e", "", ErrInvalidJWE, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := f.svc.OpenCard(context.Background(), tc.jwe, tc.cvc)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("OpenCard = %v, want %v", err, tc.want)
			}
			if err != nil {
				if strings.Contains(err.Error(), "424242") || strings.Contains(err.Error(), "123") {
					t.Fatalf("error holds card data: %v", err)
				}
				return
			}
			if o.Card.PAN != testPAN || o.HasCVC != tc.wantCVC || (tc.wantCVC && o.CVC.Digits() != "123") || o.Kid == "" {
				t.Fatalf("opened %v cvc=%v kid=%q", o.Card, o.HasCVC, o.Kid)
			}
		})
	}
}

// A rewrap carries the merchant binding to the new ciphertext; a wrong one
// is refused before decrypting; a token without one gets none, unless the
// key service runs with BindLegacy (the migration window).
func TestRewrapBinding(t *testing.T) {
	ctx, m := context.Background(), Meta{Client: "gateway"}
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("bind-legacy=%v", legacy), func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.BindLegacy = legacy })
			jwe := f.encrypt(t, testPAN, f.now.Add(-30*24*time.Hour), "cs_1")
			bnd := f.kr.Binding("m_1", []byte(jwe))
			if _, err := f.kr.Rotate(keyring.DefaultAlg); err != nil {
				t.Fatal(err)
			}
			rw, err := f.svc.Rewrap(ctx, m, RewrapInput{JWE: jwe, Merchant: "m_1", Binding: bnd})
			if err != nil || rw.JWE == jwe {
				t.Fatalf("rewrap: %v", err)
			}
			if !f.kr.VerifyBinding("m_1", []byte(rw.JWE), rw.Binding) || f.kr.VerifyBinding("m_1", []byte(jwe), rw.Binding) {
				t.Fatal("the answer's binding is not m_1's of the new ciphertext")
			}
			if err := f.svc.CheckBinding(ctx, "m_1", rw.JWE, rw.Binding); err != nil {
				t.Fatalf("moved card not forwardable: %v", err)
			}
			// Already under the newest key: the ciphertext stays, so does the binding.
			if same, err := f.svc.Rewrap(ctx, m, RewrapInput{JWE: rw.JWE, Merchant: "m_1", Binding: rw.Binding}); err != nil || same.Binding != rw.Binding {
				t.Fatalf("no-op rewrap: %+v %v", same, err)
			}
			for name, in := range map[string]RewrapInput{
				"other-merchant":   {JWE: jwe, Merchant: "m_2", Binding: bnd},
				"other-ciphertext": {JWE: f.encrypt(t, testPAN, f.now, "cs_2"), Merchant: "m_1", Binding: bnd},
			} {
				if out, err := f.svc.Rewrap(ctx, m, in); !errors.Is(err, ErrNotBound) || out.Binding != "" {
					t.Fatalf("%s: %+v %v", name, out, err)
				}
			}
			legacyOut, err := f.svc.Rewrap(ctx, m, RewrapInput{JWE: jwe, Merchant: "m_2"})
			if err != nil {
				t.Fatal(err)
			}
			if got := legacyOut.Binding != ""; got != legacy {
				t.Fatalf("rewrap without binding answered binding=%v", got)
			}
			if legacy && !f.kr.VerifyBinding("m_2", []byte(legacyOut.JWE), legacyOut.Binding) {
				t.Fatal("bind-legacy: binding not the merchant's named")
			}
			denied := 0
			for _, e := range f.events(t) {
				if e.Code == "card_not_bound" && e.Outcome == audit.OutcomeDenied {
					denied++
				}
			}
			if denied != 2 {
				t.Fatalf("%d card_not_bound denials audited, want 2", denied)
			}
		})
	}
}

// CheckBinding is forward's check: only the binding issued for the
// merchant named and that very ciphertext passes.
func TestCheckBinding(t *testing.T) {
	f := newFixture(t, nil)
	jwe := f.encrypt(t, testPAN, f.now, "cs_1")
	m, err := f.svc.Inspect(context.Background(), Meta{Client: "gateway"}, InspectInput{JWE: jwe, Session: "cs_1", Merchant: "m_1"})
	if err != nil {
		t.Fatal(err)
	}
	other := f.encrypt(t, testPAN, f.now, "cs_1")
	for _, tc := range []struct {
		name, merchant, jwe, binding string
		want                         error
	}{
		{"ok", "m_1", jwe, m.Binding, nil},
		{"refused/other-merchant", "m_2", jwe, m.Binding, ErrNotBound},
		{"refused/other-ciphertext", "m_1", other, m.Binding, ErrNotBound},
		{"refused/none", "m_1", jwe, "", ErrNotBound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.svc.CheckBinding(context.Background(), tc.merchant, tc.jwe, tc.binding); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("CheckBinding = %v, want %v", err, tc.want)
			}
		})
	}
	sealed := New(staticKeys{err: errors.New("sealed")}, f.log, nil, nil, Config{})
	if err := sealed.CheckBinding(context.Background(), "m_1", jwe, m.Binding); !errors.Is(err, ErrSealed) {
		t.Fatalf("sealed: %v", err)
	}
}
