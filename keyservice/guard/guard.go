// Package guard counts, per bucket, the distinct members seen over a sliding
// window. The key service uses it as its card-enumeration guard: a bucket is
// a keyed hash of (merchant, first 6, last 4) and a member a keyed hash of the
// fingerprint, so a caller that loops over candidate middle digits for a
// known card makes one bucket fill with distinct members, which real traffic
// almost never does (docs/enumeration-guard.md has the arithmetic).
//
// Two implementations share the semantics: Redis (one sorted set per bucket,
// members scored by time, updated by one Lua script, so replicas agree) and
// Memory, for a single process (-redis memory). Both fail closed: a store
// error wraps ErrUnavailable and the caller refuses. Neither ever sees card
// data: buckets and members are opaque tags made by the caller.
package guard

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrUnavailable wraps every store failure; the caller must refuse.
var ErrUnavailable = errors.New("guard: store unavailable")

// Window is one counting policy.
type Window struct {
	// Period is how long a member counts after it was last seen.
	Period time.Duration
	// Keep bounds the members stored per bucket. Once a bucket holds Keep
	// members new ones are counted but not stored, so a flood of candidates
	// cannot grow it; it must exceed any refusal threshold.
	Keep int
}

func (w Window) validate() error {
	if w.Period < time.Second || w.Keep < 1 {
		return fmt.Errorf("%w: invalid window (period %s, keep %d)", ErrUnavailable, w.Period, w.Keep)
	}
	return nil
}

// Counter records member in bucket and returns how many distinct members the
// bucket holds within the window, this one included.
type Counter interface {
	Observe(ctx context.Context, bucket, member string, w Window) (int, error)
}
