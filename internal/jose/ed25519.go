package jose

import (
	"crypto"
	"crypto/ed25519"
	"fmt"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// This file is the package's only door to curve25519-voi, which checks
// EdDSA request signatures in place of jwx (see verifySig): jwx's EdDSA
// verifier is a thin wrapper over crypto/ed25519.Verify, which decodes
// the public key on every call; voi can keep a key decoded and expanded
// into its tables (NewVerifyKey), which takes about a third off the check
// the key service runs on every signed request (36 against 51-54 µs in
// BenchmarkFloorVerifyEd25519 and ...Stdlib on the 2-core VM).
//
// The check must accept exactly what crypto/ed25519.Verify accepts, no
// more, no less (ed25519_test.go compares the two): voi's
// VerifyOptionsStdLib is that behaviour, the cofactorless equation
// [S]B - [k]A == R compared on R's encoding as sent (so a non-canonical R
// never verifies), S < L required, and small-order or non-canonically
// encoded public keys and small-order R accepted as the standard library
// accepts them, with k hashed over the key's bytes as sent.

// stdlibOptions selects crypto/ed25519's verification rules (pure
// Ed25519: no pre-hash, no context).
var stdlibOptions = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// VerifyKey is a request-signing public key prepared once for
// VerifyCompact, for a caller that keeps its clients' keys (the key
// service's allow-list): a lookup may return it where it would return the
// key itself. An Ed25519 key is held decoded and expanded, so a request
// does not pay for that again; a P-256 key is held as it is (ES256 is
// checked by jwx, as before). It is immutable and safe for concurrent use.
type VerifyKey struct {
	pub crypto.PublicKey
	// ed is the expanded Ed25519 key; nil for P-256, and for 32 bytes that
	// are not a curve point, which crypto/ed25519 also never verifies with.
	ed *voi.ExpandedPublicKey
}

// NewVerifyKey prepares pub, an Ed25519 (EdDSA) or P-256 (ES256) public
// key, for VerifyCompact. Any other key is ErrUnsupported, as VerifyCompact
// would refuse it.
func NewVerifyKey(pub crypto.PublicKey) (*VerifyKey, error) {
	if _, ok := pub.(*VerifyKey); ok {
		return nil, fmt.Errorf("%w: key is already prepared", ErrUnsupported)
	}
	if _, err := signAlg(pub); err != nil {
		return nil, err
	}
	k := &VerifyKey{pub: pub}
	if ed, ok := pub.(ed25519.PublicKey); ok {
		// An error is a key that is not a point: k.ed stays nil and every
		// signature is refused, as crypto/ed25519 refuses them.
		k.ed, _ = voi.NewExpandedPublicKey(voi.PublicKey(ed))
	}
	return k, nil
}

// Public is the key NewVerifyKey prepared, as it was given.
func (k *VerifyKey) Public() crypto.PublicKey { return k.pub }

// verifyEd25519 reports whether sig is a valid Ed25519 signature of msg by
// pub, an ed25519.PublicKey or a *VerifyKey of one, by crypto/ed25519's
// rules. A plain key is decoded on every call; a wrong length, another key
// type or a panic in voi is false.
func verifyEd25519(pub crypto.PublicKey, msg, sig []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	if len(sig) != ed25519.SignatureSize {
		return false
	}
	switch k := pub.(type) {
	case *VerifyKey:
		if k == nil || k.ed == nil {
			return false
		}
		return voi.VerifyExpandedWithOptions(k.ed, msg, sig, stdlibOptions)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return false
		}
		return voi.VerifyWithOptions(voi.PublicKey(k), msg, sig, stdlibOptions)
	}
	return false
}
