package unwrap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/card"
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
