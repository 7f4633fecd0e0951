// Package jose is the project's only door to JOSE (JWE, JWS, JWK): it wraps
// github.com/lestrrat-go/jwx/v2 behind a deliberately small API and hardens it.
//
// Every input is pre-parsed here, strictly, before jwx sees it: compact
// serialization only, a size cap, canonical unpadded base64url, a header object
// with no duplicate members, an allow-list of header members and algorithms,
// and no "zip", "crit", "b64", "jku", "jwk", "x5u", "x5c" or "x5t". The
// algorithm handed to jwx is always derived from the key, never taken from the
// header alone, and the header must agree with it.
//
// One check does not go through jwx: an EdDSA request signature is verified
// with github.com/oasisprotocol/curve25519-voi (ed25519.go, the one file that
// imports it), by crypto/ed25519.Verify's rules exactly. jwx's EdDSA verifier
// is a thin wrapper over crypto/ed25519, which decodes the key on every call;
// a key expanded once (NewVerifyKey) takes about a third off the check that
// every signed key-service request pays. ES256 signatures stay with jwx.
//
// Errors are sentinels wrapped with %w. They name the rule that failed, never
// the payload, a key or a signature. Every cryptographic failure while
// decrypting collapses to ErrDecrypt so that a caller cannot be used as a
// padding or key-agreement oracle.
package jose

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/blindgate/blindgate/internal/jose/compact"
	"github.com/blindgate/blindgate/internal/jsonscan"
)

// Algorithms of Contract 1 (card ciphertexts) and Contract 2 (signed requests).
const (
	AlgRSAOAEP256 = "RSA-OAEP-256"   // RSA >= 3072 bits
	AlgECDHES     = "ECDH-ES+A256KW" // P-256 or P-384
	EncA256GCM    = "A256GCM"

	AlgEdDSA = "EdDSA" // Ed25519 request signatures
	AlgES256 = "ES256" // P-256 request signatures

	// HeaderSessionID is the protected-header member binding a card
	// ciphertext to its checkout session (the header is the AAD).
	HeaderSessionID = "bg_sid"

	// TypeRequest is the JWS "typ" of a signed key-service request; it is
	// required so a JWS minted for another purpose cannot be replayed here.
	TypeRequest = "bg-req+jwt"

	// MaxCompactSize caps a compact JWE or JWS before any parsing. It is
	// compact.MaxSize, the one cap every entry point applies.
	MaxCompactSize = compact.MaxSize

	// MinRSABits is the smallest RSA modulus accepted for key encryption.
	MinRSABits = 3072

	// maxIDLen bounds kid and bg_sid, which end up in logs and audit lines.
	maxIDLen = 128
	// maxJWKSSize caps a JWKS or single JWK document.
	maxJWKSSize = 64 << 10
)

// Sentinel errors. Callers map them with errors.Is.
var (
	// ErrMalformed: not a well-formed compact object, header or JWK. It is
	// compact.ErrMalformed, so the shape check and the parse agree.
	ErrMalformed = compact.ErrMalformed
	// ErrUnsupported: well-formed but outside what we accept (algorithm,
	// header member, key type or size, serialization).
	ErrUnsupported = errors.New("jose: unsupported")
	// ErrTooLarge: input above MaxCompactSize (or the JWKS cap); compact.ErrTooLarge.
	ErrTooLarge = compact.ErrTooLarge
	// ErrDecrypt: the ciphertext could not be decrypted with this key. It is
	// deliberately uninformative.
	ErrDecrypt = errors.New("jose: decryption failed")
	// ErrSignature: the JWS signature did not verify with the key found for
	// its kid, or the header algorithm does not fit that key.
	ErrSignature = errors.New("jose: signature invalid")
)

// decodeB64 decodes canonical unpadded base64url: the Strict encoding also
// refuses non-zero trailing bits, so one value has exactly one spelling and
// our view of a part cannot differ from jwx's.
func decodeB64(s []byte) ([]byte, error) {
	if !compact.IsBase64URL(s) {
		return nil, fmt.Errorf("%w: base64url alphabet", ErrMalformed)
	}
	enc := base64.RawURLEncoding.Strict()
	out := make([]byte, enc.DecodedLen(len(s)))
	n, err := enc.Decode(out, s)
	if err != nil {
		return nil, fmt.Errorf("%w: base64url", ErrMalformed)
	}
	return out[:n], nil
}

