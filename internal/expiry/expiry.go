// Package expiry holds keys until a deadline and forgets them soonest first:
// the bookkeeping behind the in-process limiter and replay cache, which must
// drop dead state in O(log n) per key without scanning the table.
//
// A Set is not safe for concurrent use; its owner holds its own lock.
package expiry

import (
	"container/heap"
	"time"
)

// Set maps keys to the time they expire, with a min-heap on that time.
type Set[K comparable] struct {
	items map[K]*item[K]
	heap  byUntil[K]
}

type item[K comparable] struct {
	key   K
	until time.Time
	idx   int
}

// New returns an empty Set.
func New[K comparable]() *Set[K] {
	return &Set[K]{items: make(map[K]*item[K])}
}

// Until returns when k expires, and whether k is held. A key past its time
// is still held until the next Expire.
func (s *Set[K]) Until(k K) (time.Time, bool) {
	it, ok := s.items[k]
	if !ok {
		return time.Time{}, false
	}
	return it.until, true
}

// Hold keeps k until until, adding it or moving its deadline (either way).
func (s *Set[K]) Hold(k K, until time.Time) {
	if it, ok := s.items[k]; ok {
		it.until = until
		heap.Fix(&s.heap, it.idx)
		return
	}
	it := &item[K]{key: k, until: until}
	s.items[k] = it
	heap.Push(&s.heap, it)
}

// Expire forgets every key whose time is not after now: amortised O(log n)
// per key, since each is pushed once and popped once.
func (s *Set[K]) Expire(now time.Time) {
	for len(s.heap) > 0 && !s.heap[0].until.After(now) {
		it := heap.Pop(&s.heap).(*item[K])
		delete(s.items, it.key)
	}
}

// Len returns how many keys are held.
func (s *Set[K]) Len() int { return len(s.items) }

type byUntil[K comparable] []*item[K]

func (h byUntil[K]) Len() int           { return len(h) }
func (h byUntil[K]) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h byUntil[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}

func (h *byUntil[K]) Push(x any) {
	it := x.(*item[K])
	it.idx = len(*h)
	*h = append(*h, it)
}

func (h *byUntil[K]) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}
