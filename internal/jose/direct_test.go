package jose

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// browserKey is the reveal page's key pair: WebCrypto's ECDH P-256.
func browserKey(t *testing.T) (*ecdh.PrivateKey, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), k.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return k, ek
}

var directHeader = map[string]string{"bg_tok": "tok_1", "bg_nonce": "rvn_abc", "cty": "blindgate-card+json"}

const cardJSON = `{"pan":"4242424242424242","exp_month":12,"exp_year":2031,"name":"Ada"}`

// openByHand decrypts as the reveal page's script does, step by step with
// nothing from jwx: the Concat KDF of RFC 7518 4.6.2 (AlgorithmID
// "A256GCM", empty PartyUInfo and PartyVInfo, keydatalen 256) over the
// ECDH secret with the header's epk, then AES-256-GCM with the protected
// header's base64url text as the additional data.
func openByHand(t *testing.T, compact []byte, priv *ecdh.PrivateKey) (map[string]any, []byte) {
	t.Helper()
	parts := strings.Split(string(compact), ".")
	if len(parts) != 5 || parts[1] != "" {
		t.Fatalf("not a direct compact JWE: %d parts, encrypted key %q", len(parts), parts[1])
	}
	d := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var hdr map[string]any
	if err := json.Unmarshal(d(parts[0]), &hdr); err != nil {
		t.Fatal(err)
	}
	epk := hdr["epk"].(map[string]any)
	pt := append([]byte{4}, d(epk["x"].(string))...)
	pt = append(pt, d(epk["y"].(string))...)
	eph, err := ecdh.P256().NewPublicKey(pt)
	if err != nil {
		t.Fatal(err)
	}
	z, err := priv.ECDH(eph)
	if err != nil {
		t.Fatal(err)
	}
	lenPrefixed := func(b []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) }
	var kdf []byte
	kdf = binary.BigEndian.AppendUint32(kdf, 1) // round 1 of 1: SHA-256 gives the 256 bits
	kdf = append(kdf, z...)
	kdf = append(kdf, lenPrefixed([]byte("A256GCM"))...)
	kdf = append(kdf, lenPrefixed(nil)...) // PartyUInfo
	kdf = append(kdf, lenPrefixed(nil)...) // PartyVInfo
	kdf = binary.BigEndian.AppendUint32(kdf, 256)
	cek := sha256.Sum256(kdf)
	block, err := aes.NewCipher(cek[:])
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	out, err := gcm.Open(nil, d(parts[2]), append(d(parts[3]), d(parts[4])...), []byte(parts[0]))
	if err != nil {
		t.Fatalf("AES-GCM by hand: %v", err)
	}
	return hdr, out
}

func TestDirectRoundTrip(t *testing.T) {
	priv, epriv := browserKey(t)
	out, err := EncryptDirect([]byte(cardJSON), priv.PublicKey(), directHeader)
	if err != nil {
		t.Fatal(err)
	}
	// With jwx, through the strict parse.
	hdr, pt, err := DecryptDirect(out, epriv)
	if err != nil {
		t.Fatalf("DecryptDirect: %v", err)
	}
	if string(pt) != cardJSON || len(hdr) != 3 || hdr["bg_tok"] != "tok_1" || hdr["bg_nonce"] != "rvn_abc" || hdr["cty"] != "blindgate-card+json" {
		t.Fatalf("jwx: header %v, plaintext %q", hdr, pt)
	}
	// By hand, as the browser does.
	h, pt2 := openByHand(t, out, priv)
	if string(pt2) != cardJSON {
		t.Fatalf("by hand: %q", pt2)
	}
	if h["alg"] != "ECDH-ES" || h["enc"] != "A256GCM" || h["bg_tok"] != "tok_1" || h["bg_nonce"] != "rvn_abc" || h["cty"] != "blindgate-card+json" {
		t.Fatalf("protected header %v", h)
	}
	for _, m := range []string{"apu", "apv", "kid", "zip"} {
		if _, ok := h[m]; ok {
			t.Errorf("protected header has %s", m)
		}
	}
	// Two answers to one key share no ephemeral key.
	again, _ := EncryptDirect([]byte(cardJSON), priv.PublicKey(), directHeader)
	if bytes.Equal(bytes.Split(again, []byte("."))[0], bytes.Split(out, []byte("."))[0]) {
		t.Fatal("the ephemeral key was reused")
	}
}

func TestDirectRefusals(t *testing.T) {
	priv, epriv := browserKey(t)
	_, otherE := browserKey(t)
	out, err := EncryptDirect([]byte(cardJSON), priv.PublicKey(), directHeader)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(out), ".")
	retoken := func() []byte {
		raw, _ := base64.RawURLEncoding.DecodeString(parts[0])
		raw = bytes.Replace(raw, []byte("tok_1"), []byte("tok_2"), 1)
		return []byte(base64.RawURLEncoding.EncodeToString(raw) + "." + strings.Join(parts[1:], "."))
	}
	for _, tc := range []struct {
		name string
		in   []byte
		key  *ecdsa.PrivateKey
		want error
	}{
		{"decrypt/another-key", out, otherE, ErrDecrypt},
		{"decrypt/header-edited", retoken(), epriv, ErrDecrypt},
		{"malformed/encrypted-key-present", []byte(parts[0] + ".AAAA." + strings.Join(parts[2:], ".")), epriv, ErrMalformed},
		{"malformed/four-parts", []byte(strings.Join(parts[:4], ".")), epriv, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := DecryptDirect(tc.in, tc.key); !errors.Is(err, tc.want) {
				t.Fatalf("DecryptDirect = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("unsupported/header-member", func(t *testing.T) {
		if _, err := EncryptDirect([]byte("x"), priv.PublicKey(), map[string]string{"kid": "k"}); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("EncryptDirect = %v", err)
		}
	})
	t.Run("unsupported/p384-recipient", func(t *testing.T) {
		k, _ := ecdh.P384().GenerateKey(rand.Reader)
		if _, err := EncryptDirect([]byte("x"), k.PublicKey(), nil); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("EncryptDirect = %v", err)
		}
	})
	// A card ciphertext is never accepted in this form: Decrypt (Contract 1)
	// refuses plain ECDH-ES, so an answer can never pose as a stored card.
	t.Run("card-decrypt-refuses-direct", func(t *testing.T) {
		if _, _, err := Decrypt(out, epriv); err == nil {
			t.Fatal("Decrypt accepted a direct ECDH-ES JWE")
		}
	})
}
