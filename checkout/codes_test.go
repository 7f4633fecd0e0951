package checkout

import (
	"regexp"
	"testing"

	"github.com/blindgate/blindgate/internal/apierr"
)

// TestPageKnowsShopperCodes: every error code the checkout's submit and keys
// endpoints can answer has its own message on the page, so a shopper never
// sees a generic failure for a case we know.
func TestPageKnowsShopperCodes(t *testing.T) {
	a, err := NewAssets()
	if err != nil {
		t.Fatal(err)
	}
	js, _, _ := a.Asset(ScriptCheckout)
	block := regexp.MustCompile(`(?s)var CODE_MESSAGES = \{(.*?)\};`).FindSubmatch(js)
	if block == nil {
		t.Fatal("checkout.js has no CODE_MESSAGES table")
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`(\w+):\s*"srv_`).FindAllSubmatch(block[1], -1) {
		known[string(m[1])] = true
	}
	for _, e := range []*apierr.Error{
		apierr.CardInvalid, apierr.CardExpired, apierr.CardUnsupported, apierr.CardUndecryptable, apierr.CardStale,
		apierr.SessionMismatch, apierr.UnknownKey, apierr.InvalidJWE, apierr.UnsupportedAlg,
		apierr.SessionNotFound, apierr.SessionExpired, apierr.SessionCompleted, apierr.TooManyAttempts,
		apierr.RateLimited, apierr.KeyServiceDown, apierr.Unavailable, apierr.Sealed, apierr.SessionBusy,
	} {
		if !known[e.Code] {
			t.Errorf("checkout.js has no message for %q", e.Code)
		}
	}
}
