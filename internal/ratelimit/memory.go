package ratelimit

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"
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
	states  map[memKey]*state
	byTAT   tatHeap // min-heap on tat: the front state is the first to go fresh
}

var _ Limiter = (*Memory)(nil)

type memKey struct{ name, key string }

// state is GCRA's theoretical arrival time (TAT) for one key; once tat is
// not after now the key is indistinguishable from a new one, so it can go.
type state struct {
	k   memKey
	tat time.Time
	idx int
}

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
	return &Memory{now: o.Now, maxKeys: o.MaxKeys, states: make(map[memKey]*state)}
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
	m.purge(now)

	st := m.states[k]
	tat := now
	if st != nil && st.tat.After(now) {
		tat = st.tat
	}
	newTAT := tat.Add(t)
	allowAt := newTAT.Add(-t * time.Duration(l.Burst))
	diff := now.Sub(allowAt)
	if diff < 0 {
		// Denied events are not counted, as in redis_rate.
		return Result{RetryAfter: max(-diff, time.Nanosecond)}, nil
	}
	if st == nil {
		if len(m.states) >= m.maxKeys {
			return Result{}, fmt.Errorf("%w: %s: in-memory limiter holds %d live keys", ErrUnavailable, l.Name, m.maxKeys)
		}
		st = &state{k: k, tat: newTAT}
		m.states[k] = st
		heap.Push(&m.byTAT, st)
	} else {
		st.tat = newTAT
		heap.Fix(&m.byTAT, st.idx)
	}
	return Result{Allowed: true, Remaining: int(diff / t)}, nil
}

// Len returns how many key states are held (fresh ones may linger until the
// next Allow).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.states)
}

// purge drops every state that is back to fresh: amortised O(log n) per
// state, since each is pushed once and popped once.
func (m *Memory) purge(now time.Time) {
	for len(m.byTAT) > 0 && !m.byTAT[0].tat.After(now) {
		st := heap.Pop(&m.byTAT).(*state)
		delete(m.states, st.k)
	}
}

type tatHeap []*state

func (h tatHeap) Len() int           { return len(h) }
func (h tatHeap) Less(i, j int) bool { return h[i].tat.Before(h[j].tat) }
func (h tatHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *tatHeap) Push(x any) {
	st := x.(*state)
	st.idx = len(*h)
	*h = append(*h, st)
}
func (h *tatHeap) Pop() any {
	old := *h
	st := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return st
}
