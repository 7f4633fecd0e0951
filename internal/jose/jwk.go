package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// PublicKey is one published key-encryption key: what a JWKS entry says.
type PublicKey struct {
	Kid string
	Alg string // AlgRSAOAEP256 or AlgECDHES
	Key crypto.PublicKey
}

// jwkMember is the allow-list for a public JWK. Private members (d, p, q,
// dp, dq, qi, oth, k) and certificate or URL indirections (x5c, x5u, x5t,
// jku) are refused: a public key document must carry only public material.
func jwkMember(name string) bool {
	switch name {
	case "kty", "crv", "x", "y", "n", "e", "kid", "alg", "use", "key_ops", "ext":
		return true
	}
	return false
}

// keyKind names a public key we accept anywhere: "RSA" (>= MinRSABits),
// "P-256", "P-384" or "Ed25519". Private keys are refused so a caller cannot
// publish one by mistake.
func keyKind(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil || k.N.BitLen() < MinRSABits {
			return "", fmt.Errorf("%w: RSA key below %d bits", ErrUnsupported, MinRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return "", fmt.Errorf("%w: RSA exponent", ErrUnsupported)
		}
		return "RSA", nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return "", fmt.Errorf("%w: nil key", ErrUnsupported)
		}
		c := curveName(k.Curve)
		if c == "" {
			return "", fmt.Errorf("%w: EC curve", ErrUnsupported)
		}
		// ECDH() refuses points off the curve and the point at infinity.
		if _, err := k.ECDH(); err != nil {
			return "", fmt.Errorf("%w: EC point", ErrMalformed)
		}
		return c, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("%w: Ed25519 key size", ErrUnsupported)
		}
		return "Ed25519", nil
	default:
		return "", fmt.Errorf("%w: key type %T", ErrUnsupported, pub)
	}
}

// encAlgFits reports whether alg is a key-encryption algorithm usable with kind.
func encAlgFits(alg, kind string) bool {
	switch alg {
	case AlgRSAOAEP256:
		return kind == "RSA"
	case AlgECDHES:
		return kind == "P-256" || kind == "P-384"
	}
	return false
}

// algFits reports whether alg (any algorithm we know) is usable with kind.
func algFits(alg, kind string) bool {
	switch alg {
	case AlgEdDSA:
		return kind == "Ed25519"
	case AlgES256:
		return kind == "P-256"
	}
	return encAlgFits(alg, kind)
}

// MarshalJWKS renders the published key-encryption keys as a JWKS:
// {"keys":[{kty, kid, alg, use:"enc", ...}]}. Each key must be public, fit
// its Alg, and carry a unique kid.
func MarshalJWKS(keys []PublicKey) ([]byte, error) {
	set := jwk.NewSet()
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if !validID(k.Kid) {
			return nil, fmt.Errorf("%w: kid missing or invalid", ErrMalformed)
		}
		if seen[k.Kid] {
			return nil, fmt.Errorf("%w: duplicate kid %q", ErrMalformed, k.Kid)
		}
		seen[k.Kid] = true
		kind, err := keyKind(k.Key)
		if err != nil {
			return nil, err
		}
		if !encAlgFits(k.Alg, kind) {
			return nil, fmt.Errorf("%w: alg does not fit key %q", ErrUnsupported, k.Kid)
		}
		jk, err := toJWK(k.Key, k.Kid)
		if err != nil {
			return nil, err
		}
		if err := jk.Set(jwk.AlgorithmKey, jwa.KeyEncryptionAlgorithm(k.Alg)); err != nil {
			return nil, fmt.Errorf("jose: set alg: %w", err)
		}
		if err := jk.Set(jwk.KeyUsageKey, jwk.ForEncryption); err != nil {
			return nil, fmt.Errorf("jose: set use: %w", err)
		}
		if err := set.AddKey(jk); err != nil {
			return nil, fmt.Errorf("jose: add key: %w", err)
		}
	}
	out, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("jose: marshal JWKS: %w", err)
	}
	return out, nil
}

