package backofficehttp_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/tokens"
)

// TestRevealGroupsByBrand: the token page of an American Express card tells
// the reveal's script to space the number 4-6-5, as the checkout's field
// showed it to the shopper (checkout.PANGroups, the one grouping rule; the
// script's use of it is checked in TestBackofficeBrowserCrypto), and its
// masked forms never draw a 16-digit number.
func TestRevealGroupsByBrand(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.addOperator(t, "rita", operators.RoleRevealer, merchA, true)
	tok, _, err := f.toks.Put(context.Background(), tokens.Token{MerchantID: merchA, JWE: "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.a.b.c.d",
		Kid: "kek-1", Brand: "amex", BIN: "378282", Last4: "0005", ExpMonth: 11, ExpYear: 2031, Fingerprint: "fp_amex",
		CreatedAt: f.clock.Now().Add(-time.Hour)}, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	c := f.client()
	c.login(t, "rita")
	d := c.do(t, http.MethodGet, "/backoffice/tokens/"+tok.ID, nil)
	if d.status != 200 {
		t.Fatalf("detail: %d", d.status)
	}
	for _, want := range []string{"378282 •••• 0005", `data-pan-groups="4,6,5"`} {
		if !strings.Contains(d.body, want) {
			t.Errorf("token page lacks %s", want)
		}
	}
	if strings.Contains(d.body, "•••• •••• •••• 0005") {
		t.Error("the page draws 16 places for a 15-digit card")
	}
}
