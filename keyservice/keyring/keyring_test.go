package keyring

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"

	gojose "github.com/go-jose/go-jose/v4"
)

var kidRE = regexp.MustCompile(`^kek-\d{8}-[0-9a-f]{8}$`)

func mustNew(t testing.TB, alg string) *Keyring {
	t.Helper()
	kr, err := New(alg)
	if err != nil {
		t.Fatalf("New(%q): %v", alg, err)
	}
	return kr
}

func TestNew(t *testing.T) {
	tests := []struct {
		name, alg, want, jwe string
		keyType              any
	}{
		{"default", "", AlgECDHP256, "ECDH-ES+A256KW", &ecdsa.PublicKey{}},
		{"p256", AlgECDHP256, AlgECDHP256, "ECDH-ES+A256KW", &ecdsa.PublicKey{}},
		{"p384", AlgECDHP384, AlgECDHP384, "ECDH-ES+A256KW", &ecdsa.PublicKey{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr := mustNew(t, tt.alg)
			vs := kr.Versions()
			if len(vs) != 1 || vs[0].Alg != tt.want || vs[0].State != StateActive || vs[0].Created.IsZero() {
				t.Fatalf("versions = %+v", vs)
			}
			if !kidRE.MatchString(vs[0].Kid) {
				t.Fatalf("kid %q does not match %s", vs[0].Kid, kidRE)
			}
			if kr.Newest() != vs[0] {
				t.Fatalf("Newest = %+v", kr.Newest())
			}
			pubs := kr.PublicKeys()
			if len(pubs) != 1 || pubs[0].Kid != vs[0].Kid || pubs[0].Alg != tt.jwe || vs[0].JWEAlg() != tt.jwe {
				t.Fatalf("public keys = %+v", pubs)
			}
			priv, err := kr.Lookup(vs[0].Kid)
			if err != nil {
				t.Fatal(err)
			}
			if !priv.(interface{ Public() crypto.PublicKey }).Public().(*ecdsa.PublicKey).Equal(pubs[0].Key) {
				t.Fatal("public key does not belong to the private key")
			}
		})
	}
}

func TestNewUnsupportedAlg(t *testing.T) {
	for _, alg := range []string{"RSA-OAEP-256/2048", "ECDH-ES/P-256", "A256KW", "dir", "ECDH-ES+A256KW/P-521"} {
		if _, err := New(alg); !errors.Is(err, ErrUnsupportedAlg) {
			t.Errorf("New(%q) = %v, want ErrUnsupportedAlg", alg, err)
		}
	}
}

func TestJWEAlg(t *testing.T) {
	for alg, want := range map[string]string{AlgECDHP256: "ECDH-ES+A256KW", AlgECDHP384: "ECDH-ES+A256KW", AlgRSA3072: "RSA-OAEP-256", "x": "x"} {
		if got := JWEAlg(alg); got != want {
			t.Errorf("JWEAlg(%q) = %q, want %q", alg, got, want)
		}
	}
	if Algs()[0] != DefaultAlg {
		t.Error("Algs must list the default first")
	}
}

