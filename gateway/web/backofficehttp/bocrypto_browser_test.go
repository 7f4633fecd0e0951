package backofficehttp_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/internal/browsertest"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/wire"
)

var b64 = base64.RawURLEncoding

// handJWE encrypts plaintext to pub as ECDH-ES (direct) + A256GCM by hand,
// from RFC 7518 4.6 and 5.3, with apu and apv when given: an implementation
// independent of internal/jose's library, for the page to decrypt.
func handJWE(t *testing.T, pub *ecdh.PublicKey, hdr map[string]any, apu, apv []byte, plaintext []byte) string {
	t.Helper()
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt := eph.PublicKey().Bytes()
	hdr["alg"], hdr["enc"] = "ECDH-ES", "A256GCM"
	hdr["epk"] = map[string]string{"kty": "EC", "crv": "P-256", "x": b64.EncodeToString(pt[1:33]), "y": b64.EncodeToString(pt[33:])}
	if apu != nil {
		hdr["apu"] = b64.EncodeToString(apu)
	}
	if apv != nil {
		hdr["apv"] = b64.EncodeToString(apv)
	}
	z, err := eph.ECDH(pub)
	if err != nil {
		t.Fatal(err)
	}
	lenPrefixed := func(b []byte) []byte { return binary.BigEndian.AppendUint32(nil, uint32(len(b))) }
	var info []byte
	info = append(append(info, lenPrefixed([]byte("A256GCM"))...), "A256GCM"...)
	info = append(append(info, lenPrefixed(apu)...), apu...)
	info = append(append(info, lenPrefixed(apv)...), apv...)
	info = binary.BigEndian.AppendUint32(info, 256)
	kdf := sha256.Sum256(append(append([]byte{0, 0, 0, 1}, z...), info...))
	block, _ := aes.NewCipher(kdf[:])
	gcm, _ := cipher.NewGCM(block)
	hj, _ := json.Marshal(hdr)
	protected := b64.EncodeToString(hj)
	iv := make([]byte, 12)
	_, _ = rand.Read(iv)
	sealed := gcm.Seal(nil, iv, plaintext, []byte(protected))
	ct, tag := sealed[:len(sealed)-16], sealed[len(sealed)-16:]
	return strings.Join([]string{protected, "", b64.EncodeToString(iv), b64.EncodeToString(ct), b64.EncodeToString(tag)}, ".")
}