// checkB64 is decodeB64 without the decoding, for the parts whose bytes
// are not needed (only their length): canonical unpadded base64url. It
// returns the decoded length. The rule is Strict decoding's: the alphabet,
// no length of 1 mod 4, and zero bits where the last character holds more
// bits than the data.
func checkB64(s []byte) (int, error) {
	if !compact.IsBase64URL(s) {
		return 0, fmt.Errorf("%w: base64url alphabet", ErrMalformed)
	}
	n := len(s)
	if n == 0 {
		return 0, nil
	}
	v := compact.Base64URLValue(s[n-1])
	switch n % 4 {
	case 1:
		return 0, fmt.Errorf("%w: base64url", ErrMalformed)
	case 2: // one byte: 12 bits, the last 4 unused
		if v&0x0f != 0 {
			return 0, fmt.Errorf("%w: base64url", ErrMalformed)
		}
	case 3: // two bytes: 18 bits, the last 2 unused
		if v&0x03 != 0 {
			return 0, fmt.Errorf("%w: base64url", ErrMalformed)
		}
	}
	return n/4*3 + max(n%4-1, 0), nil
}

// splitCompact checks the size cap and splits into exactly n non-nil parts.
func splitCompact(compact []byte, n int) ([][]byte, error) {
	if len(compact) > MaxCompactSize {
		return nil, ErrTooLarge
	}
	if len(compact) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if compact[0] == '{' {
		// JSON serialization can carry unprotected headers and several
		// recipients; Contract 1 and 2 are compact only.
		return nil, fmt.Errorf("%w: JSON serialization", ErrUnsupported)
	}
	parts := bytes.Split(compact, []byte{'.'})
	if len(parts) != n {
		return nil, fmt.Errorf("%w: want %d compact parts, got %d", ErrMalformed, n, len(parts))
	}
	return parts, nil
}

// decodeObject decodes one JSON object into its members, refusing duplicate
// names (a classic parser-differential trick), invalid UTF-8, and trailing data.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: header is not UTF-8", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	out := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: JSON", ErrMalformed)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%w: JSON", ErrMalformed)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: duplicate member %q", ErrMalformed, safeName(name))
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: JSON", ErrMalformed)
		}
		out[name] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, fmt.Errorf("%w: JSON", ErrMalformed)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after JSON", ErrMalformed)
	}
	return out, nil
}

// decodeHeader is decodeObject for the JOSE headers on every request's
// path (the card JWE, its epk, the request JWS): the same reading, in one
// pass when the header is simple (internal/jsonscan: what our signer and
// the checkout page write), and by decodeObject otherwise. The values
// alias data.
func decodeHeader(data []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: header is not UTF-8", ErrMalformed)
	}
	var buf [12]jsonscan.Member
	members, ok := jsonscan.Object(data, buf[:0])
	if !ok {
		return decodeObject(data)
	}
	out := make(map[string]json.RawMessage, len(members))
	for _, m := range members {
		if _, dup := out[string(m.Name)]; dup {
			return nil, fmt.Errorf("%w: duplicate member %q", ErrMalformed, safeName(string(m.Name)))
		}
		out[string(m.Name)] = m.Value
	}
	return out, nil
}

// safeName keeps attacker-chosen member names short and printable in errors.
func safeName(s string) string {
	const max = 32
	b := make([]byte, 0, max)
	for i := 0; i < len(s) && len(b) < max; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b = append(b, c)
	}
	return string(b)
}

// stringMember decodes a JSON string member; present reports whether it exists.
func stringMember(m map[string]json.RawMessage, name string) (v string, present bool, err error) {
	raw, ok := m[name]
	if !ok {
		return "", false, nil
	}
	if v, ok := jsonscan.String(raw); ok {
		return v, true, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", true, fmt.Errorf("%w: %q is not a string", ErrMalformed, name)
	}
	return v, true, nil
}

// validID accepts the identifiers we put in kid and bg_sid: short, printable,
// and free of characters that would need escaping in logs or JSON.
func validID(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '~', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return true
}
