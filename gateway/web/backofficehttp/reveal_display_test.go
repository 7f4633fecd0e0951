package backofficehttp_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// amexKS reveals one American Express card.
type amexKS struct{ fakeKS }

func (k *amexKS) Reveal(context.Context, wire.RevealRequest) (wire.RevealResponse, error) {
	return wire.RevealResponse{PAN: "378282246310005", ExpMonth: 11, ExpYear: 2031, Name: "Amex Holder"}, nil
}

// TestRevealGroupsByBrand: a revealed American Express number is grouped
// 4-6-5, as the checkout's field showed it to the shopper, and what stays
// once it hides has its real length (15), not a 16-digit mask
// (checkout.GroupPAN and checkout.MaskPAN, the one grouping rule).
func TestRevealGroupsByBrand(t *testing.T) {
	f := newFixture(t, fixtureOpts{ks: &amexKS{}})
	f.addOperator(t, "rita", operators.RoleRevealer, merchA, true)
	tok, _, err := f.toks.Put(context.Background(), tokens.Token{MerchantID: merchA, JWE: "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.a.b.c.d",
		Kid: "kek-1", Brand: "amex", BIN: "378282", Last4: "0005", ExpMonth: 11, ExpYear: 2031, Fingerprint: "fp_amex",
		CreatedAt: f.clock.Now().Add(-time.Hour)}, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	c := f.client()
	c.login(t, "rita")
	if d := c.do(t, http.MethodGet, "/backoffice/tokens/"+tok.ID, nil); d.status != 200 || !strings.Contains(d.body, "378282 •••• 0005") {
		t.Fatalf("detail: %d, masked form missing", d.status)
	}
	r := c.reveal(t, tok.ID, "ticket 42")
	if r.status != 200 {
		t.Fatalf("reveal: %d", r.status)
	}
	for _, want := range []string{`aria-label="Card number">3782 822463 10005</output>`, `id="bo-pan-hidden">•••• •••••• •0005 (hidden)</span>`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("revealed page lacks %s", want)
		}
	}
	if strings.Contains(r.body, "•••• •••• •••• 0005") {
		t.Error("the hidden mask has 16 places for a 15-digit card")
	}
}
