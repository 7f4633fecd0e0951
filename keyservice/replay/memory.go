package replay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/blindgate/blindgate/internal/expiry"
)

// MemoryOptions tune a Memory cache.
type MemoryOptions struct {
	// MaxEntries caps the unexpired jtis held; default 200000 (at a 60 s
	// maximum request lifetime, over 3000 signed requests per second).
	MaxEntries int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Memory is an in-process replay cache: jtis held until they expire,
// purged lazily on each Claim. Safe for concurrent use.
type Memory struct {
	mu   sync.Mutex
	now  func() time.Time
	max  int
	jtis *expiry.Set[string]
}

// NewMemory returns a Memory cache with default options.
func NewMemory() *Memory { return NewMemoryWith(MemoryOptions{}) }

// NewMemoryWith returns a Memory cache with o.
func NewMemoryWith(o MemoryOptions) *Memory {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 200_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Memory{now: o.Now, max: o.MaxEntries, jtis: expiry.New[string]()}
}

// Claim records jti until until and reports whether it was new. When the
// cache is full of unexpired jtis it returns ErrFull instead of dropping one
// (which would reopen that request to replay).
func (m *Memory) Claim(_ context.Context, jti string, until time.Time) (bool, error) {
	if err := checkJTI(jti); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.jtis.Expire(now)
	if _, seen := m.jtis.Until(jti); seen {
		return false, nil
	}
	if m.jtis.Len() >= m.max {
		return false, fmt.Errorf("%w: %d unexpired jtis", ErrFull, m.max)
	}
	// Like the Redis cache, hold even an already-expired jti for 1 ms.
	m.jtis.Hold(jti, maxTime(until, now.Add(time.Millisecond)))
	return true, nil
}

// Len returns how many jtis are held (expired ones may linger until the next
// Claim).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.jtis.Len()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
