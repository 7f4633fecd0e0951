package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/blindgate/blindgate/internal/expiry"
)

// MemoryOptions tune a Memory limiter.
type MemoryOptions struct {
	// MaxKeys caps how many (limit, key) states are held; default 100000.
	// States that have returned to "fresh" are dropped first; when the
	// table is still full, Allow for a NEW key fails with ErrUnavailable
	// (fail closed) rather than forgetting a live state, which would let a
	// flood of fresh keys reset someone's limit.
	MaxKeys int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Memory is an in-process GCRA Limiter with Redis's semantics, for a single
// instance (the demo, tests). It is safe for concurrent use.
type Memory struct {
	mu      sync.Mutex
	now     func() time.Time
	maxKeys int
	// tats holds GCRA's theoretical arrival time (TAT) per key: once it is
	// not after now the key is indistinguishable from a new one, so it can
	// go; expiry drops it then.
	tats *expiry.Set[memKey]
}

var _ Limiter = (*Memory)(nil)

type memKey struct{ name, key string }

// NewMemory returns a Memory limiter with default options.
func NewMemory() Limiter { return NewMemoryWith(MemoryOptions{}) }

// NewMemoryWith returns a Memory limiter with o.
func NewMemoryWith(o MemoryOptions) *Memory {
	if o.MaxKeys <= 0 {
		o.MaxKeys = 100_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Memory{now: o.Now, maxKeys: o.MaxKeys, tats: expiry.New[memKey]()}
}

// Allow implements Limiter with the same GCRA arithmetic as redis_rate.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Result, error) {
	if err := l.Validate(); err != nil {
		return Result{}, err
	}
	t := l.interval()
	k := memKey{l.Name, key}

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.tats.Expire(now)

	tat, held := m.tats.Until(k)
	if !held {
		tat = now
	}
	newTAT := tat.Add(t)
	allowAt := newTAT.Add(-t * time.Duration(l.Burst))
	diff := now.Sub(allowAt)
	if diff < 0 {
		// Denied events are not counted, as in redis_rate.
		return Result{RetryAfter: max(-diff, time.Nanosecond)}, nil
	}
	if !held && m.tats.Len() >= m.maxKeys {
		return Result{}, fmt.Errorf("%w: %s: in-memory limiter holds %d live keys", ErrUnavailable, l.Name, m.maxKeys)
	}
	m.tats.Hold(k, newTAT)
	return Result{Allowed: true, Remaining: int(diff / t)}, nil
}

// Len returns how many key states are held (fresh ones may linger until the
// next Allow).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tats.Len()
}