// ParseJWKS reads a JWKS of key-encryption keys. Every entry must have a
// unique kid, alg RSA-OAEP-256 or ECDH-ES+A256KW fitting its key, use "enc",
// and only public members. An entry we cannot use is an error rather than
// skipped, so a bad publication is noticed instead of silently shrinking.
func ParseJWKS(data []byte) ([]PublicKey, error) {
	if len(data) > maxJWKSSize {
		return nil, ErrTooLarge
	}
	m, err := decodeObject(data)
	if err != nil {
		return nil, err
	}
	for name := range m {
		if name != "keys" {
			return nil, fmt.Errorf("%w: JWKS member %q", ErrUnsupported, safeName(name))
		}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(m["keys"], &raws); err != nil || raws == nil {
		return nil, fmt.Errorf("%w: JWKS keys", ErrMalformed)
	}
	out := make([]PublicKey, 0, len(raws))
	seen := make(map[string]bool, len(raws))
	for _, raw := range raws {
		pk, use, err := parseJWK(raw)
		if err != nil {
			return nil, err
		}
		if use != "enc" {
			return nil, fmt.Errorf("%w: JWKS key %q use is not enc", ErrUnsupported, pk.Kid)
		}
		kind, _ := keyKind(pk.Key)
		if !encAlgFits(pk.Alg, kind) {
			return nil, fmt.Errorf("%w: JWKS key %q alg", ErrUnsupported, pk.Kid)
		}
		if seen[pk.Kid] {
			return nil, fmt.Errorf("%w: duplicate kid %q", ErrMalformed, pk.Kid)
		}
		seen[pk.Kid] = true
		out = append(out, pk)
	}
	return out, nil
}

// MarshalPublicJWK renders one public key (Ed25519, P-256, P-384 or RSA >=
// MinRSABits) as a JWK with its kid. It refuses private keys.
func MarshalPublicJWK(pub crypto.PublicKey, kid string) ([]byte, error) {
	if !validID(kid) {
		return nil, fmt.Errorf("%w: kid missing or invalid", ErrMalformed)
	}
	if _, err := keyKind(pub); err != nil {
		return nil, err
	}
	jk, err := toJWK(pub, kid)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(jk)
	if err != nil {
		return nil, fmt.Errorf("jose: marshal JWK: %w", err)
	}
	return out, nil
}

// ParsePublicJWK reads one public JWK with a kid. An "alg" member, when
// present, must fit the key; private members are refused.
func ParsePublicJWK(data []byte) (kid string, pub crypto.PublicKey, err error) {
	if len(data) > maxJWKSSize {
		return "", nil, ErrTooLarge
	}
	pk, use, err := parseJWK(data)
	if err != nil {
		return "", nil, err
	}
	if use != "" && use != "sig" && use != "enc" {
		return "", nil, fmt.Errorf("%w: JWK use", ErrUnsupported)
	}
	return pk.Kid, pk.Key, nil
}

func toJWK(pub crypto.PublicKey, kid string) (jwk.Key, error) {
	jk, err := jwk.FromRaw(pub)
	if err != nil {
		return nil, fmt.Errorf("jose: JWK from key: %w", err)
	}
	if err := jk.Set(jwk.KeyIDKey, kid); err != nil {
		return nil, fmt.Errorf("jose: set kid: %w", err)
	}
	return jk, nil
}

// parseJWK strictly pre-parses one public JWK, hands it to jwx, and checks
// the resulting key. It returns the key with its kid and alg ("" if absent)
// and the "use" member.
func parseJWK(raw []byte) (PublicKey, string, error) {
	m, err := decodeObject(raw)
	if err != nil {
		return PublicKey{}, "", err
	}
	for name := range m {
		if !jwkMember(name) {
			return PublicKey{}, "", fmt.Errorf("%w: JWK member %q", ErrUnsupported, safeName(name))
		}
	}
	var pk PublicKey
	if pk.Kid, _, err = stringMember(m, "kid"); err != nil {
		return PublicKey{}, "", err
	}
	if !validID(pk.Kid) {
		return PublicKey{}, "", fmt.Errorf("%w: JWK kid missing or invalid", ErrMalformed)
	}
	if pk.Alg, _, err = stringMember(m, "alg"); err != nil {
		return PublicKey{}, "", err
	}
	use, _, err := stringMember(m, "use")
	if err != nil {
		return PublicKey{}, "", err
	}
	kty, _, err := stringMember(m, "kty")
	if err != nil {
		return PublicKey{}, "", err
	}
	// Check the coordinate encodings ourselves: jwx's base64 decoder is
	// lenient (padding, standard alphabet), ours is canonical.
	var b64Members []string
	switch kty {
	case "EC", "OKP":
		b64Members = []string{"x", "y"}
	case "RSA":
		b64Members = []string{"n", "e"}
	default:
		return PublicKey{}, "", fmt.Errorf("%w: JWK kty", ErrUnsupported)
	}
	for _, name := range b64Members {
		v, present, err := stringMember(m, name)
		if err != nil {
			return PublicKey{}, "", err
		}
		if present {
			if _, err := decodeB64([]byte(v)); err != nil {
				return PublicKey{}, "", fmt.Errorf("%w: JWK %s", ErrMalformed, name)
			}
		}
	}
	pub, err := jwxParsePublic(raw)
	if err != nil {
		return PublicKey{}, "", err
	}
	kind, err := keyKind(pub)
	if err != nil {
		return PublicKey{}, "", err
	}
	if pk.Alg != "" && !algFits(pk.Alg, kind) {
		return PublicKey{}, "", fmt.Errorf("%w: JWK alg does not fit key", ErrUnsupported)
	}
	pk.Key = pub
	return pk, use, nil
}

// jwxParsePublic converts a pre-checked JWK to a raw public key, refusing
// anything jwx considers private.
func jwxParsePublic(raw []byte) (crypto.PublicKey, error) {
	v, err := jwxRaw(raw)
	if err != nil {
		return nil, err
	}
	switch k := v.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return k, nil
	case rsa.PublicKey:
		return &k, nil
	case ecdsa.PublicKey:
		return &k, nil
	default:
		// Includes private keys: the member allow-list should already have
		// stopped them, this is the second lock.
		return nil, fmt.Errorf("%w: JWK key type", ErrUnsupported)
	}
}

