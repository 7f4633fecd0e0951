package jose

import (
	"crypto"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// jwsMember is the allow-list of JWS protected-header members; b64, crit,
// jku, jwk, x5u, x5c and the rest are refused.
func jwsMember(name string) bool { return name == "alg" || name == "kid" || name == "typ" }

// sigSize is the raw signature length for both EdDSA and ES256.
const sigSize = 64

// signAlg derives the signature algorithm from a public key.
func signAlg(pub crypto.PublicKey) (jwa.SignatureAlgorithm, error) {
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
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.KeyIDKey, kid); err != nil {
		return "", fmt.Errorf("jose: set kid: %w", err)
	}
	if err := hdrs.Set(jws.TypeKey, TypeRequest); err != nil {
		return "", fmt.Errorf("jose: set typ: %w", err)
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		return "", fmt.Errorf("jose: sign: %w", err)
	}
	if len(out) > MaxCompactSize {
		return "", ErrTooLarge
	}
	return string(out), nil
}

// VerifyCompact verifies a compact JWS made by Sign. The header must be
// strict (alg EdDSA or ES256, kid, typ TypeRequest, nothing else), and the
// alg must be the one the key returned by lookup(kid) implies: a header that
// says ES256 over an Ed25519 key is ErrSignature, never a fallback. An error
// from lookup is returned wrapped, so callers keep their own sentinels.
//
// kid is returned once the header parsed, even on error, for logging.
func VerifyCompact(compact string, lookup func(kid string) (crypto.PublicKey, error)) (kid string, payload []byte, err error) {
	parts, err := splitCompact([]byte(compact), 3)
	if err != nil {
		return "", nil, err
	}
	raw, err := decodeB64(parts[0])
	if err != nil || len(raw) == 0 {
		return "", nil, fmt.Errorf("%w: protected header", ErrMalformed)
	}
	m, err := decodeObject(raw)
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
	if _, err := decodeB64(parts[1]); err != nil {
		return kid, nil, fmt.Errorf("%w: payload", ErrMalformed)
	}
	if sig, err := decodeB64(parts[2]); err != nil || len(sig) != sigSize {
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
	payload, err = jwxVerify([]byte(compact), want, pub)
	if err != nil {
		return kid, nil, err
	}
	return kid, payload, nil
}

func jwxVerify(compact []byte, alg jwa.SignatureAlgorithm, pub crypto.PublicKey) (payload []byte, err error) {
	defer func() {
		if recover() != nil {
			payload, err = nil, ErrSignature
		}
	}()
	payload, err = jws.Verify(compact, jws.WithKey(alg, pub))
	if err != nil {
		return nil, ErrSignature
	}
	return payload, nil
}
