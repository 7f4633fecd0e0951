package wire

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"testing"
)

func benchBrowserKey(b *testing.B) BrowserKey {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	pt := k.PublicKey().Bytes()
	return BrowserKey{Kty: "EC", Crv: "P-256", X: base64.RawURLEncoding.EncodeToString(pt[1:33]), Y: base64.RawURLEncoding.EncodeToString(pt[33:])}
}

// BenchmarkBrowserKey is the key service's work on a reveal's browser key:
// what the request's Validate does, and what the domain does to get the
// key it encrypts to and the thumbprint the passkey signed.
func BenchmarkBrowserKey(b *testing.B) {
	k := benchBrowserKey(b)
	b.Run("point", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.Point(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("thumbprint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := JWKThumbprint(k); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("per-reveal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			// The request's Check at bind; the domain takes what it parsed.
			// (Before: Point at bind, then Point and JWKThumbprint, which
			// parses again, in the domain.)
			if _, err := k.Check(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
