package jose

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// The fuzz targets check that hostile input never panics and never escapes
// the documented sentinels.

func isSentinel(err error) bool {
	for _, s := range []error{ErrMalformed, ErrUnsupported, ErrTooLarge, ErrDecrypt, ErrSignature} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func jweSeeds(f *testing.F) {
	ec := mustEncrypt(f, &p256().PublicKey, "kek-1")
	f.Add(ec)
	f.Add(mustEncrypt(f, &p384().PublicKey, "kek-2"))
	f.Add(mustEncrypt(f, &rsa3072().PublicKey, "kek-3"))
	parts := strings.Split(string(ec), ".")
	f.Add([]byte(strings.Join(parts[:4], ".")))
	f.Add([]byte(`{"protected":"e30","ciphertext":""}`))
	f.Add([]byte(enc([]byte(`{"alg":"dir","enc":"A256GCM","zip":"DEF","kid":"k","bg_sid":"s"}`)) + "...."))
	f.Add([]byte(enc([]byte(`{"alg":"ECDH-ES+A256KW","enc":"A256GCM","kid":"k","bg_sid":"s","epk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}}`)) + "." + parts[1] + "." + parts[2] + "." + parts[3] + "." + parts[4]))
}

func FuzzParseHeader(f *testing.F) {
	jweSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeader(data)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("non-sentinel error %v", err)
			}
			if h != (Header{}) {
				t.Fatal("header returned with error")
			}
			return
		}
		if h.Enc != EncA256GCM || (h.Alg != AlgRSAOAEP256 && h.Alg != AlgECDHES) || !validID(h.Kid) || !validID(h.SessionID) {
			t.Fatalf("accepted header %+v", h)
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	jweSeeds(f)
	rsaKey, ecKey, ec384 := rsa3072(), p256(), p384()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, key := range []crypto.PrivateKey{ecKey, ec384, rsaKey} {
			_, pt, err := Decrypt(data, key)
			if err != nil {
				if !isSentinel(err) || pt != nil {
					t.Fatalf("bad failure %v", err)
				}
				if errors.Is(err, ErrDecrypt) && err.Error() != ErrDecrypt.Error() {
					t.Fatalf("ErrDecrypt with detail: %q", err)
				}
				continue
			}
			// Anything that decrypts must be something the key holder made:
			// all our seeds carry the same plaintext.
			if !bytes.Equal(pt, testPlain) {
				t.Fatalf("decrypted unexpected plaintext of %d bytes", len(pt))
			}
		}
	})
}

func FuzzVerifyCompact(f *testing.F) {
	ed, err := Sign(claims, edKey(), "ed")
	if err != nil {
		f.Fatal(err)
	}
	es, err := Sign(claims, p256(), "ec")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ed)
	f.Add(es)
	f.Add(enc([]byte(`{"alg":"none","kid":"ed","typ":"bg-req+jwt"}`)) + "." + enc(claims) + ".")
	f.Add(enc([]byte(`{"alg":"ES256","kid":"ed","typ":"bg-req+jwt"}`)) + "." + enc(claims) + "." + enc(make([]byte, 64)))
	f.Add(`{"payload":"e30","signatures":[]}`)
	keys := lookupOf(map[string]crypto.PublicKey{"ed": edKey().Public(), "ec": p256().Public(), "rsa": rsa3072().Public()})
	f.Fuzz(func(t *testing.T, s string) {
		_, payload, err := VerifyCompact(s, keys)
		if err != nil {
			if payload != nil || (!isSentinel(err) && !errors.Is(err, errNoSuchKid)) {
				t.Fatalf("bad failure %v", err)
			}
			return
		}
		if !bytes.Equal(payload, claims) {
			t.Fatalf("verified a payload we never signed (%d bytes)", len(payload))
		}
	})
}

// FuzzCheckB64: checkB64, which validates without decoding, accepts
// exactly what decodeB64 decodes, and counts its bytes.
func FuzzCheckB64(f *testing.F) {
	for _, s := range []string{"", "A", "AA", "AB", "AAA", "AAB", "AAAA", "QQ", "QR", "QUI", "QUJ", "-_-_", "a+b/", "AA==", "A\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		n, err := checkB64(s)
		d, derr := decodeB64(s)
		if (err == nil) != (derr == nil) || (err == nil && n != len(d)) {
			t.Fatalf("checkB64(%q) = %d, %v; decodeB64 = %d bytes, %v", s, n, err, len(d), derr)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("checkB64(%q): %v is not ErrMalformed", s, err)
		}
	})
}

