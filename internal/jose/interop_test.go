package jose

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"testing"

	gojose "github.com/go-jose/go-jose/v4"
)

// These tests check our wire format against go-jose, an implementation that
// shares no code with jwx, so a bug common to our wrapper and jwx (or a
// parse quirk in one of them) cannot make a round trip pass on its own.

func TestInteropGoJoseEncryptsWeDecrypt(t *testing.T) {
	tests := []struct {
		name string
		alg  gojose.KeyAlgorithm
		pub  crypto.PublicKey
		priv crypto.PrivateKey
		want string
	}{
		{"ok/RSA-OAEP-256", gojose.RSA_OAEP_256, &rsa3072().PublicKey, rsa3072(), AlgRSAOAEP256},
		{"ok/ECDH-ES+A256KW-P-256", gojose.ECDH_ES_A256KW, &p256().PublicKey, p256(), AlgECDHES},
		{"ok/ECDH-ES+A256KW-P-384", gojose.ECDH_ES_A256KW, &p384().PublicKey, p384(), AlgECDHES},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := (&gojose.EncrypterOptions{}).WithHeader(HeaderSessionID, "cs_interop")
			e, err := gojose.NewEncrypter(gojose.A256GCM, gojose.Recipient{Algorithm: tc.alg, Key: tc.pub, KeyID: "kek-x"}, opts)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := e.Encrypt(testPlain)
			if err != nil {
				t.Fatal(err)
			}
			compact, err := obj.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			h, pt, err := Decrypt([]byte(compact), tc.priv)
			if err != nil {
				t.Fatalf("Decrypt(go-jose output): %v; header %v", err, headerOf(t, []byte(compact)))
			}
			want := Header{Alg: tc.want, Enc: EncA256GCM, Kid: "kek-x", SessionID: "cs_interop"}
			if h != want || !bytes.Equal(pt, testPlain) {
				t.Fatalf("got %+v %q", h, pt)
			}
		})
	}
}

func TestInteropWeEncryptGoJoseDecrypts(t *testing.T) {
	tests := []struct {
		name string
		pub  crypto.PublicKey
		priv crypto.PrivateKey
	}{
		{"ok/RSA-OAEP-256", &rsa3072().PublicKey, rsa3072()},
		{"ok/ECDH-ES+A256KW-P-256", &p256().PublicKey, p256()},
		{"ok/ECDH-ES+A256KW-P-384", &p384().PublicKey, p384()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := mustEncrypt(t, tc.pub, "kek-y")
			obj, err := gojose.ParseEncryptedCompact(string(ct),
				[]gojose.KeyAlgorithm{gojose.RSA_OAEP_256, gojose.ECDH_ES_A256KW},
				[]gojose.ContentEncryption{gojose.A256GCM})
			if err != nil {
				t.Fatal(err)
			}
			pt, err := obj.Decrypt(tc.priv)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pt, testPlain) {
				t.Fatalf("plaintext %q", pt)
			}
			if obj.Header.KeyID != "kek-y" || obj.Header.ExtraHeaders[HeaderSessionID] != "cs_test1" {
				t.Fatalf("header %+v", obj.Header)
			}
		})
	}
}

