package replay

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"
)

// MemoryOptions tune a Memory cache.
type MemoryOptions struct {
	// MaxEntries caps the unexpired jtis held; default 200000 (at a 60 s
	// maximum request lifetime, over 3000 signed requests per second).
	MaxEntries int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Memory is an in-process replay cache: a map of jti to expiry with a
// min-heap on expiry, purged lazily on each Claim. Safe for concurrent use.
type Memory struct {
	mu      sync.Mutex
	now     func() time.Time
	max     int
	entries map[string]*entry
	byUntil untilHeap
}

type entry struct {
	jti   string
	until time.Time
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
	return &Memory{now: o.Now, max: o.MaxEntries, entries: make(map[string]*entry)}
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
	m.purge(now)
	if _, seen := m.entries[jti]; seen {
		return false, nil
	}
	if len(m.entries) >= m.max {
		return false, fmt.Errorf("%w: %d unexpired jtis", ErrFull, m.max)
	}
	// Like the Redis cache, hold even an already-expired jti for 1 ms.
	e := &entry{jti: jti, until: maxTime(until, now.Add(time.Millisecond))}
	m.entries[jti] = e
	heap.Push(&m.byUntil, e)
	return true, nil
}

// Len returns how many jtis are held (expired ones may linger until the next
// Claim).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// purge drops expired jtis, soonest first; each entry is pushed and popped
// once, so this costs O(log n) per claim amortised.
func (m *Memory) purge(now time.Time) {
	for len(m.byUntil) > 0 && !m.byUntil[0].until.After(now) {
		e := heap.Pop(&m.byUntil).(*entry)
		delete(m.entries, e.jti)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

type untilHeap []*entry

func (h untilHeap) Len() int           { return len(h) }
func (h untilHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h untilHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *untilHeap) Push(x any)        { *h = append(*h, x.(*entry)) }
func (h *untilHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