// privateJWKMember is the allow-list for a private signing JWK.
func privateJWKMember(name string) bool {
	switch name {
	case "kty", "crv", "x", "y", "d", "kid", "alg", "use":
		return true
	}
	return false
}

// MarshalPrivateJWK renders a request-signing private key (Ed25519 or
// P-256 ECDSA) as a JWK with its kid, for a 0600 key file. Only for key
// files: a private JWK must never be logged or sent.
func MarshalPrivateJWK(key crypto.Signer, kid string) ([]byte, error) {
	if !validID(kid) {
		return nil, fmt.Errorf("%w: kid missing or invalid", ErrMalformed)
	}
	switch key.(type) {
	case ed25519.PrivateKey, *ecdsa.PrivateKey:
	default:
		return nil, fmt.Errorf("%w: private key type %T", ErrUnsupported, key)
	}
	if _, err := signAlg(key.Public()); err != nil {
		return nil, err
	}
	jk, err := jwk.FromRaw(key)
	if err != nil {
		return nil, fmt.Errorf("jose: JWK from key: %w", err)
	}
	if err := jk.Set(jwk.KeyIDKey, kid); err != nil {
		return nil, fmt.Errorf("jose: set kid: %w", err)
	}
	out, err := json.Marshal(jk)
	if err != nil {
		return nil, fmt.Errorf("jose: marshal JWK: %w", err)
	}
	return out, nil
}

// ParsePrivateJWK reads a request-signing private key written by
// MarshalPrivateJWK (Ed25519 or P-256), checking that its public members
// match the private scalar. Errors never include key material.
func ParsePrivateJWK(data []byte) (kid string, key crypto.Signer, err error) {
	if len(data) > maxJWKSSize {
		return "", nil, ErrTooLarge
	}
	m, err := decodeObject(data)
	if err != nil {
		return "", nil, err
	}
	for name := range m {
		if !privateJWKMember(name) {
			return "", nil, fmt.Errorf("%w: JWK member %q", ErrUnsupported, safeName(name))
		}
	}
	if kid, _, err = stringMember(m, "kid"); err != nil {
		return "", nil, err
	}
	if !validID(kid) {
		return "", nil, fmt.Errorf("%w: JWK kid missing or invalid", ErrMalformed)
	}
	for _, name := range []string{"x", "y", "d"} {
		v, present, err := stringMember(m, name)
		if err != nil {
			return "", nil, err
		}
		if present {
			if _, err := decodeB64([]byte(v)); err != nil {
				return "", nil, fmt.Errorf("%w: JWK %s", ErrMalformed, name)
			}
		}
	}
	key, err = jwxParsePrivate(data)
	if err != nil {
		return "", nil, err
	}
	alg, err := signAlg(key.Public())
	if err != nil {
		return "", nil, err
	}
	if a, present, _ := stringMember(m, "alg"); present && a != string(alg) {
		return "", nil, fmt.Errorf("%w: JWK alg does not fit key", ErrUnsupported)
	}
	// The public half in the file must be the one the private scalar gives:
	// a file edited to pair someone else's public key with ours is refused.
	pubOnly := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		if k != "d" {
			pubOnly[k] = v
		}
	}
	pubData, err := json.Marshal(pubOnly)
	if err != nil {
		return "", nil, fmt.Errorf("%w: JWK", ErrMalformed)
	}
	declared, err := jwxParsePublic(pubData)
	if err != nil {
		return "", nil, err
	}
	eq, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(declared) {
		return "", nil, fmt.Errorf("%w: JWK public members do not match the private key", ErrMalformed)
	}
	return kid, key, nil
}

// jwxRaw is the one place a JWK goes through jwx to a raw Go key. jwx's
// error text is dropped, and a panic inside the third-party parser becomes
// ErrMalformed rather than a crash.
func jwxRaw(raw []byte) (v any, err error) {
	defer func() {
		if recover() != nil {
			v, err = nil, fmt.Errorf("%w: JWK", ErrMalformed)
		}
	}()
	jk, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: JWK", ErrMalformed)
	}
	if err := jk.Raw(&v); err != nil {
		return nil, fmt.Errorf("%w: JWK", ErrMalformed)
	}
	return v, nil
}

func jwxParsePrivate(raw []byte) (crypto.Signer, error) {
	v, err := jwxRaw(raw)
	if err != nil {
		return nil, err
	}
	switch k := v.(type) {
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("%w: Ed25519 key size", ErrMalformed)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if _, err := k.ECDH(); err != nil {
			return nil, fmt.Errorf("%w: EC key", ErrMalformed)
		}
		return k, nil
	case ecdsa.PrivateKey:
		return &k, nil
	default:
		return nil, fmt.Errorf("%w: JWK is not a private signing key", ErrUnsupported)
	}
}