func TestInteropJWS(t *testing.T) {
	for name, key := range map[string]crypto.Signer{"EdDSA": edKey(), "ES256": p256()} {
		t.Run("ok/we-sign-go-jose-verifies/"+name, func(t *testing.T) {
			s, err := Sign(claims, key, "gw-1")
			if err != nil {
				t.Fatal(err)
			}
			obj, err := gojose.ParseSignedCompact(s, []gojose.SignatureAlgorithm{gojose.EdDSA, gojose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			payload, err := obj.Verify(key.Public())
			if err != nil || !bytes.Equal(payload, claims) {
				t.Fatalf("go-jose verify: %v %q", err, payload)
			}
		})
		t.Run("ok/go-jose-signs-we-verify/"+name, func(t *testing.T) {
			alg := gojose.EdDSA
			if name == "ES256" {
				alg = gojose.ES256
			}
			opts := (&gojose.SignerOptions{}).WithType(TypeRequest).WithHeader("kid", "gw-2")
			signer, err := gojose.NewSigner(gojose.SigningKey{Algorithm: alg, Key: key}, opts)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := signer.Sign(claims)
			if err != nil {
				t.Fatal(err)
			}
			s, err := obj.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			kid, payload, err := VerifyCompact(s, lookupOf(map[string]crypto.PublicKey{"gw-2": key.Public()}))
			if err != nil || kid != "gw-2" || !bytes.Equal(payload, claims) {
				t.Fatalf("VerifyCompact(go-jose output): %v %q %q", err, kid, payload)
			}
		})
	}
}

func TestInteropJWKS(t *testing.T) {
	data, err := MarshalJWKS([]PublicKey{
		{Kid: "kek-ec", Alg: AlgECDHES, Key: &p256().PublicKey},
		{Kid: "kek-rsa", Alg: AlgRSAOAEP256, Key: &rsa3072().PublicKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	var set gojose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0].KeyID != "kek-ec" || set.Keys[0].Use != "enc" || set.Keys[1].Algorithm != AlgRSAOAEP256 {
		t.Fatalf("go-jose sees %+v", set.Keys)
	}
	// And the other way: a JWKS written by go-jose parses here.
	back, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseJWKS(back)
	if err != nil {
		t.Fatalf("ParseJWKS(go-jose output): %v", err)
	}
	if len(keys) != 2 || keys[1].Kid != "kek-rsa" {
		t.Fatalf("keys %+v", keys)
	}
}

// TestInteropHandRolledECDH builds a JWE the way the checkout page's
// WebCrypto code does (RFC 7518 Concat KDF, RFC 3394 AES key wrap, AES-GCM
// with the encoded header as AAD, and an epk straight from
// exportKey("jwk"), which adds "ext" and "key_ops"), using only the Go
// standard library, and checks that Decrypt opens it.
func TestInteropHandRolledECDH(t *testing.T) {
	for _, tc := range []struct {
		name string
		priv *ecdsa.PrivateKey
		crv  string
	}{{"ok/P-256", p256(), "P-256"}, {"ok/P-384", p384(), "P-384"}} {
		t.Run(tc.name, func(t *testing.T) {
			recipient, err := tc.priv.PublicKey.ECDH()
			if err != nil {
				t.Fatal(err)
			}
			eph, err := recipient.Curve().GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			z, err := eph.ECDH(recipient)
			if err != nil {
				t.Fatal(err)
			}
			pt := eph.PublicKey().Bytes()[1:]
			size := len(pt) / 2
			hdr := `{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"crv":"` + tc.crv + `","ext":true,"key_ops":[],"kty":"EC","x":"` +
				enc(pt[:size]) + `","y":"` + enc(pt[size:]) + `"},"kid":"kek-js","bg_sid":"cs_js"}`
			encHdr := enc([]byte(hdr))

			kek := concatKDF(z, AlgECDHES, 256)
			cek := make([]byte, 32)
			_, _ = rand.Read(cek)
			wrapped := aesKeyWrap(t, kek, cek)
			block, _ := aes.NewCipher(cek)
			gcm, _ := cipher.NewGCM(block)
			iv := make([]byte, 12)
			_, _ = rand.Read(iv)
			sealed := gcm.Seal(nil, iv, testPlain, []byte(encHdr))
			ct, tag := sealed[:len(sealed)-16], sealed[len(sealed)-16:]
			compact := encHdr + "." + enc(wrapped) + "." + enc(iv) + "." + enc(ct) + "." + enc(tag)

			h, got, err := Decrypt([]byte(compact), tc.priv)
			if err != nil {
				t.Fatal(err)
			}
			if h.Kid != "kek-js" || h.SessionID != "cs_js" || !bytes.Equal(got, testPlain) {
				t.Fatalf("%+v %q", h, got)
			}
		})
	}
}

// concatKDF is RFC 7518 section 4.6.2 with empty apu/apv, one SHA-256 round.
func concatKDF(z []byte, alg string, bits uint32) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, uint32(1))
	b.Write(z)
	_ = binary.Write(&b, binary.BigEndian, uint32(len(alg)))
	b.WriteString(alg)
	_ = binary.Write(&b, binary.BigEndian, uint32(0)) // apu
	_ = binary.Write(&b, binary.BigEndian, uint32(0)) // apv
	_ = binary.Write(&b, binary.BigEndian, bits)
	sum := sha256.Sum256(b.Bytes())
	return sum[:bits/8]
}

// aesKeyWrap is RFC 3394 key wrap.
func aesKeyWrap(t *testing.T, kek, key []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(kek)
	if err != nil {
		t.Fatal(err)
	}
	n := len(key) / 8
	a := []byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}
	r := make([][]byte, n)
	for i := range r {
		r[i] = append([]byte(nil), key[i*8:(i+1)*8]...)
	}
	buf := make([]byte, 16)
	for j := 0; j < 6; j++ {
		for i := 0; i < n; i++ {
			copy(buf, a)
			copy(buf[8:], r[i])
			block.Encrypt(buf, buf)
			tval := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(a, binary.BigEndian.Uint64(buf[:8])^tval)
			copy(r[i], buf[8:])
		}
	}
	out := append([]byte(nil), a...)
	for _, ri := range r {
		out = append(out, ri...)
	}
	return out
}
