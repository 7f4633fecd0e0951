package jose

import (
	"crypto"
	"encoding/json"
	"errors"
	"testing"
)

func TestJWKSRoundTrip(t *testing.T) {
	in := []PublicKey{
		{Kid: "kek-ec-1", Alg: AlgECDHES, Key: &p256().PublicKey},
		{Kid: "kek-ec-2", Alg: AlgECDHES, Key: &p384().PublicKey},
		{Kid: "kek-rsa-1", Alg: AlgRSAOAEP256, Key: &rsa3072().PublicKey},
	}
	data, err := MarshalJWKS(in)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 3 {
		t.Fatalf("keys = %d", len(doc.Keys))
	}
	for i, k := range doc.Keys {
		if k["use"] != "enc" || k["kid"] != in[i].Kid || k["alg"] != in[i].Alg {
			t.Fatalf("key %d = %v", i, k)
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Fatalf("key %d publishes %q", i, private)
			}
		}
	}
	out, err := ParseJWKS(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("parsed %d keys", len(out))
	}
	for i := range in {
		eq, ok := out[i].Key.(interface{ Equal(crypto.PublicKey) bool })
		if out[i].Kid != in[i].Kid || out[i].Alg != in[i].Alg || !ok || !eq.Equal(in[i].Key) {
			t.Fatalf("key %d = %+v", i, out[i])
		}
		// A parsed key must be usable for Encrypt, and decryptable by its private half.
		ct, err := Encrypt(testPlain, out[i].Key, out[i].Kid, sid)
		if err != nil {
			t.Fatal(err)
		}
		priv := []any{p256(), p384(), rsa3072()}[i]
		if _, _, err := Decrypt(ct, priv); err != nil {
			t.Fatal(err)
		}
	}
	empty, err := MarshalJWKS(nil)
	if err != nil || string(empty) != `{"keys":[]}` {
		t.Fatalf("empty JWKS = %s %v", empty, err)
	}
}

