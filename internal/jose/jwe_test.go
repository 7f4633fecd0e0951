package jose

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		priv    any
		pub     any
		wantAlg string
	}{
		{"ok/RSA-OAEP-256-3072", rsa3072(), &rsa3072().PublicKey, AlgRSAOAEP256},
		{"ok/ECDH-ES+A256KW-P-256", p256(), &p256().PublicKey, AlgECDHES},
		{"ok/ECDH-ES+A256KW-P-384", p384(), &p384().PublicKey, AlgECDHES},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := mustEncrypt(t, tc.pub, "kek-1")
			if bytes.Contains(ct, []byte("4242")) {
				t.Fatal("ciphertext contains plaintext")
			}
			h, err := ParseHeader(ct)
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			want := Header{Alg: tc.wantAlg, Enc: EncA256GCM, Kid: "kek-1", SessionID: "cs_test1"}
			if h != want {
				t.Fatalf("header = %+v, want %+v", h, want)
			}
			h2, pt, err := Decrypt(ct, tc.priv)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if h2 != want || !bytes.Equal(pt, testPlain) {
				t.Fatalf("Decrypt = %+v %q", h2, pt)
			}
		})
	}
}

// validEC is a well-formed P-256 ciphertext that rejection cases mutate.
func validEC(t *testing.T) []byte {
	t.Helper()
	return mustEncrypt(t, &p256().PublicKey, "kek-1")
}

