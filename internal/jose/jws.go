package jose

import (
	"crypto"
	"encoding/base64"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// jwsMember is the allow-list of JWS protected-header members; b64, crit,
// jku, jwk, x5u, x5c and the rest are refused.
func jwsMember(name string) bool { return name == "alg" || name == "kid" || name == "typ" }

// sigSize is the raw signature length for both EdDSA and ES256.
const sigSize = 64

// signAlg derives the signature algorithm from a public key, or from the
// key a *VerifyKey holds.
func signAlg(pub crypto.PublicKey) (jwa.SignatureAlgorithm, error) {
	if k, ok := pub.(*VerifyKey); ok {
		if k == nil {
			return "", fmt.Errorf("%w: nil key", ErrUnsupported)
		}
		pub = k.pub
	}
	kind, err := keyKind(pub)
	if err != nil {
		return "", err
	}
	switch kind {
	case "Ed25519":
		return jwa.EdDSA, nil
	case "P-256":
		return jwa.ES256, nil
	}
	return "", fmt.Errorf("%w: signing key %s", ErrUnsupported, kind)
}

// Sign produces a compact JWS over payload with header {alg, kid, typ:
// TypeRequest}. An Ed25519 key signs EdDSA, a P-256 ECDSA key ES256; key may
// be any crypto.Signer (an HSM or KMS handle) whose Public() is one of those.
func Sign(payload []byte, key crypto.Signer, kid string) (string, error) {
	if key == nil {
		return "", fmt.Errorf("%w: nil key", ErrUnsupported)
	}
	if !validID(kid) {
		return "", fmt.Errorf("%w: kid missing or invalid", ErrMalformed)
	}
	alg, err := signAlg(key.Public())
	if err != nil {
		return "", err
	}
	// The header is {alg, kid, typ} in the order and form jws.Sign writes it
	// (a kid that passed validID needs no escaping), so the strict parse
	// reads it in one pass; jwx makes the signature itself.
	hdr := make([]byte, 0, 48+len(kid))
	hdr = append(hdr, `{"alg":"`...)
	hdr = append(hdr, alg...)
	hdr = append(hdr, `","kid":"`...)
	hdr = append(hdr, kid...)
	hdr = append(hdr, `","typ":"`+TypeRequest+`"}`...)
	enc := base64.RawURLEncoding
	out := make([]byte, 0, enc.EncodedLen(len(hdr))+enc.EncodedLen(len(payload))+enc.EncodedLen(sigSize)+2)
	out = enc.AppendEncode(out, hdr)
	out = append(out, '.')
	out = enc.AppendEncode(out, payload)
	sig, err := jwxSign(out, alg, key)
	if err != nil {
		return "", err
	}
	out = append(out, '.')
	out = enc.AppendEncode(out, sig)
	if len(out) > MaxCompactSize {
		return "", ErrTooLarge
	}
	return string(out), nil
}

// signers are jwx's signers of the two algorithms, made once (immutable).
var signers = func() map[jwa.SignatureAlgorithm]jws.Signer {
	m := map[jwa.SignatureAlgorithm]jws.Signer{}
	for _, alg := range []jwa.SignatureAlgorithm{jwa.EdDSA, jwa.ES256} {
		s, err := jws.NewSigner(alg)
		if err != nil {
			panic(fmt.Sprintf("jose: jwx has no %s signer: %v", alg, err))
		}
		m[alg] = s
	}
	return m
}()

// jwxSign signs input with jwx's signer for alg (jws.Sign would build the
// same compact JWS through its generic header and message types).
func jwxSign(input []byte, alg jwa.SignatureAlgorithm, key crypto.Signer) (sig []byte, err error) {
	s, ok := signers[alg]
	if !ok {
		return nil, fmt.Errorf("%w: signing algorithm %s", ErrUnsupported, alg)
	}
	sig, err = s.Sign(input, key)
	if err != nil {
		return nil, fmt.Errorf("jose: sign: %w", err)
	}
	return sig, nil
}

// VerifyCompact verifies a compact JWS made by Sign. The header must be
// strict (alg EdDSA or ES256, kid, typ TypeRequest, nothing else), and the
// alg must be the one the key returned by lookup(kid) implies: a header that
// says ES256 over an Ed25519 key is ErrSignature, never a fallback. An error
// from lookup is returned wrapped, so callers keep their own sentinels.
//
// lookup returns an ed25519.PublicKey, an *ecdsa.PublicKey (P-256) or a
// *VerifyKey made from one by NewVerifyKey; a caller that keeps its keys
// should keep VerifyKeys, so an Ed25519 key is not decoded per request.
//
// kid is returned once the header parsed, even on error, for logging.
func VerifyCompact(compact string, lookup func(kid string) (crypto.PublicKey, error)) (kid string, payload []byte, err error) {
	buf := []byte(compact)
	parts, err := splitCompact(buf, 3)
	if err != nil {
		return "", nil, err
	}
	raw, err := decodeB64(parts[0])
	if err != nil || len(raw) == 0 {
		return "", nil, fmt.Errorf("%w: protected header", ErrMalformed)
	}
	m, err := decodeHeader(raw)
	if err != nil {
		return "", nil, err
	}
	for name := range m {
		if !jwsMember(name) {
			return "", nil, fmt.Errorf("%w: header member %q", ErrUnsupported, safeName(name))
		}
	}
	alg, ok, err := stringMember(m, "alg")
	if err != nil {
		return "", nil, err
	} else if !ok {
		return "", nil, fmt.Errorf("%w: missing alg", ErrMalformed)
	}
	if alg != AlgEdDSA && alg != AlgES256 {
		// Includes "none" and every HMAC algorithm (key confusion).
		return "", nil, fmt.Errorf("%w: alg", ErrUnsupported)
	}
	typ, _, err := stringMember(m, "typ")
	if err != nil {
		return "", nil, err
	}
	if typ != TypeRequest {
		return "", nil, fmt.Errorf("%w: typ", ErrUnsupported)
	}
	if kid, _, err = stringMember(m, "kid"); err != nil {
		return "", nil, err
	}
	if !validID(kid) {
		return "", nil, fmt.Errorf("%w: kid missing or invalid", ErrMalformed)
	}
	body, err := decodeB64(parts[1])
	if err != nil {
		return kid, nil, fmt.Errorf("%w: payload", ErrMalformed)
	}
	sig, err := decodeB64(parts[2])
	if err != nil || len(sig) != sigSize {
		return kid, nil, fmt.Errorf("%w: signature", ErrMalformed)
	}
	if lookup == nil {
		return kid, nil, fmt.Errorf("%w: no key lookup", ErrSignature)
	}
	pub, err := lookup(kid)
	if err != nil {
		return kid, nil, fmt.Errorf("jose: key lookup: %w", err)
	}
	want, err := signAlg(pub)
	if err != nil {
		return kid, nil, fmt.Errorf("%w: key for kid: %w", ErrSignature, err)
	}
	if string(want) != alg {
		return kid, nil, fmt.Errorf("%w: alg does not fit the key", ErrSignature)
	}
	// The signing input is the first two parts as they arrived (RFC 7515
	// 5.2; b64 is refused above, so the payload part is base64url).
	input := buf[:len(parts[0])+1+len(parts[1])]
	if err := verifySig(input, sig, want, pub); err != nil {
		return kid, nil, err
	}
	return kid, body, nil
}

// verifySig checks sig over input with pub for alg, which signAlg derived
// from pub. EdDSA does not go through jwx: its EdDSA verifier is a thin
// wrapper over crypto/ed25519.Verify, and curve25519-voi checks the same
// signatures by the same rules (verifyEd25519) on a key expanded once
// (NewVerifyKey), for about a third less CPU (issue 17: 36 against
// 51-54 µs here). ES256 stays with jwx.
func verifySig(input, sig []byte, alg jwa.SignatureAlgorithm, pub crypto.PublicKey) error {
	if alg == jwa.EdDSA {
		if !verifyEd25519(pub, input, sig) {
			return ErrSignature
		}
		return nil
	}
	if k, ok := pub.(*VerifyKey); ok {
		pub = k.pub // signAlg refused a nil one
	}
	return jwxVerify(input, sig, alg, pub)
}

// verifiers are jwx's signature verifiers, made once (they hold no
// state): ES256 only, EdDSA is verifyEd25519's.
var verifiers = func() map[jwa.SignatureAlgorithm]jws.Verifier {
	m := map[jwa.SignatureAlgorithm]jws.Verifier{}
	for _, alg := range []jwa.SignatureAlgorithm{jwa.ES256} {
		v, err := jws.NewVerifier(alg)
		if err != nil {
			panic(fmt.Sprintf("jose: jwx has no %s verifier: %v", alg, err))
		}
		m[alg] = v
	}
	return m
}()

// jwxVerify checks sig over input with jwx's verifier for alg. jws.Verify
// would parse the compact JWS again, header and all; the strict parse
// above has done that once, so only the signature is left to jwx. A panic
// inside the third-party code becomes ErrSignature rather than a crash.
func jwxVerify(input, sig []byte, alg jwa.SignatureAlgorithm, pub crypto.PublicKey) (err error) {
	defer func() {
		if recover() != nil {
			err = ErrSignature
		}
	}()
	v, ok := verifiers[alg]
	if !ok {
		return ErrSignature
	}
	if v.Verify(input, sig, pub) != nil {
		return ErrSignature
	}
	return nil
}
