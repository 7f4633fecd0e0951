package e2e

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
)

// devMasterKey is where -dev-auto-unseal keeps the master key, beside the
// keyring in the key service's volume; the admin commands take it as a
// reference, as they would take a production key from a file.
const devMasterKey = "file:keyring.sealed.devkey"

// TestKeyRotation rotates the KEK with `keyservice keys rotate` in a one-shot
// container while payments flow: none fails, new ones use the new version
// (the gateway re-fetches the public keys every 2 s here), tokens made before
// still reveal, and `blindgate rewrap` moves them to the new version, after
// which the old one is retired and they still reveal.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{
		// -rewrap-interval 0: this test moves the old tokens with
		// `blindgate rewrap` and counts what it moved; the gateway's
		// background rewrap (gateway/rewrap tests) would race it.
		GatewayArgs: []string{"-jwks-refresh", "2s", "-submit-per-ip", "1000", "-rewrap-interval", "0"},
		Operators:   []operatorSpec{{"rita", "revealer"}},
	})
	bo := s.boLogin(t, "rita")
	old := s.mustPay(t, brandCards[1])
	oldKeys := s.publicKeys(t)
	oldKid := old.Kid
	if got := bo.tokenKid(t, old.Token); got != oldKid {
		t.Fatalf("token %s stored under %q, the page encrypted to %q", old.Token, got, oldKid)
	}
	var reveals []revealRecord
	reveal := func(t *testing.T, p payment, reason string) {
		t.Helper()
		st, pan := bo.reveal(t, p.Token, reason)
		if st != http.StatusOK || pan != p.Card.PAN {
			t.Fatalf("reveal %s: HTTP %d, number matches: %v", p.Token, st, pan == p.Card.PAN)
		}
		reveals = append(reveals, revealRecord{Token: p.Token, Actor: bo.op.ID, Reason: reason})
	}

	tr := s.startTraffic(brandCards[0], 100*time.Millisecond)
	t.Cleanup(tr.stop)
	tr.waitOK(t, 3, time.Time{}, 30*time.Second)

	out := s.ksAdmin(t, "keys", "rotate", "-master-key", devMasterKey)
	newKid := firstMatch(t, out, `new active key (\S+)`)
	rotatedAt := time.Now()
	if newKid == oldKid {
		t.Fatalf("rotation kept kid %s", newKid)
	}

	// The key service reloads its keyring within ~2 s, the gateway
	// re-fetches the public keys every 2 s: new payments follow.
	var fresh payment
	eventually(t, 30*time.Second, "a payment encrypted to the new KEK", func() (bool, string) {
		ok, failed := tr.results()
		for _, p := range ok {
			if p.Kid == newKid {
				fresh = p
				return true, ""
			}
		}
		return false, strconv.Itoa(len(ok)) + " ok, " + strconv.Itoa(len(failed)) + " failed"
	})
	tr.waitOK(t, 3, fresh.At, 30*time.Second)
	tr.stop()
	ok, failed := tr.results()
	t.Logf("traffic: %d payments, %d failed; new KEK used %s after the rotation", len(ok), len(failed), fresh.At.Sub(rotatedAt).Round(100*time.Millisecond))

	t.Run("no-payment-failed-during-rotation", func(t *testing.T) {
		for _, err := range failed {
			t.Errorf("payment failed: %v", err)
		}
		seenNew := false
		for _, p := range ok {
			switch {
			case p.Kid == newKid:
				seenNew = true
			case seenNew:
				t.Errorf("payment %s used %s after the new KEK was in use", p.Token, p.Kid)
			}
		}
	})

	t.Run("new-tokens-use-the-new-kid", func(t *testing.T) {
		if got := bo.tokenKid(t, fresh.Token); got != newKid {
			t.Errorf("token %s stored under %q, want %q", fresh.Token, got, newKid)
		}
		reveal(t, fresh, "E2E rotation: new token")
	})

	t.Run("old-tokens-still-reveal", func(t *testing.T) {
		if got := bo.tokenKid(t, old.Token); got != oldKid {
			t.Errorf("old token %s now under %q before any rewrap", old.Token, got)
		}
		reveal(t, old, "E2E rotation: old token")
	})

	var moved int
	t.Run("rewrap-moves-old-tokens", func(t *testing.T) {
		underOld := 1 // old
		for _, p := range ok {
			if p.Kid == oldKid {
				underOld++
			}
		}
		out := s.adminWith(t, []testcontainers.ContainerFile{s.signingKeyFile(t, "gateway", gwKeyDir+"/gateway.jwk")},
			"rewrap", "-kid", oldKid,
			"-keyservice-url", "http://"+ksAlias+":8443", "-keyservice-audience", ksAudience,
			"-checkout-client-id", "gateway", "-checkout-key", gwKeyDir+"/gateway.jwk")
		moved, _ = strconv.Atoi(firstMatch(t, out, `moved (\d+)`))
		if moved != underOld || firstMatch(t, out, `failed (\d+)`) != "0" {
			t.Errorf("rewrap: %q, want %d moved and none failed", out, underOld)
		}
		if got := bo.tokenKid(t, old.Token); got != newKid {
			t.Errorf("old token %s under %q after rewrap, want %q", old.Token, got, newKid)
		}
		// Retiring the old version proves the move: nothing decrypts under
		// it any more, yet the old token still reveals. The rotation is
		// minutes old, inside the grace a token count must wait out
		// (wire.RetireGrace), so the retirement is forced; the count and its
		// rules are tested in cmd/keyservice and cmd/blindgate.
		s.ksAdmin(t, "keys", "retire", "-kid", oldKid, "-master-key", devMasterKey, "-force", "e2e: rotation minutes old")
		oldKey := keyByKid(t, oldKeys, oldKid)
		// Until the key service reloads its keyring the old version still
		// opens (a token, or a 503 while it reloads); after, the one answer
		// is 400 key_unknown. Any other refusal would be a different fault
		// passing for the retirement.
		eventually(t, 15*time.Second, "a ciphertext under the retired KEK refused with 400 key_unknown", func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			sid, err := s.createSession(ctx)
			if err != nil {
				return false, err.Error()
			}
			p, err := s.payWithKey(ctx, sid, brandCards[2], oldKey)
			switch {
			case isCode(err, http.StatusBadRequest, "key_unknown"):
				return true, ""
			case err == nil:
				return false, "accepted: token " + p.Token
			case isStatus(err, http.StatusServiceUnavailable):
				return false, err.Error()
			}
			t.Fatalf("a ciphertext under the retired KEK: %v, want 400 key_unknown", err)
			return false, ""
		})
		reveal(t, old, "E2E rotation: old token after rewrap and retire")
	})

	t.Run("audit/chain-verifies-with-every-reveal-and-rewrap", func(t *testing.T) {
		events := s.auditTrail(t)
		checkReveals(t, events, reveals)
		rewraps, reloads := 0, 0
		for _, e := range events {
			switch {
			case e.Event == audit.EventRewrap && e.Outcome == audit.OutcomeSuccess:
				rewraps++
			case e.Event == audit.EventKeyringReload:
				reloads++
			}
		}
		if rewraps != moved {
			t.Errorf("%d successful rewraps on record, %d tokens moved", rewraps, moved)
		}
		if reloads < 2 {
			t.Errorf("%d keyring reloads on record, want the rotation's and the retirement's", reloads)
		}
	})
}

func keyByKid(t *testing.T, keys []jose.PublicKey, kid string) jose.PublicKey {
	t.Helper()
	for _, k := range keys {
		if k.Kid == kid {
			return k
		}
	}
	t.Fatalf("no key %s in the saved key set", kid)
	return jose.PublicKey{}
}