// TestVerifyCompactAgreesWithJWX: the signature check that skips jwx's own
// parse accepts what jws.Verify accepts and refuses what it refuses, on
// the signatures Sign makes and on tampered ones.
func TestVerifyCompactAgreesWithJWX(t *testing.T) {
	for _, key := range []struct {
		kid string
		key crypto.Signer
		alg jwa.SignatureAlgorithm
	}{{"ed", edKey(), jwa.EdDSA}, {"ec", p256(), jwa.ES256}} {
		good, err := Sign(claims, key.key, key.kid)
		if err != nil {
			t.Fatal(err)
		}
		p := strings.Split(good, ".")
		flip := func(s string) string {
			b := []byte(s)
			b[len(b)/2] ^= 0x01
			return string(b)
		}
		for _, tt := range []struct {
			name, jws string
		}{
			{"good", good},
			{"payload", p[0] + "." + enc([]byte(`{"iss":"other"}`)) + "." + p[2]},
			{"header", enc([]byte(`{"alg":"`+string(key.alg)+`","kid":"`+key.kid+`","typ":"bg-req+jwt" }`)) + "." + p[1] + "." + p[2]},
			{"signature", p[0] + "." + p[1] + "." + flip(p[2])},
		} {
			lookup := lookupOf(map[string]crypto.PublicKey{key.kid: key.key.Public()})
			_, _, ours := VerifyCompact(tt.jws, lookup)
			_, theirs := jws.Verify([]byte(tt.jws), jws.WithKey(key.alg, key.key.Public()))
			if (ours == nil) != (theirs == nil) {
				t.Errorf("%s/%s: VerifyCompact %v, jws.Verify %v", key.alg, tt.name, ours, theirs)
			}
		}
	}
}

// TestSignIsJWXSign: Sign writes what jws.Sign writes with the same
// header (byte for byte with Ed25519, whose signatures are deterministic),
// and jws.Verify accepts it.
func TestSignIsJWXSign(t *testing.T) {
	for _, key := range []struct {
		kid string
		key crypto.Signer
		alg jwa.SignatureAlgorithm
	}{{"gw-20260101-ab+/=:~", edKey(), jwa.EdDSA}, {"ec", p256(), jwa.ES256}} {
		ours, err := Sign(claims, key.key, key.kid)
		if err != nil {
			t.Fatal(err)
		}
		hdrs := jws.NewHeaders()
		_ = hdrs.Set(jws.KeyIDKey, key.kid)
		_ = hdrs.Set(jws.TypeKey, TypeRequest)
		theirs, err := jws.Sign(claims, jws.WithKey(key.alg, key.key, jws.WithProtectedHeaders(hdrs)))
		if err != nil {
			t.Fatal(err)
		}
		if key.alg == jwa.EdDSA && ours != string(theirs) {
			t.Errorf("EdDSA: Sign %s, jws.Sign %s", ours, theirs)
		}
		if strings.Split(ours, ".")[0] != strings.Split(string(theirs), ".")[0] {
			t.Errorf("%s: header %s, jws.Sign's %s", key.alg, strings.Split(ours, ".")[0], strings.Split(string(theirs), ".")[0])
		}
		if payload, err := jws.Verify([]byte(ours), jws.WithKey(key.alg, key.key.Public())); err != nil || !bytes.Equal(payload, claims) {
			t.Errorf("%s: jws.Verify of Sign's output: %v", key.alg, err)
		}
	}
}

func BenchmarkDecryptRSA3072(b *testing.B) {
	key := rsa3072()
	ct := mustEncrypt(b, &key.PublicKey, "kek-1")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decrypt(ct, key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptECDHP256(b *testing.B) {
	key := p256()
	ct := mustEncrypt(b, &key.PublicKey, "kek-1")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decrypt(ct, key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptECDHP384(b *testing.B) {
	key := p384()
	ct := mustEncrypt(b, &key.PublicKey, "kek-1")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decrypt(ct, key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyEdDSA is VerifyCompact with the key prepared by
// NewVerifyKey, as the key service keeps its clients' keys;
// BenchmarkVerifyEdDSAPlainKey with a plain ed25519.PublicKey, decoded on
// every call.
func BenchmarkVerifyEdDSA(b *testing.B) {
	key, err := NewVerifyKey(edKey().Public())
	if err != nil {
		b.Fatal(err)
	}
	benchVerify(b, edKey(), key)
}

func BenchmarkVerifyEdDSAPlainKey(b *testing.B) { benchVerify(b, edKey(), edKey().Public()) }

func benchVerify(b *testing.B, priv crypto.Signer, pub crypto.PublicKey) {
	s, err := Sign(claims, priv, "ed")
	if err != nil {
		b.Fatal(err)
	}
	keys := lookupOf(map[string]crypto.PublicKey{"ed": pub})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := VerifyCompact(s, keys); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyES256(b *testing.B) {
	s, err := Sign(claims, p256(), "ec")
	if err != nil {
		b.Fatal(err)
	}
	keys := lookupOf(map[string]crypto.PublicKey{"ec": p256().Public()})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := VerifyCompact(s, keys); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseHeader(b *testing.B) {
	ct := mustEncrypt(b, &p256().PublicKey, "kek-1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(ct); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawDecryptOAEP3072 is the floor for BenchmarkDecryptRSA3072: the
// RSA private-key operation alone, with no JOSE parsing or AES-GCM.
func BenchmarkRawDecryptOAEP3072(b *testing.B) {
	key := rsa3072()
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, make([]byte, 32), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rsa.DecryptOAEP(sha256.New(), nil, key, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}