func TestParseHeaderRejects(t *testing.T) {
	base := validEC(t)
	mutate := func(f func(h map[string]any)) []byte {
		h := headerOf(t, base)
		f(h)
		return withHeader(base, encJSON(t, h))
	}
	parts := strings.Split(string(base), ".")
	epk := headerOf(t, base)["epk"].(map[string]any)

	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"400/alg-RSA-OAEP", mutate(func(h map[string]any) { h["alg"] = "RSA-OAEP" }), ErrUnsupported},
		{"400/alg-dir", []byte(encJSON(t, map[string]any{"alg": "dir", "enc": "A256GCM", "kid": "k", "bg_sid": "s"}) + ".." + parts[2] + "." + parts[3] + "." + parts[4]), ErrUnsupported},
		{"400/alg-RSA1_5", mutate(func(h map[string]any) { h["alg"] = "RSA1_5"; delete(h, "epk") }), ErrUnsupported},
		{"400/alg-PBES2", mutate(func(h map[string]any) {
			h["alg"] = "PBES2-HS256+A128KW"
			h["p2s"] = "c2FsdHNhbHRzYWx0"
			h["p2c"] = 1000000
			delete(h, "epk")
		}), ErrUnsupported},
		{"400/alg-ECDH-ES-direct", mutate(func(h map[string]any) { h["alg"] = "ECDH-ES" }), ErrUnsupported},
		{"400/alg-A256KW", mutate(func(h map[string]any) { h["alg"] = "A256KW" }), ErrUnsupported},
		{"400/alg-missing", mutate(func(h map[string]any) { delete(h, "alg") }), ErrMalformed},
		{"400/alg-not-string", mutate(func(h map[string]any) { h["alg"] = 7 }), ErrMalformed},
		{"400/zip", mutate(func(h map[string]any) { h["zip"] = "DEF" }), ErrUnsupported},
		{"400/crit", mutate(func(h map[string]any) { h["crit"] = []string{"exp"}; h["exp"] = 1 }), ErrUnsupported},
		{"400/jku", mutate(func(h map[string]any) { h["jku"] = "https://evil.example/jwks" }), ErrUnsupported},
		{"400/jwk", mutate(func(h map[string]any) { h["jwk"] = epk }), ErrUnsupported},
		{"400/x5u", mutate(func(h map[string]any) { h["x5u"] = "https://evil.example/cert" }), ErrUnsupported},
		{"400/unknown-member", mutate(func(h map[string]any) { h["foo"] = "bar" }), ErrUnsupported},
		{"400/enc-A128GCM", mutate(func(h map[string]any) { h["enc"] = "A128GCM" }), ErrUnsupported},
		{"400/enc-A256CBC-HS512", mutate(func(h map[string]any) { h["enc"] = "A256CBC-HS512" }), ErrUnsupported},
		{"400/enc-missing", mutate(func(h map[string]any) { delete(h, "enc") }), ErrMalformed},
		{"400/json-serialization", []byte(`{"protected":"` + parts[0] + `","encrypted_key":"` + parts[1] + `","iv":"` + parts[2] + `","ciphertext":"` + parts[3] + `","tag":"` + parts[4] + `"}`), ErrUnsupported},
		{"400/4-parts", []byte(strings.Join(parts[:4], ".")), ErrMalformed},
		{"400/6-parts", []byte(string(base) + ".AAAA"), ErrMalformed},
		{"400/empty", nil, ErrMalformed},
		{"413/oversize", bytes.Repeat([]byte("A"), MaxCompactSize+1), ErrTooLarge},
		{"400/missing-kid", mutate(func(h map[string]any) { delete(h, "kid") }), ErrMalformed},
		{"400/empty-kid", mutate(func(h map[string]any) { h["kid"] = "" }), ErrMalformed},
		{"400/kid-control-chars", mutate(func(h map[string]any) { h["kid"] = "k\n1" }), ErrMalformed},
		{"400/missing-bg_sid", mutate(func(h map[string]any) { delete(h, "bg_sid") }), ErrMalformed},
		{"400/empty-bg_sid", mutate(func(h map[string]any) { h["bg_sid"] = "" }), ErrMalformed},
		{"400/bg_sid-not-string", mutate(func(h map[string]any) { h["bg_sid"] = 12 }), ErrMalformed},
		{"400/epk-missing", mutate(func(h map[string]any) { delete(h, "epk") }), ErrMalformed},
		{"400/epk-with-private-d", mutate(func(h map[string]any) {
			e := copyMap(epk)
			e["d"] = "AAAA"
			h["epk"] = e
		}), ErrUnsupported},
		{"400/epk-off-curve", mutate(func(h map[string]any) {
			e := copyMap(epk)
			e["y"] = e["x"]
			h["epk"] = e
		}), ErrMalformed},
		{"400/epk-curve-P-521", mutate(func(h map[string]any) {
			e := copyMap(epk)
			e["crv"] = "P-521"
			h["epk"] = e
		}), ErrUnsupported},
		{"400/epk-with-RSA", mutate(func(h map[string]any) { h["alg"] = AlgRSAOAEP256 }), ErrUnsupported},
		{"400/duplicate-member", withHeader(base, enc([]byte(`{"alg":"ECDH-ES+A256KW","alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k","bg_sid":"s"}`))), ErrMalformed},
		{"400/trailing-json", withHeader(base, enc(append(mustDecode(t, parts[0]), []byte(" {}")...))), ErrMalformed},
		{"400/header-not-object", withHeader(base, enc([]byte(`["alg"]`))), ErrMalformed},
		{"400/header-bad-utf8", withHeader(base, enc([]byte("{\"alg\":\"\xff\"}"))), ErrMalformed},
		{"400/padding", withHeader(base, parts[0]+"=="), ErrMalformed},
		{"400/std-alphabet", []byte(parts[0] + "." + parts[1] + "." + parts[2] + ".+" + parts[3][1:] + "." + parts[4]), ErrMalformed},
		{"400/leading-space", append([]byte(" "), base...), ErrMalformed},
		{"400/empty-encrypted-key", []byte(parts[0] + ".." + parts[2] + "." + parts[3] + "." + parts[4]), ErrMalformed},
		{"400/iv-length", []byte(parts[0] + "." + parts[1] + "." + enc(make([]byte, 16)) + "." + parts[3] + "." + parts[4]), ErrMalformed},
		{"400/tag-length", []byte(parts[0] + "." + parts[1] + "." + parts[2] + "." + parts[3] + "." + enc(make([]byte, 8))), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseHeader(tc.input)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseHeader err = %v, want %v", err, tc.want)
			}
			// Decrypt must refuse the same input the same way, before any crypto.
			_, pt, err := Decrypt(tc.input, p256())
			if !errors.Is(err, tc.want) || pt != nil {
				t.Fatalf("Decrypt err = %v, want %v", err, tc.want)
			}
		})
	}
}

