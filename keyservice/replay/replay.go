// Package replay remembers the jti (unique id) of each signed request until
// the request expires, so a captured request cannot be played again
// (Contract 2, docs/contracts.md). Redis shares the memory across key-service replicas;
// Memory serves a single process.
//
// Both fail closed: when a jti cannot be recorded the error is returned and
// the verifier must refuse the request, never treat it as fresh.
package replay

import (
	"errors"
	"fmt"
)

// ErrUnavailable wraps a store failure (Redis down).
var ErrUnavailable = errors.New("replay: store unavailable")

// ErrFull is returned by Memory when it holds its maximum of unexpired jtis:
// forgetting one early would let its request be replayed.
var ErrFull = errors.New("replay: cache full")

// ErrInvalidJTI is returned for an empty or oversized jti.
var ErrInvalidJTI = errors.New("replay: invalid jti")

// MaxJTILen caps a jti (a client's is 22 base64url characters of 128 random
// bits); longer ones are refused so a caller cannot bloat the cache.
const MaxJTILen = 128

func checkJTI(jti string) error {
	if jti == "" || len(jti) > MaxJTILen {
		// The jti is not echoed: errors reach logs.
		return fmt.Errorf("%w: length %d, want 1-%d", ErrInvalidJTI, len(jti), MaxJTILen)
	}
	return nil
}
