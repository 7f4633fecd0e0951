package nonce

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is an in-process Store for the single-instance (embedded, demo)
// mode. Safe for concurrent use.
type Memory struct {
	mu     sync.Mutex
	now    func() time.Time
	max    int
	values map[string]entry
}

type entry struct {
	binding string
	until   time.Time
}

// DefaultMaxEntries caps Memory: issued nonces live minutes; a caller
// asking for more than this many in that time is refused, not allowed to
// grow the process without bound.
const DefaultMaxEntries = 100_000

// NewMemory returns a Memory store; now nil means time.Now, max <= 0 means
// DefaultMaxEntries.
func NewMemory(now func() time.Time, max int) *Memory {
	if now == nil {
		now = time.Now
	}
	if max <= 0 {
		max = DefaultMaxEntries
	}
	return &Memory{now: now, max: max, values: map[string]entry{}}
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, nonce, binding string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if e, ok := m.values[nonce]; ok && now.Before(e.until) {
		return fmt.Errorf("%w: nonce already held", ErrUnavailable)
	}
	if len(m.values) >= m.max {
		// Sweep only when full: O(n) once per max issues at worst.
		for n, e := range m.values {
			if !now.Before(e.until) {
				delete(m.values, n)
			}
		}
		if len(m.values) >= m.max {
			return fmt.Errorf("%w: %d unexpired nonces held", ErrUnavailable, m.max)
		}
	}
	m.values[nonce] = entry{binding: binding, until: now.Add(ttl)}
	return nil
}

// Take implements Store.
func (m *Memory) Take(_ context.Context, nonce string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.values[nonce]
	if !ok {
		return "", ErrUnknown
	}
	delete(m.values, nonce)
	if !m.now().Before(e.until) {
		return "", ErrUnknown
	}
	return e.binding, nil
}

// Len is how many nonces are held (expired ones linger until a sweep).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.values)
}