func TestRotateRetire(t *testing.T) {
	kr := mustNew(t, "")
	v1 := kr.Newest()

	v2, err := kr.Rotate("")
	if err != nil {
		t.Fatal(err)
	}
	if v2.Alg != AlgECDHP256 || v2.State != StateActive || v2.Kid == v1.Kid || kr.Newest() != v2 {
		t.Fatalf("rotate: v2 = %+v, newest = %+v", v2, kr.Newest())
	}
	if vs := kr.Versions(); len(vs) != 2 || vs[0].Kid != v1.Kid || vs[0].State != StateDecrypt || vs[1] != v2 {
		t.Fatalf("versions after rotate = %+v", vs)
	}
	if pubs := kr.PublicKeys(); len(pubs) != 1 || pubs[0].Kid != v2.Kid {
		t.Fatalf("PublicKeys must list only the active version: %+v", pubs)
	}
	if _, err := kr.Lookup(v1.Kid); err != nil {
		t.Fatalf("decrypt-only version must still decrypt: %v", err)
	}

	v3, err := kr.Rotate(AlgECDHP384)
	if err != nil {
		t.Fatal(err)
	}
	if v3.Alg != AlgECDHP384 {
		t.Fatalf("v3 = %+v", v3)
	}
	if _, err := kr.Rotate(""); err != nil {
		t.Fatal(err)
	}
	if got := kr.Newest().Alg; got != AlgECDHP384 {
		t.Fatalf(`Rotate("") should keep the active alg, got %s`, got)
	}
	if _, err := kr.Rotate("bogus"); !errors.Is(err, ErrUnsupportedAlg) {
		t.Fatalf("Rotate(bogus) = %v", err)
	}
	if n := len(kr.Versions()); n != 4 {
		t.Fatalf("a failed rotate changed the keyring: %d versions", n)
	}

	newest := kr.Newest()
	tests := []struct {
		name string
		kid  string
		err  error
	}{
		{"409/retire-active", newest.Kid, ErrLastActive},
		{"404/retire-unknown", "kek-20000101-deadbeef", ErrUnknownKid},
		{"200/retire-decrypt", v1.Kid, nil},
		{"200/retire-again-is-noop", v1.Kid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := kr.Retire(tt.kid); !errors.Is(err, tt.err) {
				t.Fatalf("Retire = %v, want %v", err, tt.err)
			}
		})
	}
	if _, err := kr.Lookup(v1.Kid); !errors.Is(err, ErrRetired) {
		t.Fatalf("Lookup(retired) = %v", err)
	}
	if _, err := kr.Lookup(v2.Kid); err != nil {
		t.Fatalf("Lookup(decrypt) = %v", err)
	}
	if _, err := kr.Lookup(newest.Kid); err != nil {
		t.Fatalf("Lookup(active) = %v", err)
	}
	if _, err := kr.Lookup("nope"); !errors.Is(err, ErrUnknownKid) {
		t.Fatalf("Lookup(unknown) = %v", err)
	}
	if _, err := kr.Lookup(""); !errors.Is(err, ErrUnknownKid) {
		t.Fatalf("Lookup(empty) = %v", err)
	}
	states := map[string]int{}
	for _, v := range kr.Versions() {
		states[v.State]++
	}
	if states[StateActive] != 1 || states[StateDecrypt] != 2 || states[StateRetired] != 1 {
		t.Fatalf("states = %v", states)
	}
}

func TestKidsUnique(t *testing.T) {
	kr := mustNew(t, "")
	for range 40 {
		if _, err := kr.Rotate(""); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, v := range kr.Versions() {
		if seen[v.Kid] || !kidRE.MatchString(v.Kid) {
			t.Fatalf("bad or duplicate kid %q", v.Kid)
		}
		seen[v.Kid] = true
	}
}

func TestVersionsIsACopy(t *testing.T) {
	kr := mustNew(t, "")
	vs := kr.Versions()
	vs[0].State = StateRetired
	if kr.Versions()[0].State != StateActive {
		t.Fatal("Versions exposes internal state")
	}
}

func TestZeroKeyring(t *testing.T) {
	var kr Keyring
	if _, err := kr.Lookup("x"); !errors.Is(err, ErrUnknownKid) {
		t.Fatal(err)
	}
	if len(kr.PublicKeys()) != 0 || len(kr.Versions()) != 0 || kr.Newest() != (VersionInfo{}) {
		t.Fatal("zero keyring is not empty")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Fingerprint without a key must not hash unkeyed")
		}
	}()
	kr.Fingerprint("m_1", []byte("4242424242424242"))
}

var fpRE = regexp.MustCompile(`^fpm_[A-Za-z0-9_-]{43}$`)

