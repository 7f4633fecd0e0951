package jose

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwe"
)

// Header is the part of a card ciphertext's protected header that callers use.
// It is only authenticated once Decrypt has succeeded.
type Header struct {
	Alg       string // AlgRSAOAEP256 or AlgECDHES
	Enc       string // always EncA256GCM
	Kid       string // KEK version
	SessionID string // bg_sid: the checkout session the ciphertext is bound to
}

// Sizes fixed by A256GCM and A256KW.
const (
	gcmIVSize    = 12
	gcmTagSize   = 16
	a256kwCEKLen = 40 // 32-byte CEK wrapped with AES-KW adds 8 bytes
	maxPartyInfo = 256
	maxTypLen    = 64
)

// jweMember is the allow-list of protected-header members. Anything else,
// notably zip, crit, jku, jwk, x5u, x5c, x5t, p2s, p2c, iv, tag and b64, is
// refused outright rather than ignored: an ignored member is one a later
// library upgrade might start honouring.
func jweMember(name string) bool {
	switch name {
	case "alg", "enc", "kid", HeaderSessionID, "epk", "apu", "apv", "typ", "cty":
		return true
	}
	return false
}

// parsedJWE is what the strict pre-parse learned about a compact JWE.
type parsedJWE struct {
	hdr      Header
	encKey   []byte
	epkCurve string // "P-256" or "P-384" for ECDH-ES+A256KW
}

// ParseHeader checks a compact JWE against Contract 1 without decrypting it:
// exactly five parts, at most MaxCompactSize bytes, canonical base64url, a
// strict protected header (alg RSA-OAEP-256 or ECDH-ES+A256KW, enc A256GCM,
// no zip, no crit, only allow-listed members, kid and bg_sid present) and
// part sizes that fit the algorithms. The returned Header is unauthenticated.
func ParseHeader(compact []byte) (Header, error) {
	j, err := Open(compact)
	if err != nil {
		return Header{}, err
	}
	return j.Header(), nil
}

// JWE is a compact JWE that passed ParseHeader's checks. Open parses once so
// a caller can pick the key by the header and then decrypt without parsing
// again (the strict parse is a measurable share of a decrypt).
type JWE struct {
	compact []byte
	p       *parsedJWE
}

// Open runs the strict checks of ParseHeader and keeps the result.
func Open(compact []byte) (*JWE, error) {
	p, err := parseJWE(compact)
	if err != nil {
		return nil, err
	}
	return &JWE{compact: compact, p: p}, nil
}

// Header is the parsed protected header; authenticated only once Decrypt succeeds.
func (j *JWE) Header() Header { return j.p.hdr }

// Decrypt opens the ciphertext with key, with the same rules as the package's Decrypt.
func (j *JWE) Decrypt(key crypto.PrivateKey) ([]byte, error) {
	alg, err := decryptAlg(j.p, key)
	if err != nil {
		return nil, err
	}
	return jwxDecrypt(j.compact, alg, key)
}