func TestJWKSRejects(t *testing.T) {
	ecJWK := func(extra map[string]any) string {
		b, err := MarshalPublicJWK(&p256().PublicKey, "k1")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		m["alg"] = AlgECDHES
		m["use"] = "enc"
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		out, _ := json.Marshal(m)
		return string(out)
	}
	privJWK := func() string {
		b, _ := MarshalPublicJWK(&p256().PublicKey, "k1")
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		d, err := p256().Bytes()
		if err != nil {
			t.Fatal(err)
		}
		m["d"] = enc(d)
		m["alg"] = AlgECDHES
		m["use"] = "enc"
		out, _ := json.Marshal(m)
		return string(out)
	}
	tests := []struct {
		name string
		doc  string
		want error
	}{
		{"400/not-json", `nope`, ErrMalformed},
		{"400/no-keys", `{}`, ErrMalformed},
		{"400/extra-member", `{"keys":[],"x":1}`, ErrUnsupported},
		{"400/missing-use", `{"keys":[` + ecJWK(map[string]any{"use": nil}) + `]}`, ErrUnsupported},
		{"400/use-sig", `{"keys":[` + ecJWK(map[string]any{"use": "sig"}) + `]}`, ErrUnsupported},
		{"400/missing-alg", `{"keys":[` + ecJWK(map[string]any{"alg": nil}) + `]}`, ErrUnsupported},
		{"400/alg-mismatch", `{"keys":[` + ecJWK(map[string]any{"alg": AlgRSAOAEP256}) + `]}`, ErrUnsupported},
		{"400/missing-kid", `{"keys":[` + ecJWK(map[string]any{"kid": nil}) + `]}`, ErrMalformed},
		{"400/duplicate-kid", `{"keys":[` + ecJWK(nil) + `,` + ecJWK(nil) + `]}`, ErrMalformed},
		{"400/private-member", `{"keys":[` + privJWK() + `]}`, ErrUnsupported},
		{"400/x5u", `{"keys":[` + ecJWK(map[string]any{"x5u": "https://evil.example"}) + `]}`, ErrUnsupported},
		{"400/off-curve", `{"keys":[` + ecJWK(map[string]any{"y": enc(make([]byte, 32))}) + `]}`, ErrMalformed},
		{"400/oct-key", `{"keys":[{"kty":"oct","k":"AAAA","kid":"s","alg":"A256KW","use":"enc"}]}`, ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseJWKS([]byte(tc.doc)); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}

	marshal := []struct {
		name string
		keys []PublicKey
		want error
	}{
		{"400/small-RSA", []PublicKey{{Kid: "r", Alg: AlgRSAOAEP256, Key: &rsa2048().PublicKey}}, ErrUnsupported},
		{"400/alg-mismatch", []PublicKey{{Kid: "e", Alg: AlgRSAOAEP256, Key: &p256().PublicKey}}, ErrUnsupported},
		{"400/signing-alg", []PublicKey{{Kid: "e", Alg: AlgES256, Key: &p256().PublicKey}}, ErrUnsupported},
		{"400/private-key", []PublicKey{{Kid: "e", Alg: AlgECDHES, Key: p256()}}, ErrUnsupported},
		{"400/duplicate-kid", []PublicKey{{Kid: "e", Alg: AlgECDHES, Key: &p256().PublicKey}, {Kid: "e", Alg: AlgECDHES, Key: &p384().PublicKey}}, ErrMalformed},
		{"400/empty-kid", []PublicKey{{Alg: AlgECDHES, Key: &p256().PublicKey}}, ErrMalformed},
	}
	for _, tc := range marshal {
		t.Run("marshal/"+tc.name, func(t *testing.T) {
			if _, err := MarshalJWKS(tc.keys); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPublicJWKRoundTrip(t *testing.T) {
	for name, pub := range map[string]crypto.PublicKey{
		"Ed25519": edKey().Public(),
		"P-256":   p256().Public(),
		"P-384":   p384().Public(),
		"RSA":     rsa3072().Public(),
	} {
		t.Run("ok/"+name, func(t *testing.T) {
			b, err := MarshalPublicJWK(pub, "client-1")
			if err != nil {
				t.Fatal(err)
			}
			kid, got, err := ParsePublicJWK(b)
			if err != nil {
				t.Fatal(err)
			}
			if kid != "client-1" || !got.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
				t.Fatalf("got %q %T", kid, got)
			}
		})
	}
	t.Run("400/private-key", func(t *testing.T) {
		if _, err := MarshalPublicJWK(edKey(), "k"); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("400/ed25519-with-d", func(t *testing.T) {
		b, _ := MarshalPublicJWK(edKey().Public(), "k")
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		m["d"] = enc(edKey().Seed())
		b, _ = json.Marshal(m)
		if _, _, err := ParsePublicJWK(b); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("400/alg-mismatch", func(t *testing.T) {
		b, _ := MarshalPublicJWK(edKey().Public(), "k")
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		m["alg"] = AlgES256
		b, _ = json.Marshal(m)
		if _, _, err := ParsePublicJWK(b); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("400/padded-x", func(t *testing.T) {
		b, _ := MarshalPublicJWK(edKey().Public(), "k")
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		m["x"] = m["x"].(string) + "="
		b, _ = json.Marshal(m)
		if _, _, err := ParsePublicJWK(b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPrivateJWK(t *testing.T) {
	for name, key := range map[string]crypto.Signer{"Ed25519": edKey(), "P-256": p256()} {
		t.Run("ok/"+name, func(t *testing.T) {
			b, err := MarshalPrivateJWK(key, "gw-1")
			if err != nil {
				t.Fatal(err)
			}
			kid, got, err := ParsePrivateJWK(b)
			if err != nil {
				t.Fatal(err)
			}
			if kid != "gw-1" || !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatalf("got %q", kid)
			}
			s, err := Sign(claims, got, kid)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := VerifyCompact(s, lookupOf(map[string]crypto.PublicKey{"gw-1": key.Public()})); err != nil {
				t.Fatal(err)
			}
		})
	}
	swapX := func() []byte {
		b, _ := MarshalPrivateJWK(edKey(), "k")
		other, _ := MarshalPublicJWK(edKeyB().Public(), "k")
		m, o := map[string]any{}, map[string]any{}
		_ = json.Unmarshal(b, &m)
		_ = json.Unmarshal(other, &o)
		m["x"] = o["x"]
		out, _ := json.Marshal(m)
		return out
	}
	pubOnly, _ := MarshalPublicJWK(edKey().Public(), "k")
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"400/public-x-mismatch", swapX(), ErrMalformed},
		{"400/public-only", pubOnly, ErrUnsupported},
		{"400/garbage", []byte(`{"kty":"OKP"`), ErrMalformed},
		{"400/rsa", []byte(`{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB","kid":"k"}`), ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := ParsePrivateJWK(tc.data); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := MarshalPrivateJWK(rsa3072(), "k"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("RSA private JWK: %v", err)
	}
}
