package webhooks

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/tokens"
)

// countingStore counts the endpoint list reads and can fail them.
type countingStore struct {
	Store
	reads atomic.Int64
	fail  atomic.Bool
}

func (s *countingStore) Endpoints(ctx context.Context, merchant string) ([]Endpoint, error) {
	s.reads.Add(1)
	if s.fail.Load() {
		return nil, errors.New("store down")
	}
	return s.Store.Endpoints(ctx, merchant)
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestEndpointChangesReachEveryGateway: two gateways share a store. The
// one an endpoint is added or deleted through queues its next event by
// the change; the other by DefaultEndpointCache after the change at the
// latest, and within that bound it reads the store once, not per event.
func TestEndpointChangesReachEveryGateway(t *testing.T) {
	ctx := context.Background()
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
			cfg := Config{AllowLoopback: true, Now: clock.Now}
			storeA, storeB := &countingStore{Store: newStore(t)}, &countingStore{}
			storeB.Store = storeA.Store
			a, b := New(storeA, cfg), New(storeB, cfg)
			queued := func(gw *Service) int {
				t.Helper()
				before, err := a.Deliveries(ctx, "m_a", MaxLogLimit)
				if err != nil {
					t.Fatal(err)
				}
				gw.TokenCreated(ctx, tokens.Token{ID: "tok_1", MerchantID: "m_a"})
				after, err := a.Deliveries(ctx, "m_a", MaxLogLimit)
				if err != nil {
					t.Fatal(err)
				}
				return len(after) - len(before)
			}

			for _, gw := range []*Service{a, b} {
				if n := queued(gw); n != 0 {
					t.Fatalf("no endpoint yet, %d deliveries queued", n)
				}
			}
			ep, err := a.CreateEndpoint(ctx, "m_a", "http://127.0.0.1:1/h")
			if err != nil {
				t.Fatal(err)
			}
			if n := queued(a); n != 1 {
				t.Fatalf("the gateway that added the endpoint queued %d deliveries, want 1 at once", n)
			}
			clock.Add(DefaultEndpointCache / 2)
			queued(b) // within the bound: either view is allowed
			if r := storeB.reads.Load(); r != 1 {
				t.Fatalf("the other gateway read the endpoints %d times for two events within %v, want 1", r, DefaultEndpointCache)
			}
			clock.Add(DefaultEndpointCache / 2)
			if n := queued(b); n != 1 {
				t.Fatalf("the other gateway, %v after the change, queued %d deliveries, want 1", DefaultEndpointCache, n)
			}

			if err := a.DeleteEndpoint(ctx, "m_a", ep.ID); err != nil {
				t.Fatal(err)
			}
			if n := queued(a); n != 0 {
				t.Fatalf("the gateway that deleted the endpoint queued %d deliveries to it", n)
			}
			clock.Add(DefaultEndpointCache)
			if n := queued(b); n != 0 {
				t.Fatalf("the other gateway, %v after the delete, queued %d deliveries to it", DefaultEndpointCache, n)
			}
		})
	}
}

// TestEndpointCacheKeepsNoFailureNorStaleRead: a failed read is not kept
// (the next event reads again), a read that began before a change made
// through the same gateway is not kept, and a negative EndpointCache
// reads for every event.
func TestEndpointCacheKeepsNoFailureNorStaleRead(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}

	t.Run("failure-not-kept", func(t *testing.T) {
		st := &countingStore{Store: newBoltStore(t)}
		svc := New(st, Config{AllowLoopback: true, Now: clock.Now})
		st.fail.Store(true)
		if err := svc.Emit(ctx, "m_a", EventTokenCreated, nil); err == nil {
			t.Fatal("a failed endpoint read was not reported")
		}
		st.fail.Store(false)
		if err := svc.Emit(ctx, "m_a", EventTokenCreated, nil); err != nil || st.reads.Load() != 2 {
			t.Fatalf("after a failed read: %v, %d reads, want a new read", err, st.reads.Load())
		}
	})

	t.Run("read-before-change-not-kept", func(t *testing.T) {
		c := newEndpointCache(time.Minute, clock.Now)
		_, _, ticket := c.get("m_a")
		c.forget("m_a") // a change lands while that read is in flight
		c.put("m_a", nil, ticket)
		if _, ok, _ := c.get("m_a"); ok {
			t.Fatal("a read that began before a change was kept")
		}
		_, _, ticket = c.get("m_a")
		c.put("m_a", []string{"we_1"}, ticket)
		if ids, ok, _ := c.get("m_a"); !ok || len(ids) != 1 {
			t.Fatalf("a read after the change was not kept: %v %v", ids, ok)
		}
	})

	t.Run("bounded-size", func(t *testing.T) {
		c := newEndpointCache(time.Minute, clock.Now)
		for i := range maxCachedMerchants + 10 {
			_, _, ticket := c.get(string(rune(i)))
			c.put(string(rune(i)), nil, ticket)
		}
		if n := len(c.entries); n > maxCachedMerchants {
			t.Fatalf("%d merchants cached, bound %d", n, maxCachedMerchants)
		}
	})

	t.Run("negative-reads-every-time", func(t *testing.T) {
		st := &countingStore{Store: newBoltStore(t)}
		svc := New(st, Config{AllowLoopback: true, Now: clock.Now, EndpointCache: -1})
		for range 3 {
			if err := svc.Emit(ctx, "m_a", EventTokenCreated, nil); err != nil {
				t.Fatal(err)
			}
		}
		if r := st.reads.Load(); r != 3 {
			t.Fatalf("%d reads for 3 events without a cache", r)
		}
	})
}
