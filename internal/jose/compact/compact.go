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
		switch c := s[i]; {
		case c == '.':
			dots++
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return fmt.Errorf("%w: not base64url", ErrMalformed)
		}
	}
	if dots != 4 {
		return fmt.Errorf("%w: want 5 compact parts", ErrMalformed)
	}
	return nil
}