func TestFingerprint(t *testing.T) {
	kr := mustNew(t, "")
	pan := []byte("4242424242424242")
	const merchant = "m_alice"
	fp := kr.Fingerprint(merchant, pan)
	if !fpRE.MatchString(fp) {
		t.Fatalf("fingerprint %q does not match %s", fp, fpRE)
	}
	// HMAC-SHA-256 under a per-merchant key derived from the fingerprint key.
	lp := func(s string) []byte { return append([]byte{0, 0, 0, byte(len(s))}, s...) }
	dk := hmac.New(sha256.New, kr.snap().fpKey)
	dk.Write(lp(labelFingerprint))
	dk.Write(lp(merchant))
	mac := hmac.New(sha256.New, dk.Sum(nil))
	mac.Write(pan)
	if want := "fpm_" + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); fp != want {
		t.Fatalf("fingerprint = %s, want %s", fp, want)
	}
	unkeyed := sha256.Sum256(pan)
	if fp == "fpm_"+base64.RawURLEncoding.EncodeToString(unkeyed[:]) {
		t.Fatal("fingerprint is an unkeyed hash")
	}
	// The pre-scoping value (HMAC of the PAN under the key itself) is not it.
	flat := hmac.New(sha256.New, kr.snap().fpKey)
	flat.Write(pan)
	if fp[len("fpm_"):] == base64.RawURLEncoding.EncodeToString(flat.Sum(nil)) {
		t.Fatal("fingerprint is not scoped by merchant")
	}
	if kr.Fingerprint(merchant, pan) != fp {
		t.Fatal("fingerprint not deterministic")
	}
	if kr.Fingerprint(merchant, []byte("4000056655665556")) == fp {
		t.Fatal("different PANs, same fingerprint")
	}
	if mustNew(t, "").Fingerprint(merchant, pan) == fp {
		t.Fatal("another keyring's key gave the same fingerprint")
	}
	if kr.Fingerprint("m_bob", pan) == fp {
		t.Fatal("the same card at two merchants gave the same fingerprint")
	}
	// Unambiguous encoding: moving bytes between merchant and PAN changes it.
	if kr.Fingerprint("m_alice4", []byte("242424242424242")) == fp {
		t.Fatal("merchant and PAN boundary is ambiguous")
	}

	// Stable across rotation, retirement and save/load.
	old := kr.Newest().Kid
	if _, err := kr.Rotate(AlgECDHP384); err != nil {
		t.Fatal(err)
	}
	if err := kr.Retire(old); err != nil {
		t.Fatal(err)
	}
	if kr.Fingerprint(merchant, pan) != fp {
		t.Fatal("fingerprint changed across rotation")
	}
	master, _ := GenerateMasterKey()
	path := t.TempDir() + "/keyring.json"
	if err := Save(path, kr, master); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(path, master)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Fingerprint(merchant, pan) != fp {
		t.Fatal("fingerprint changed across save/load")
	}
}