func parseJWE(compact []byte) (*parsedJWE, error) {
	parts, err := splitCompact(compact, 5)
	if err != nil {
		return nil, err
	}
	raw, err := decodeB64(parts[0])
	if err != nil || len(raw) == 0 {
		return nil, fmt.Errorf("%w: protected header", ErrMalformed)
	}
	m, err := decodeHeader(raw)
	if err != nil {
		return nil, err
	}
	for name := range m {
		if !jweMember(name) {
			return nil, fmt.Errorf("%w: header member %q", ErrUnsupported, safeName(name))
		}
	}
	p := &parsedJWE{}
	h := &p.hdr
	var ok bool
	if h.Alg, ok, err = stringMember(m, "alg"); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: missing alg", ErrMalformed)
	}
	if h.Alg != AlgRSAOAEP256 && h.Alg != AlgECDHES {
		return nil, fmt.Errorf("%w: alg", ErrUnsupported)
	}
	if h.Enc, ok, err = stringMember(m, "enc"); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: missing enc", ErrMalformed)
	}
	if h.Enc != EncA256GCM {
		return nil, fmt.Errorf("%w: enc", ErrUnsupported)
	}
	if h.Kid, _, err = stringMember(m, "kid"); err != nil {
		return nil, err
	}
	if !validID(h.Kid) {
		return nil, fmt.Errorf("%w: kid missing or invalid", ErrMalformed)
	}
	if h.SessionID, _, err = stringMember(m, HeaderSessionID); err != nil {
		return nil, err
	}
	if !validID(h.SessionID) {
		return nil, fmt.Errorf("%w: %s missing or invalid", ErrMalformed, HeaderSessionID)
	}
	for _, name := range []string{"typ", "cty"} {
		v, present, err := stringMember(m, name)
		if err != nil {
			return nil, err
		}
		if present && (v == "" || len(v) > maxTypLen) {
			return nil, fmt.Errorf("%w: %s", ErrMalformed, name)
		}
	}

	switch h.Alg {
	case AlgECDHES:
		epk, present := m["epk"]
		if !present {
			return nil, fmt.Errorf("%w: missing epk", ErrMalformed)
		}
		if p.epkCurve, err = checkEPK(epk); err != nil {
			return nil, err
		}
		for _, name := range []string{"apu", "apv"} {
			v, present, err := stringMember(m, name)
			if err != nil {
				return nil, err
			}
			if !present {
				continue
			}
			d, err := decodeB64([]byte(v))
			if err != nil || len(d) > maxPartyInfo {
				return nil, fmt.Errorf("%w: %s", ErrMalformed, name)
			}
		}
	case AlgRSAOAEP256:
		// Key agreement members make no sense here; refuse rather than ignore.
		for _, name := range []string{"epk", "apu", "apv"} {
			if _, present := m[name]; present {
				return nil, fmt.Errorf("%w: %s with %s", ErrUnsupported, name, h.Alg)
			}
		}
	}

	if p.encKey, err = decodeB64(parts[1]); err != nil {
		return nil, fmt.Errorf("%w: encrypted key", ErrMalformed)
	}
	switch {
	case len(p.encKey) == 0:
		// An empty encrypted key means "dir" or plain ECDH-ES, neither allowed.
		return nil, fmt.Errorf("%w: empty encrypted key", ErrMalformed)
	case h.Alg == AlgECDHES && len(p.encKey) != a256kwCEKLen:
		return nil, fmt.Errorf("%w: encrypted key length", ErrMalformed)
	case h.Alg == AlgRSAOAEP256 && (len(p.encKey) < MinRSABits/8 || len(p.encKey) > 1024):
		return nil, fmt.Errorf("%w: encrypted key length", ErrMalformed)
	}
	if n, err := checkB64(parts[2]); err != nil || n != gcmIVSize {
		return nil, fmt.Errorf("%w: iv", ErrMalformed)
	}
	if _, err := checkB64(parts[3]); err != nil {
		return nil, fmt.Errorf("%w: ciphertext", ErrMalformed)
	}
	if n, err := checkB64(parts[4]); err != nil || n != gcmTagSize {
		return nil, fmt.Errorf("%w: tag", ErrMalformed)
	}
	return p, nil
}

