package guard

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is an in-process Counter with the Redis semantics, for one instance
// (the demo, tests). It is safe for concurrent use.
type Memory struct {
	mu      sync.Mutex
	now     func() time.Time
	maxKeys int
	buckets map[string]map[string]time.Time // bucket -> member -> last seen
}

var _ Counter = (*Memory)(nil)

// NewMemory returns a Memory counter. now may be nil (time.Now); maxKeys
// bounds the buckets held (default 100000): when full of live buckets, a new
// bucket fails closed rather than evicting a live one, which would reset an
// enumeration in progress.
func NewMemory(now func() time.Time, maxKeys int) *Memory {
	if now == nil {
		now = time.Now
	}
	if maxKeys <= 0 {
		maxKeys = 100_000
	}
	return &Memory{now: now, maxKeys: maxKeys, buckets: map[string]map[string]time.Time{}}
}

// Observe implements Counter.
func (m *Memory) Observe(_ context.Context, bucket, member string, w Window) (int, error) {
	if err := w.validate(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	cut := now.Add(-w.Period)
	b := m.buckets[bucket]
	if b == nil {
		if len(m.buckets) >= m.maxKeys {
			m.sweep(cut)
		}
		if len(m.buckets) >= m.maxKeys {
			return 0, fmt.Errorf("%w: in-memory guard holds %d live buckets", ErrUnavailable, m.maxKeys)
		}
		b = map[string]time.Time{}
		m.buckets[bucket] = b
	}
	for k, seen := range b {
		if !seen.After(cut) {
			delete(b, k)
		}
	}
	n := len(b)
	if _, ok := b[member]; !ok {
		n++
	}
	if n <= w.Keep {
		b[member] = now
	}
	return n, nil
}

// sweep drops buckets with no live member; called only when the table is full.
func (m *Memory) sweep(cut time.Time) {
	for k, b := range m.buckets {
		live := false
		for _, seen := range b {
			if seen.After(cut) {
				live = true
				break
			}
		}
		if !live {
			delete(m.buckets, k)
		}
	}
}
