package jose

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

// Floors: the bare standard-library operation under each jose call, so
// that `go test -bench 'Decrypt|Verify|Sign|Floor|Parse'` shows what the
// wrapper and jwx add on top (issue 6). bench/limit.go holds a complete
// standard-library ECDH-ES+A256KW decrypt for the same comparison.

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

// BenchmarkFloorVerifyEd25519 is ed25519.Verify alone, the floor of
// BenchmarkVerifyEdDSA.
func BenchmarkFloorVerifyEd25519(b *testing.B) {
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
