package ratelimit

import (
	"context"
	"errors"
	"time"
)

// ErrRefused is what every *Refused matches with errors.Is.
var ErrRefused = errors.New("ratelimit: limit reached")

// Refused is a request a limit turned away: which limit, and when to retry
// (the caller's Retry-After). It is the one refusal type of every limited
// operation, so an HTTP layer maps it once with errors.As.
type Refused struct {
	Limit      string
	RetryAfter time.Duration
	// also is the caller's own sentinel (Gate.Limited), so a domain keeps
	// its errors.Is contract while the type stays shared.
	also error
}

func (e *Refused) Error() string { return "ratelimit: limit " + e.Limit + " reached" }

// Unwrap gives ErrRefused and, if set, the caller's sentinel.
func (e *Refused) Unwrap() []error {
	if e.also == nil {
		return []error{ErrRefused}
	}
	return []error{ErrRefused, e.also}
}

// Gate turns a Limiter's answers into errors: nil when allowed, a *Refused
// when not, and a failure wrapping ErrUnavailable otherwise, which the
// caller must treat as a refusal (fail closed).
type Gate struct {
	Limiter Limiter
	// Limited, if set, is also matched by a *Refused from this gate.
	Limited error
	// Unavailable, if set, is also wrapped into limiter failures: the
	// caller's "dependency unavailable" sentinel.
	Unavailable error
}

// Check counts one event for key under l; see Gate.
func Check(ctx context.Context, lr Limiter, l Limit, key string) error {
	return Gate{Limiter: lr}.Check(ctx, l, key)
}

// Check counts one event for key under l.
func (g Gate) Check(ctx context.Context, l Limit, key string) error {
	_, err := g.Take(ctx, l, key)
	return err
}

// Take is Check that also returns the Result, for callers that watch
// Remaining (alarms before a limit runs out).
func (g Gate) Take(ctx context.Context, l Limit, key string) (Result, error) {
	r, err := g.Limiter.Allow(ctx, key, l)
	if err != nil {
		return r, g.Failed(err)
	}
	if !r.Allowed {
		return r, &Refused{Limit: l.Name, RetryAfter: r.RetryAfter, also: g.Limited}
	}
	return r, nil
}
