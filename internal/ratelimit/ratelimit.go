// Package ratelimit limits how often a key (a client, an actor, an IP) may
// do something, with the Generic Cell Rate Algorithm: Rate events per Period
// on average, up to Burst at once. Two implementations share the semantics:
// Redis (go-redis/redis_rate), shared by every replica, and Memory, for a
// single process.
//
// Both fail closed: a store error is returned wrapping ErrUnavailable, and a
// caller must then refuse the request rather than let it through unlimited.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// ErrUnavailable wraps every store failure (Redis down, memory table full):
// the limiter cannot tell, so the caller must deny.
var ErrUnavailable = errors.New("ratelimit: limiter unavailable")

// ErrInvalidLimit is returned for a Limit that cannot be enforced (a
// configuration bug; callers fail closed on it too).
var ErrInvalidLimit = errors.New("ratelimit: invalid limit")

// Limit is one named policy. Name scopes the keys, so two policies on the
// same key (say "reveal-minute" and "reveal-day" for one actor) count
// independently. Name must not be empty nor contain ':' (the key separator),
// so that no two (name, key) pairs share a store key.
type Limit struct {
	Name   string
	Rate   int           // events allowed per Period, on average
	Period time.Duration // e.g. time.Minute
	Burst  int           // events allowed at once from a fresh state
}

// Validate reports why l cannot be used.
func (l Limit) Validate() error {
	switch {
	case l.Name == "" || strings.Contains(l.Name, ":"):
		return fmt.Errorf("%w: name %q must be non-empty and contain no ':'", ErrInvalidLimit, l.Name)
	case l.Rate <= 0:
		return fmt.Errorf("%w: %s: rate must be positive", ErrInvalidLimit, l.Name)
	case l.Period <= 0:
		return fmt.Errorf("%w: %s: period must be positive", ErrInvalidLimit, l.Name)
	case l.Burst <= 0:
		return fmt.Errorf("%w: %s: burst must be positive", ErrInvalidLimit, l.Name)
	case l.interval() <= 0:
		return fmt.Errorf("%w: %s: rate too high for the period", ErrInvalidLimit, l.Name)
	case int64(l.Burst) > math.MaxInt64/int64(l.interval()):
		return fmt.Errorf("%w: %s: burst times period/rate overflows", ErrInvalidLimit, l.Name)
	}
	return nil
}

// interval is GCRA's emission interval: the time one event "costs".
func (l Limit) interval() time.Duration { return l.Period / time.Duration(l.Rate) }

// Result is the outcome of one Allow.
type Result struct {
	Allowed bool
	// Remaining is how many more events would be allowed right now.
	Remaining int
	// RetryAfter is how long until the next event would be allowed; zero
	// when this one was allowed. Callers send it as Retry-After.
	RetryAfter time.Duration
}

// Limiter counts one event for key under l and says whether it is allowed.
// A denied event is not counted. Errors wrap ErrUnavailable or
// ErrInvalidLimit; on any error the caller must deny.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (Result, error)
}