// TestConcurrentLookupDuringRotate runs readers against writers; its value is
// under -race.
func TestConcurrentLookupDuringRotate(t *testing.T) {
	kr := mustNew(t, "")
	first := kr.Newest().Kid
	pan := []byte("4242424242424242")
	const merchant = "m_1"
	fp := kr.Fingerprint(merchant, pan)
	master, _ := GenerateMasterKey()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := kr.Lookup(first); err != nil && !errors.Is(err, ErrRetired) {
					errs <- err
					return
				}
				if got := kr.Fingerprint(merchant, pan); got != fp {
					errs <- errors.New("fingerprint changed")
					return
				}
				n := kr.Newest()
				if _, err := kr.Lookup(n.Kid); err != nil {
					errs <- err
					return
				}
				if len(kr.PublicKeys()) != 1 {
					errs <- errors.New("not exactly one active key")
					return
				}
				_ = kr.Versions()
				if _, err := Seal(kr, master); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 20 {
		if _, err := kr.Rotate(""); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			if err := kr.Retire(first); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestKeysWorkWithJOSE encrypts to each published key with an independent
// JOSE implementation (go-jose, tests only) and decrypts with Lookup.
func TestKeysWorkWithJOSE(t *testing.T) {
	for _, kr := range []*Keyring{mustNew(t, AlgECDHP256), mustNew(t, AlgECDHP384), rsaKeyring(t)} {
		pub := kr.PublicKeys()[0]
		t.Run(kr.Newest().Alg, func(t *testing.T) {
			checkJOSE(t, kr, pub)
		})
	}
}

func checkJOSE(t *testing.T, kr *Keyring, pub PublicVersion) {
	t.Helper()
	enc, err := gojose.NewEncrypter(gojose.A256GCM, gojose.Recipient{Algorithm: gojose.KeyAlgorithm(pub.Alg), Key: pub.Key, KeyID: pub.Kid}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := enc.Encrypt([]byte(`{"pan":"4242424242424242"}`))
	if err != nil {
		t.Fatal(err)
	}
	compact, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := gojose.ParseEncryptedCompact(compact, []gojose.KeyAlgorithm{gojose.ECDH_ES_A256KW, gojose.RSA_OAEP_256}, []gojose.ContentEncryption{gojose.A256GCM})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := kr.Lookup(parsed.Header.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := parsed.Decrypt(priv)
	if err != nil || string(pt) != `{"pan":"4242424242424242"}` {
		t.Fatalf("decrypt: %q, %v", pt, err)
	}
}

// rsaKeyring generates one RSA-3072 keyring per test binary: generation
// takes a second or more on a busy machine.
var rsaOnce = sync.OnceValues(func() (*Keyring, error) { return New(AlgRSA3072) })

func rsaKeyring(t testing.TB) *Keyring {
	t.Helper()
	kr, err := rsaOnce()
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := kr.Lookup(kr.Newest().Kid)
	if k, ok := priv.(*rsa.PrivateKey); !ok || k.N.BitLen() != 3072 {
		t.Fatalf("RSA keyring key = %T", priv)
	}
	return kr
}

func BenchmarkFingerprint(b *testing.B) {
	kr := mustNew(b, "")
	pan := []byte("4242424242424242")
	b.ReportAllocs()
	for b.Loop() {
		_ = kr.Fingerprint("m_1", pan)
	}
}

func BenchmarkLookup(b *testing.B) {
	kr := mustNew(b, "")
	kid := kr.Newest().Kid
	b.ReportAllocs()
	for b.Loop() {
		_, _ = kr.Lookup(kid)
	}
}

func TestGuardTag(t *testing.T) {
	kr := mustNew(t, "")
	a := kr.GuardTag("bucket", "m_1", "424242", "4242")
	if len(a) != 32 {
		t.Fatalf("tag %q", a)
	}
	if kr.GuardTag("bucket", "m_1", "424242", "4242") != a {
		t.Fatal("tag not deterministic")
	}
	for _, other := range [][]string{{"bucket", "m_2", "424242", "4242"}, {"bucket", "m_1", "4242424", "242"}, {"member", "m_1", "424242", "4242"}} {
		if kr.GuardTag(other...) == a {
			t.Fatalf("%v tags like the original", other)
		}
	}
	if mustNew(t, "").GuardTag("bucket", "m_1", "424242", "4242") == a {
		t.Fatal("another keyring's key gave the same tag")
	}
}

func TestBinding(t *testing.T) {
	kr := mustNew(t, "")
	jwe := []byte("h.k.iv.ct.tag")
	b := kr.Binding("m_1", jwe)
	if !strings.HasPrefix(b, BindingPrefix) || len(b) != len(BindingPrefix)+22 {
		t.Fatalf("binding %q", b)
	}
	if !kr.VerifyBinding("m_1", jwe, b) {
		t.Fatal("own binding refused")
	}
	for name, ok := range map[string]bool{
		"other merchant":   kr.VerifyBinding("m_2", jwe, b),
		"other ciphertext": kr.VerifyBinding("m_1", []byte("h.k.iv.ct.tag2"), b),
		"empty":            kr.VerifyBinding("m_1", jwe, ""),
		"truncated":        kr.VerifyBinding("m_1", jwe, b[:len(b)-1]),
		"other keyring":    mustNew(t, "").VerifyBinding("m_1", jwe, b),
	} {
		if ok {
			t.Errorf("%s verified", name)
		}
	}
}
