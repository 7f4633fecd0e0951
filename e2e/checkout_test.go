package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestCheckoutEveryBrand is the shopper's path through the production
// topology: the merchant creates a session with its secret key, its page on
// another origin embeds the checkout with SRI, the shopper types a test card
// of each brand into the cross-origin iframe in Chromium and submits, the
// merchant page receives the token by postMessage from that iframe, and the
// merchant API returns the masked card. Then the key service is stopped:
// the page shows the retry message and no token is minted; once it is back,
// the same page succeeds, and the card keeps its fingerprint. Last, the key
// service's audit chain verifies with its signed checkpoints. One stack,
// subtests in order.
func TestCheckoutEveryBrand(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{
		// A checkpoint every 4 records: this scenario's inspects get some
		// signed while it serves, not only the one its stop writes.
		KeyServiceArgs: []string{"-audit-checkpoint-every", "4"},
		Forward:        true,
	})
	fp := newForwardPath(t, s)
	tab := newBrowser(t, "checkout")
	fingerprints := map[string]string{} // brand -> the merchant API's fingerprint
	paid := map[string]string{}         // brand -> token, paid in Chromium

	for _, c := range brandCards {
		t.Run("token/"+c.Brand, func(t *testing.T) {
			sid := s.mustSession(t)
			frame := s.checkoutFrame(t, tab, sid)
			typeCard(t, frame, c)
			st := pageResult(t, tab)
			if st.Error != "" || !strings.HasPrefix(st.Token, "tok_") {
				t.Fatalf("merchant page: token %q, error %q", st.Token, st.Error)
			}
			if !receivedByPostMessage(st, s.GatewayURL) {
				b, _ := json.Marshal(st.Messages)
				t.Errorf("the token did not arrive as a blindgate:token message from the gateway's iframe (%s): %s", s.GatewayURL, b)
			}
			v := s.token(t, st.Token)
			// First 6 and last 4 (BIN 8 is opt-in), and a fingerprint scoped
			// to this merchant ("fpm_"): one merchant cannot join its cards
			// with another's.
			if v.ID != st.Token || v.Brand != c.Brand || v.BIN != c.BIN || len(v.BIN) != 6 || v.Last4 != c.Last4 ||
				v.ExpMonth != 12 || v.ExpYear != expYear() || !strings.HasPrefix(v.Fingerprint, "fpm_") {
				t.Errorf("merchant API: %+v, want %s %s…%s 12/%d with an fpm_ fingerprint", v, c.Brand, c.BIN, c.Last4, expYear())
			}
			fingerprints[c.Brand] = v.Fingerprint
			paid[c.Brand] = st.Token
			// The merchant sees a token and a masked card, never the number.
			api, _ := json.Marshal(v)
			msgs, _ := json.Marshal(st.Messages)
			if strings.Contains(string(api), c.PAN) || strings.Contains(string(msgs), c.PAN) {
				t.Errorf("the card number reached the merchant: API %s, messages %s", api, msgs)
			}
		})
	}

	// The Visa card's CVC is still within its lifetime: the forward fills it.
	if tok := paid[brandCards[0].Brand]; tok != "" {
		testForward(t, s, fp, tok, brandCards[0])
	} else {
		t.Error("forward: no Visa token was paid in the browser")
	}

	t.Run("503/keyservice-stopped-retry-message-no-token", func(t *testing.T) {
		before := len(s.tokens(t))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		stop := 10 * time.Second
		if err := s.KeyService.Stop(ctx, &stop); err != nil {
			t.Fatalf("stop keyservice: %v", err)
		}
		sid := s.mustSession(t)
		// The page still loads and encrypts: the gateway serves the public
		// keys it cached. Only the inspect step needs the key service.
		frame := s.checkoutFrame(t, tab, sid)
		c := brandCards[0]
		typeCard(t, frame, c)
		msg := statusOf(t, frame, "error")
		if !strings.Contains(msg, "temporarily unavailable") || !strings.Contains(msg, "try again") {
			t.Errorf("#bg-status = %q, want the retry-later message", msg)
		}
		if st := pageState0(t, tab); st.Token != "" {
			t.Errorf("merchant page got token %q with the key service down", st.Token)
		}
		if after := len(s.tokens(t)); after != before {
			t.Fatalf("tokens: %d before, %d after a submission with the key service down: a token without a checked ciphertext", before, after)
		}
		if tok := paid[brandCards[1].Brand]; tok != "" {
			testForwardKeyServiceDown(t, s, fp, tok)
		}

		// Back up: the shopper retries on the same page and it goes through.
		if err := s.KeyService.Start(ctx); err != nil {
			t.Fatalf("start keyservice: %v", err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			typeCard(t, frame, c)
			if st := waitOutcome(t, frame); st == "success" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("checkout did not recover within 30s of the key service's restart")
			}
			time.Sleep(time.Second)
		}
		st := pageResult(t, tab)
		// Same card, same merchant: the same fingerprint, across the key
		// service's restart (the merchant can recognise a returning card).
		if v := s.token(t, st.Token); v.Last4 != c.Last4 || v.Fingerprint != fingerprints[c.Brand] {
			t.Errorf("token after recovery: %+v, want last4 %s and fingerprint %s", v, c.Last4, fingerprints[c.Brand])
		}
		if after := len(s.tokens(t)); after != before+1 {
			t.Errorf("tokens: %d before, %d after the recovered payment, want +1", before, after)
		}
	})

	t.Run("audit/signed-checkpoints-verify", func(t *testing.T) {
		// Those signed while serving and the one the stop above wrote, each
		// also in the exported copy, checked by the image's own command.
		if in, exported := s.auditCheckpoints(t); in < 2 || exported != in {
			t.Errorf("checkpoints: %d in the chain, %d exported; want at least 2, all exported", in, exported)
		}
	})
}

// receivedByPostMessage reports whether the merchant window got the token
// in a blindgate:token message from the gateway's origin and its iframe.
func receivedByPostMessage(st pageState, gateway string) bool {
	for _, m := range st.Messages {
		if m.Origin == gateway && m.FromFrame && m.Data["type"] == "blindgate:token" && m.Data["token"] == st.Token {
			return true
		}
	}
	return false
}

// pageState0 reads what the merchant page recorded so far, without waiting.
func pageState0(t *testing.T, tab context.Context) pageState {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	var st pageState
	raw, err := evalString(ctx, `JSON.stringify(window.__bg || {})`)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitOutcome waits for the checkout form to finish a submission and
// returns the kind of its status ("success" or "error").
func waitOutcome(t *testing.T, frame context.Context) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(frame, 30*time.Second)
	defer cancel()
	kind, err := pollString(ctx, `(function () { var s = document.getElementById("bg-status"); var k = s && s.dataset.kind; return k === "success" || k === "error" ? k : ""; })()`)
	if err != nil {
		t.Fatalf("checkout form shows no outcome: %v", err)
	}
	return kind
}