// checkEPK validates the ephemeral public key: an uncompressed EC point on
// P-256 or P-384 (crypto/ecdh refuses off-curve points and the identity, the
// invalid-curve attack), and no private or indirection members.
func checkEPK(raw json.RawMessage) (string, error) {
	m, err := decodeHeader(raw)
	if err != nil {
		return "", fmt.Errorf("%w: epk", ErrMalformed)
	}
	for name := range m {
		switch name {
		case "kty", "crv", "x", "y":
		case "ext":
			// WebCrypto's exportKey("jwk") adds ext and key_ops; they carry
			// no key material, but must still have their JSON types.
			var b bool
			if json.Unmarshal(m[name], &b) != nil {
				return "", fmt.Errorf("%w: epk ext", ErrMalformed)
			}
		case "key_ops":
			var ops []string
			if json.Unmarshal(m[name], &ops) != nil || len(ops) > 8 {
				return "", fmt.Errorf("%w: epk key_ops", ErrMalformed)
			}
		default:
			return "", fmt.Errorf("%w: epk member %q", ErrUnsupported, safeName(name))
		}
	}
	kty, _, err := stringMember(m, "kty")
	if err != nil || kty != "EC" {
		return "", fmt.Errorf("%w: epk kty", ErrUnsupported)
	}
	crv, _, err := stringMember(m, "crv")
	if err != nil {
		return "", fmt.Errorf("%w: epk crv", ErrMalformed)
	}
	curve, size := ecdhCurve(crv)
	if curve == nil {
		return "", fmt.Errorf("%w: epk crv", ErrUnsupported)
	}
	pt := make([]byte, 1, 1+2*size)
	pt[0] = 4
	for _, name := range []string{"x", "y"} {
		s, _, err := stringMember(m, name)
		if err != nil {
			return "", fmt.Errorf("%w: epk %s", ErrMalformed, name)
		}
		c, err := decodeB64([]byte(s))
		if err != nil || len(c) != size {
			return "", fmt.Errorf("%w: epk %s", ErrMalformed, name)
		}
		pt = append(pt, c...)
	}
	if _, err := curve.NewPublicKey(pt); err != nil {
		return "", fmt.Errorf("%w: epk is not a point on %s", ErrMalformed, crv)
	}
	return crv, nil
}

func ecdhCurve(crv string) (ecdh.Curve, int) {
	switch crv {
	case "P-256":
		return ecdh.P256(), 32
	case "P-384":
		return ecdh.P384(), 48
	}
	return nil, 0
}

// curveName maps the curves we accept for key agreement; "" otherwise.
func curveName(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "P-256"
	case elliptic.P384():
		return "P-384"
	}
	return ""
}

// Decrypt opens a Contract 1 card ciphertext with the KEK private key that
// the header's kid selected. ParseHeader's checks run first; then the key
// must fit the header: *rsa.PrivateKey of at least MinRSABits for
// RSA-OAEP-256 (smaller keys: ErrUnsupported), *ecdsa.PrivateKey on the
// epk's curve (P-256 or P-384) for ECDH-ES+A256KW. The algorithm given to
// jwx comes from the key. A key that does not fit the header, and every
// cryptographic failure, is ErrDecrypt with no further detail.
//
// The Header is returned whenever it parsed, even with ErrDecrypt, so that a
// caller can log the kid; it is authenticated only when err is nil.
func Decrypt(compact []byte, key crypto.PrivateKey) (Header, []byte, error) {
	j, err := Open(compact)
	if err != nil {
		return Header{}, nil, err
	}
	pt, err := j.Decrypt(key)
	if err != nil {
		return j.Header(), nil, err
	}
	return j.Header(), pt, nil
}

// decryptAlg derives the key-encryption algorithm from the key and checks
// that the header agrees with it.
func decryptAlg(p *parsedJWE, key crypto.PrivateKey) (jwa.KeyEncryptionAlgorithm, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k == nil || k.N == nil {
			return "", fmt.Errorf("%w: nil key", ErrUnsupported)
		}
		if k.N.BitLen() < MinRSABits {
			return "", fmt.Errorf("%w: RSA key below %d bits", ErrUnsupported, MinRSABits)
		}
		if p.hdr.Alg != AlgRSAOAEP256 || len(p.encKey) != k.Size() {
			return "", ErrDecrypt
		}
		return jwa.RSA_OAEP_256, nil
	case *ecdsa.PrivateKey:
		if k == nil || k.Curve == nil {
			return "", fmt.Errorf("%w: nil key", ErrUnsupported)
		}
		crv := curveName(k.Curve)
		if crv == "" {
			return "", fmt.Errorf("%w: EC curve", ErrUnsupported)
		}
		if p.hdr.Alg != AlgECDHES || p.epkCurve != crv {
			return "", ErrDecrypt
		}
		return jwa.ECDH_ES_A256KW, nil
	default:
		return "", fmt.Errorf("%w: key type %T", ErrUnsupported, key)
	}
}