// marshalReversed writes a JSON object with its members in reverse name order.
func marshalReversed(t *testing.T, m map[string]any) []byte {
	t.Helper()
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(m[k])
		if err != nil {
			t.Fatal(err)
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := decodeB64([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecryptRejects(t *testing.T) {
	ecCT := validEC(t)
	rsaCT := mustEncrypt(t, &rsa3072().PublicKey, "kek-r")
	p384CT := mustEncrypt(t, &p384().PublicKey, "kek-384")

	tamperHeader := func(ct []byte) []byte {
		h := headerOf(t, ct)
		h["bg_sid"] = "cs_other"
		return withHeader(ct, encJSON(t, h))
	}
	// Re-encoding the same header with different member order keeps every
	// value but changes the AAD bytes.
	reorder := func(ct []byte) []byte {
		raw := mustDecode(t, strings.SplitN(string(ct), ".", 2)[0])
		h := headerOf(t, ct)
		b := marshalReversed(t, h)
		if bytes.Equal(b, raw) {
			b = append([]byte(" "), b...)
		}
		return withHeader(ct, enc(b))
	}
	flip := func(ct []byte, part int) []byte {
		parts := strings.Split(string(ct), ".")
		b := mustDecode(t, parts[part])
		b[len(b)/2] ^= 1
		parts[part] = enc(b)
		return []byte(strings.Join(parts, "."))
	}

	tests := []struct {
		name string
		ct   []byte
		key  any
		want error
	}{
		{"422/tampered-header-bg_sid", tamperHeader(ecCT), p256(), ErrDecrypt},
		{"422/tampered-header-bg_sid-RSA", tamperHeader(rsaCT), rsa3072(), ErrDecrypt},
		{"422/header-reencoded-AAD", reorder(ecCT), p256(), ErrDecrypt},
		{"422/tampered-ciphertext", flip(ecCT, 3), p256(), ErrDecrypt},
		{"422/tampered-tag", flip(ecCT, 4), p256(), ErrDecrypt},
		{"422/tampered-iv", flip(ecCT, 2), p256(), ErrDecrypt},
		{"422/tampered-wrapped-key", flip(ecCT, 1), p256(), ErrDecrypt},
		{"422/tampered-RSA-encrypted-key", flip(rsaCT, 1), rsa3072(), ErrDecrypt},
		{"422/wrong-key-EC", ecCT, p256b(), ErrDecrypt},
		{"422/wrong-key-RSA", rsaCT, rsa3072b(), ErrDecrypt},
		{"422/mismatch-RSA-ct-EC-key", rsaCT, p256(), ErrDecrypt},
		{"422/mismatch-EC-ct-RSA-key", ecCT, rsa3072(), ErrDecrypt},
		{"422/mismatch-P-384-ct-P-256-key", p384CT, p256(), ErrDecrypt},
		{"422/mismatch-P-256-ct-P-384-key", ecCT, p384(), ErrDecrypt},
		{"400/small-RSA-2048", rsaCT, rsa2048(), ErrUnsupported},
		{"400/P-521-key", ecCT, p521(), ErrUnsupported},
		{"400/public-key-not-private", ecCT, &p256().PublicKey, ErrUnsupported},
		{"400/nil-key", ecCT, nil, ErrUnsupported},
		{"400/nil-rsa-pointer", rsaCT, (*rsa.PrivateKey)(nil), ErrUnsupported},
		{"400/nil-ecdsa-pointer", ecCT, (*ecdsa.PrivateKey)(nil), ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, pt, err := Decrypt(tc.ct, tc.key)
			if !errors.Is(err, tc.want) || pt != nil {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == ErrDecrypt && err.Error() != ErrDecrypt.Error() {
				// No detail may leak past the sentinel (oracle resistance).
				t.Fatalf("ErrDecrypt carries detail: %q", err)
			}
			if strings.Contains(err.Error(), "4242") {
				t.Fatal("error text contains plaintext")
			}
		})
	}
}

func TestEncryptRejects(t *testing.T) {
	tests := []struct {
		name  string
		pub   any
		kid   string
		extra map[string]string
		want  error
	}{
		{"400/small-RSA-2048", &rsa2048().PublicKey, "k", sid, ErrUnsupported},
		{"400/P-521", &p521().PublicKey, "k", sid, ErrUnsupported},
		{"400/Ed25519", edKey().Public(), "k", sid, ErrUnsupported},
		{"400/private-key", p256(), "k", sid, ErrUnsupported},
		{"400/missing-kid", &p256().PublicKey, "", sid, ErrMalformed},
		{"400/missing-bg_sid", &p256().PublicKey, "k", nil, ErrMalformed},
		{"400/extra-zip", &p256().PublicKey, "k", map[string]string{HeaderSessionID: "s", "zip": "DEF"}, ErrUnsupported},
		{"400/extra-alg-override", &p256().PublicKey, "k", map[string]string{HeaderSessionID: "s", "alg": "dir"}, ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Encrypt(testPlain, tc.pub, tc.kid, tc.extra)
			if !errors.Is(err, tc.want) || out != nil {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("413/plaintext-too-large", func(t *testing.T) {
		_, err := Encrypt(make([]byte, MaxCompactSize), &p256().PublicKey, "k", sid)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ok/typ-and-cty", func(t *testing.T) {
		out, err := Encrypt(testPlain, &p256().PublicKey, "k", map[string]string{HeaderSessionID: "s", "typ": "bg-card+jwe", "cty": "json"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := Decrypt(out, p256()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHeaderIsAuthenticated(t *testing.T) {
	// A ciphertext lifted into another session (bg_sid rewritten) must not
	// decrypt: the protected header is the AAD.
	ct := validEC(t)
	h := headerOf(t, ct)
	h["kid"] = "kek-2"
	if _, _, err := Decrypt(withHeader(ct, encJSON(t, h)), p256()); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("err = %v", err)
	}
}
