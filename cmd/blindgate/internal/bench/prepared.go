package bench

import (
	"context"
	"sync"
	"sync/atomic"
)

// prepared holds the requests a driver makes ahead of each window, taken
// in order by its workers; a request the window outruns is made inline
// and counted (the report's "inline").
type prepared[T any] struct {
	mu      sync.Mutex
	items   []T
	next    atomic.Int64
	inlined atomic.Int64
}

// refill drops what the last window consumed and what keep refuses of
// the rest (nil keeps all), then makes up to n items with newItem on
// workers goroutines.
func (p *prepared[T]) refill(ctx context.Context, n, workers int, keep func(T) bool, newItem func(context.Context) (T, error)) error {
	p.inlined.Store(0)
	p.mu.Lock()
	used := min(int(p.next.Load()), len(p.items))
	kept := p.items[:0:0]
	for _, it := range p.items[used:] {
		if keep == nil || keep(it) {
			kept = append(kept, it)
		}
	}
	p.items = kept
	p.next.Store(0)
	need := n - len(p.items)
	p.mu.Unlock()
	if need <= 0 {
		return nil
	}
	made, err := makeItems(ctx, need, workers, newItem)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.items = append(p.items, made...)
	p.mu.Unlock()
	return ctx.Err()
}

// take returns the next prepared item, or one newItem makes inline.
func (p *prepared[T]) take(ctx context.Context, newItem func(context.Context) (T, error)) (T, error) {
	i := p.next.Add(1) - 1
	p.mu.Lock()
	ok := i < int64(len(p.items))
	var it T
	if ok {
		it = p.items[i]
	}
	p.mu.Unlock()
	if ok {
		return it, nil
	}
	p.inlined.Add(1)
	return newItem(ctx)
}

func (p *prepared[T]) inline() int64 { return p.inlined.Load() }
