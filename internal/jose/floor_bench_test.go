package jose

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

// Floors: the bare operation under each jose call, so that `go test
// -bench 'Decrypt|Verify|Sign|Floor|Parse'` shows what the wrapper and jwx
// add on top (issue 6). That is the standard library's, except for EdDSA
// verification, which is curve25519-voi's on an expanded key (ed25519.go;
// issue 17). bench/limit.go holds a complete standard-library
// ECDH-ES+A256KW decrypt for the same comparison.

// BenchmarkFloorECDHP256 is the P-256 key agreement alone (crypto/ecdh),
// the one expensive step of an ECDH-ES decrypt.
func BenchmarkFloorECDHP256(b *testing.B) {
	priv, err := p256().ECDH()
	if err != nil {
		b.Fatal(err)
	}
	eph, err := priv.Curve().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := priv.ECDH(eph.PublicKey()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFloorVerifyEd25519 is the signature check alone on a key
// prepared by NewVerifyKey (curve25519-voi, expanded key), the floor of
// BenchmarkVerifyEdDSA.
func BenchmarkFloorVerifyEd25519(b *testing.B) {
	sig := ed25519.Sign(edKey(), claims)
	pub, err := NewVerifyKey(edKey().Public())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !verifyEd25519(pub, claims, sig) {
			b.Fatal("verify")
		}
	}
}

// BenchmarkFloorVerifyEd25519Stdlib is crypto/ed25519.Verify alone, what
// the check cost through jwx before issue 17, and what it would cost now.
func BenchmarkFloorVerifyEd25519Stdlib(b *testing.B) {
	sig := ed25519.Sign(edKey(), claims)
	pub := edKey().Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, claims, sig) {
			b.Fatal("verify")
		}
	}
}

// BenchmarkSignEdDSA and BenchmarkFloorSignEd25519: what the gateway pays per
// signed key-service request, through jose.Sign and bare.
func BenchmarkSignEdDSA(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(claims, edKey(), "ed"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFloorSignEd25519(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ed25519.Sign(edKey(), claims)
	}
}

// BenchmarkDecodeObject is the strict JSON object walk parseJWE and
// VerifyCompact run on every protected header.
func BenchmarkDecodeObject(b *testing.B) {
	ct := mustEncrypt(b, &p256().PublicKey, "kek-1")
	parts, err := splitCompact(ct, 5)
	if err != nil {
		b.Fatal(err)
	}
	hdr, err := decodeB64(parts[0])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeObject(hdr); err != nil {
			b.Fatal(err)
		}
	}
}