// TestBackofficeBrowserCrypto checks bocrypto.js, as the page loads it,
// against the key service's rules and an independent JWE: the thumbprint
// and reveal challenge equal wire's, the reason folds alike, the private
// key cannot be exported, and decryption accepts only an answer for this
// token and nonce, to this key, untampered.
func TestBackofficeBrowserCrypto(t *testing.T) {
	browser := browsertest.Browser(t)
	_, base := serveBrowser(t, fixtureOpts{noKS: true})
	tb := browsertest.NewTab(t, browser, browsertest.WithCSPProbe(), browsertest.FailOnExceptions())
	tb.Do(t, browsertest.Navigate(base+"/backoffice/login"), chromedp.WaitVisible(chromedp.ID("bo-username")))
	tb.WaitFor(t, `window.BlindgateBO && Object.isFrozen(window.BlindgateBO)`, 5*time.Second)

	// A reveal's key pair, kept by the page (window.__k, for this test only).
	jwkJSON := browsertest.Eval[string](t, tb, `BlindgateBO.newKeyPair().then(function (k) { window.__k = k; return BlindgateBO.publicJWK(k.publicKey); }).then(JSON.stringify)`)
	var key wire.BrowserKey
	if err := json.Unmarshal([]byte(jwkJSON), &key); err != nil {
		t.Fatal(err)
	}
	if strings.Count(jwkJSON, ":") != 4 {
		t.Errorf("the page sends more than the four public members: %s", jwkJSON)
	}
	jkt, err := wire.JWKThumbprint(key)
	if err != nil {
		t.Fatalf("the page's key: %v", err)
	}
	t.Run("private-key-not-extractable", func(t *testing.T) {
		got := browsertest.Eval[string](t, tb, `crypto.subtle.exportKey("jwk", window.__k.privateKey).then(function () { return "exported"; }, function (e) { return e.name; })`)
		if got != "InvalidAccessError" {
			t.Fatalf("exportKey(private): %s", got)
		}
	})
	t.Run("grouping-as-checkout", func(t *testing.T) {
		// The reveal spaces the number with the sizes the page carries
		// (checkout.PANGroups) and must agree with checkout.GroupPAN and,
		// for the hidden mask, checkout.MaskPAN at the number's length.
		for _, c := range []struct{ brand, pan string }{
			{"amex", "378282246310005"}, {"visa", "4242424242424242"}, {"diners", "36227206271667"},
			{"diners", "3056930009020004"}, {"visa", "4000000000000000006"}, {"mastercard", "5555555555554444"},
		} {
			groups := checkout.PANGroups(c.brand)
			got := browsertest.Eval[string](t, tb, fmt.Sprintf(`BlindgateBO.groupPAN(%q, %q)`, c.pan, groups))
			if want := checkout.GroupPAN(c.brand, c.pan); got != want {
				t.Errorf("%s %d digits: page %q, checkout %q", c.brand, len(c.pan), got, want)
			}
			got = browsertest.Eval[string](t, tb, fmt.Sprintf(`BlindgateBO.maskPAN(%q, %q)`, c.pan, groups))
			if want := checkout.MaskPAN(c.brand, "", c.pan[len(c.pan)-4:], len(c.pan)); got != want {
				t.Errorf("%s %d digits hidden: page %q, checkout %q", c.brand, len(c.pan), got, want)
			}
		}
	})
	t.Run("thumbprint-as-wire", func(t *testing.T) {
		if got := browsertest.Eval[string](t, tb, `BlindgateBO.thumbprint(`+jwkJSON+`)`); got != jkt {
			t.Fatalf("page %s, wire %s", got, jkt)
		}
	})
	t.Run("reason-folded-as-wire", func(t *testing.T) {
		for _, raw := range []string{"  ticket\t#1 ", "\u00a0a\u2003b\u0085c\ufeffd\u3000", "x\u200by", "é é"} {
			arg, _ := json.Marshal(raw)
			if got := browsertest.Eval[string](t, tb, `BlindgateBO.normReason(`+string(arg)+`)`); got != wire.NormReason(raw) {
				t.Errorf("normReason(%q): page %q, wire %q", raw, got, wire.NormReason(raw))
			}
		}
	})
	t.Run("challenge-as-wire", func(t *testing.T) {
		nonce, tok, reason := "rvn_"+strings.Repeat("Q", 43), "tok_abc", "ticket é #9"
		expr := fmt.Sprintf(`BlindgateBO.revealChallenge(%q, %q, %q, %q).then(function (b) { return Array.from(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join(""); })`, nonce, tok, reason, jkt)
		if got, want := browsertest.Eval[string](t, tb, expr), hex.EncodeToString(wire.RevealChallenge(nonce, tok, reason, jkt)); got != want {
			t.Fatalf("page %s, wire %s", got, want)
		}
	})

	pub, err := key.Point()
	if err != nil {
		t.Fatal(err)
	}
	card := []byte(`{"pan":"4111111111111111","exp_month":3,"exp_year":2031,"name":"Ada Lovelace"}`)
	const tok, nonce = "tok_abcdefabcdefabcdefabcdef", "rvn_RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRA"
	viaJose, err := jose.EncryptDirect(card, pub, map[string]string{"bg_tok": tok, "bg_nonce": nonce, "cty": wire.CardContentType})
	if err != nil {
		t.Fatal(err)
	}
	bound := func(extra map[string]any) map[string]any {
		h := map[string]any{"bg_tok": tok, "bg_nonce": nonce, "cty": wire.CardContentType}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	withAPUV := handJWE(t, pub, bound(nil), []byte("Alice"), []byte("Bob"), card)
	parts := strings.Split(string(viaJose), ".")
	ctb, _ := b64.DecodeString(parts[3])
	ctb[0] ^= 1
	tampered := strings.Join([]string{parts[0], parts[1], parts[2], b64.EncodeToString(ctb), parts[4]}, ".")
	other, _ := ecdh.P256().GenerateKey(rand.Reader)

	decrypt := func(jwe, tok, nonce string) string {
		return browsertest.Eval[string](t, tb, fmt.Sprintf(`BlindgateBO.decryptCard(%q, window.__k.privateKey, {token: %q, nonce: %q}).then(
			function (c) { return "ok " + c.pan + " " + c.exp_month + "/" + c.exp_year + " " + c.name; },
			function (e) { return "refused " + (e.code || e.name); })`, jwe, tok, nonce))
	}
	for _, tc := range []struct {
		name, jwe, tok, nonce, want string
	}{
		{"ok/internal-jose", string(viaJose), tok, nonce, "ok 4111111111111111 3/2031 Ada Lovelace"},
		{"ok/hand-made-with-apu-apv", withAPUV, tok, nonce, "ok 4111111111111111 3/2031 Ada Lovelace"},
		{"refused/another-token", string(viaJose), "tok_other", nonce, "refused binding_mismatch"},
		{"refused/another-nonce", string(viaJose), tok, "rvn_other", "refused binding_mismatch"},
		{"refused/tampered-ciphertext", tampered, tok, nonce, "refused decrypt_failed"},
		{"refused/to-another-key", handJWE(t, other.PublicKey(), bound(nil), nil, nil, card), tok, nonce, "refused decrypt_failed"},
		{"refused/compressed", handJWE(t, pub, bound(map[string]any{"zip": "DEF"}), nil, nil, card), tok, nonce, "refused unsupported"},
		{"refused/not-a-card", handJWE(t, pub, bound(map[string]any{"cty": "text/plain"}), nil, nil, card), tok, nonce, "refused unsupported"},
		{"refused/key-wrapping-alg", strings.Replace(withAPUV, withAPUV[:strings.Index(withAPUV, ".")], b64.EncodeToString([]byte(`{"alg":"ECDH-ES+A256KW","enc":"A256GCM"}`)), 1), tok, nonce, "refused unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decrypt(tc.jwe, tc.tok, tc.nonce); got != tc.want {
				t.Fatalf("%s, want %s", got, tc.want)
			}
		})
	}
	tb.NoCSPViolations(t)
}