// jwxDecrypt runs jwx on input that already passed parseJWE. jwx's error
// text (which may say which step failed) is dropped on purpose, and a panic
// inside the third-party parser becomes ErrDecrypt rather than a crash.
func jwxDecrypt(compact []byte, alg jwa.KeyEncryptionAlgorithm, key crypto.PrivateKey) (pt []byte, err error) {
	defer func() {
		if recover() != nil {
			pt, err = nil, ErrDecrypt
		}
	}()
	pt, err = jwe.Decrypt(compact, jwe.WithKey(alg, key))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// jwxEncrypt is the one jwx encryption call: compact serialisation, A256GCM,
// the protected header hdrs, the key wrapped (or agreed) with alg.
func jwxEncrypt(plaintext []byte, alg jwa.KeyEncryptionAlgorithm, key any, hdrs jwe.Headers) ([]byte, error) {
	out, err := jwe.Encrypt(plaintext,
		jwe.WithKey(alg, key),
		jwe.WithContentEncryption(jwa.A256GCM),
		jwe.WithProtectedHeaders(hdrs),
		jwe.WithCompact(),
	)
	if err != nil {
		return nil, fmt.Errorf("jose: encrypt: %w", err)
	}
	return out, nil
}

// Encrypt produces a compact Contract 1 JWE of plaintext for pub. The
// algorithm follows the key: *rsa.PublicKey (>= MinRSABits) gives
// RSA-OAEP-256, *ecdsa.PublicKey on P-256 or P-384 gives ECDH-ES+A256KW;
// enc is always A256GCM. extra goes into the protected header and must hold
// bg_sid (Decrypt refuses a ciphertext without it); the only other members
// allowed are typ and cty.
func Encrypt(plaintext []byte, pub crypto.PublicKey, kid string, extra map[string]string) ([]byte, error) {
	var alg jwa.KeyEncryptionAlgorithm
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil || k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("%w: RSA key below %d bits", ErrUnsupported, MinRSABits)
		}
		alg = jwa.RSA_OAEP_256
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil || curveName(k.Curve) == "" {
			return nil, fmt.Errorf("%w: EC curve", ErrUnsupported)
		}
		alg = jwa.ECDH_ES_A256KW
	default:
		return nil, fmt.Errorf("%w: key type %T", ErrUnsupported, pub)
	}
	if !validID(kid) {
		return nil, fmt.Errorf("%w: kid missing or invalid", ErrMalformed)
	}
	if !validID(extra[HeaderSessionID]) {
		return nil, fmt.Errorf("%w: %s missing or invalid", ErrMalformed, HeaderSessionID)
	}
	hdrs := jwe.NewHeaders()
	if err := hdrs.Set(jwe.KeyIDKey, kid); err != nil {
		return nil, fmt.Errorf("jose: set kid: %w", err)
	}
	for name, v := range extra {
		switch name {
		case HeaderSessionID, "typ", "cty":
		default:
			return nil, fmt.Errorf("%w: header member %q", ErrUnsupported, safeName(name))
		}
		if err := hdrs.Set(name, v); err != nil {
			return nil, fmt.Errorf("jose: set header member: %w", err)
		}
	}
	out, err := jwxEncrypt(plaintext, alg, pub, hdrs)
	if err != nil {
		return nil, err
	}
	// Never hand out a ciphertext that our own Decrypt would refuse.
	if _, err := parseJWE(out); err != nil {
		return nil, fmt.Errorf("jose: produced ciphertext fails the strict parse: %w", err)
	}
	return out, nil
}
