package jose

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// Key generation (RSA-3072 especially) is slow, so each test binary makes
// its fixtures once.
var (
	rsa3072   = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(3072) })
	rsa3072b  = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(3072) })
	rsa2048   = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	p256      = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
	p256b     = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
	p384      = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P384()) })
	p521      = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P521()) })
	edKey     = sync.OnceValue(func() ed25519.PrivateKey { return mustEd() })
	edKeyB    = sync.OnceValue(func() ed25519.PrivateKey { return mustEd() })
	testPlain = []byte(`{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":"A B","iat":1700000000}`)
)

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEd() ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

var sid = map[string]string{HeaderSessionID: "cs_test1"}

func mustEncrypt(t testing.TB, pub any, kid string) []byte {
	t.Helper()
	out, err := Encrypt(testPlain, pub, kid, sid)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return out
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func encJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return enc(b)
}

// withHeader replaces the protected header of a compact object.
func withHeader(compact []byte, hdr string) []byte {
	parts := strings.Split(string(compact), ".")
	parts[0] = hdr
	return []byte(strings.Join(parts, "."))
}

// headerOf decodes the protected header of a compact object into a map.
func headerOf(t testing.TB, compact []byte) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.SplitN(string(compact), ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
