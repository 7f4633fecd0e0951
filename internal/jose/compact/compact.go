// Package compact holds the size cap and the shape check of a compact JOSE
// serialization, without any cryptography: the one rule that every entry
// point applies to a card or CVC ciphertext (the gateway's checkout and
// token store, the key service's request types) before the key service's
// strict parse in internal/jose. It imports only the standard library, so
// packages that must not link lestrrat-go/jwx (the gateway's stores) can
// use it; internal/jose takes its cap and sentinels from here.
package compact

import (
	"errors"
	"fmt"
)

// MaxSize caps a compact JWE or JWS before any parsing; a card JWE is
// about 1 KiB.
const MaxSize = 16 << 10

// Sentinel errors, also internal/jose's (the same values).
var (
	// ErrMalformed: not a well-formed compact object.
	ErrMalformed = errors.New("jose: malformed")
	// ErrTooLarge: input above MaxSize.
	ErrTooLarge = errors.New("jose: too large")
)

// CheckJWE is the one shape check of a ciphertext: not empty, at most
// MaxSize bytes, five parts of the unpadded base64url alphabet. It decodes
// nothing; internal/jose's strict parse is the real check and runs on what
// passed this one. Errors never quote the input.
func CheckJWE(s string) error {
	if len(s) > MaxSize {
		return ErrTooLarge
	}
	if s == "" {
		return fmt.Errorf("%w: empty", ErrMalformed)
	}
	dots := 0
	for i := 0; i < len(s); i++ {
		switch b64URL[s[i]] {
		case dot:
			dots++
		case invalid:
			return fmt.Errorf("%w: not base64url", ErrMalformed)
		}
	}
	if dots != 4 {
		return fmt.Errorf("%w: want 5 compact parts", ErrMalformed)
	}
	return nil
}

// b64URL maps a byte to its 6-bit value in the unpadded base64url
// alphabet, '.' to dot and every other byte to invalid. A table, not a
// chain of range tests: every part of every JWE and JWS goes through it,
// on the gateway's checkout (three times: the submission, the key-service
// request, the store) and in the key service's parse, and the comparisons
// cost several µs per ~1 KiB ciphertext.
var b64URL = func() (t [256]byte) {
	for i := range t {
		t[i] = invalid
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for v := range len(alphabet) {
		t[alphabet[v]] = byte(v)
	}
	t['.'] = dot
	return t
}()

const (
	invalid = 0xff
	dot     = 0xfe
)

// IsBase64URL reports whether s uses only the unpadded base64url
// alphabet. encoding/base64 checks the alphabet too but skips CR and LF,
// which would give one value two spellings.
func IsBase64URL(s []byte) bool {
	for _, c := range s {
		if b64URL[c] >= dot {
			return false
		}
	}
	return true
}

// Base64URLValue is the 6-bit value of a base64url character (IsBase64URL
// first).
func Base64URLValue(c byte) byte { return b64URL[c] }
