package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/testenv"
)

// env is a limiter under test and a way to let time pass for it. Memory's
// clock is injected. Redis's script reads the server's clock, so advance
// moves every stored state that much into the past, which is what GCRA
// sees when that much time has passed: its arithmetic is all differences
// between the stored arrival time and now. No test waits on a wall clock.
type env struct {
	l       Limiter
	advance func(t *testing.T, d time.Duration)
}

// impls returns both limiters; the Redis one skips (fails under CI) without a server.
func impls() []struct {
	name string
	new  func(t testing.TB) env
} {
	return []struct {
		name string
		new  func(t testing.TB) env
	}{
		{"memory", func(testing.TB) env {
			clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			return env{NewMemoryWith(MemoryOptions{Now: clk.Now}), func(_ *testing.T, d time.Duration) { clk.Advance(d) }}
		}},
		{"redis", func(t testing.TB) env {
			rdb := testenv.Redis(t)
			return env{NewRedis(rdb, "bg:test:rl:"), func(t *testing.T, d time.Duration) { ageStates(t, rdb, d) }}
		}},
	}
}

// ageStates moves redis_rate's stored states (the theoretical arrival time,
// in seconds, under "rate:" keys with a TTL) d into the past, deleting
// those whose TTL d outlasts.
func ageStates(t *testing.T, rdb *redis.Client, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "rate:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no limiter state to age (%v): the test would prove nothing", err)
	}
	for _, k := range keys {
		tat, err := rdb.Get(ctx, k).Float64()
		if err != nil {
			t.Fatalf("state %s: %v", k, err)
		}
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= d {
			err = rdb.Del(ctx, k).Err()
		} else {
			err = rdb.Set(ctx, k, strconv.FormatFloat(tat-d.Seconds(), 'f', -1, 64), ttl-d).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func mustAllow(t *testing.T, l Limiter, key string, lim Limit) Result {
	t.Helper()
	r, err := l.Allow(context.Background(), key, lim)
	if err != nil {
		t.Fatalf("Allow(%s, %s): %v", lim.Name, key, err)
	}
	return r
}

func TestLimiterContract(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, e env)
	}{
		{"allowed/burst-then-denied", func(t *testing.T, e env) {
			l := e.l
			lim := Limit{Name: "burst", Rate: 3, Period: time.Hour, Burst: 3}
			for i, wantRemaining := range []int{2, 1, 0} {
				r := mustAllow(t, l, "actor-1", lim)
				if !r.Allowed || r.Remaining != wantRemaining || r.RetryAfter != 0 {
					t.Fatalf("event %d: %+v, want allowed with %d remaining", i+1, r, wantRemaining)
				}
			}
			r := mustAllow(t, l, "actor-1", lim)
			// One event costs Period/Rate = 20 min.
			if r.Allowed || r.Remaining != 0 || r.RetryAfter <= 0 || r.RetryAfter > 20*time.Minute {
				t.Fatalf("4th event: %+v, want denied with 0 < RetryAfter <= 20m", r)
			}
		}},
		{"independent/keys", func(t *testing.T, e env) {
			l := e.l
			lim := Limit{Name: "keys", Rate: 1, Period: time.Hour, Burst: 1}
			mustAllow(t, l, "a", lim)
			if r := mustAllow(t, l, "a", lim); r.Allowed {
				t.Fatal("key a allowed past its burst")
			}
			if r := mustAllow(t, l, "b", lim); !r.Allowed {
				t.Fatal("key b denied because of key a")
			}
		}},
		{"independent/names", func(t *testing.T, e env) {
			l := e.l
			minute := Limit{Name: "reveal-minute", Rate: 1, Period: time.Hour, Burst: 1}
			day := Limit{Name: "reveal-day", Rate: 1, Period: time.Hour, Burst: 1}
			mustAllow(t, l, "op_1", minute)
			if r := mustAllow(t, l, "op_1", minute); r.Allowed {
				t.Fatal("allowed past burst")
			}
			if r := mustAllow(t, l, "op_1", day); !r.Allowed {
				t.Fatal("limit reveal-day denied because of reveal-minute")
			}
		}},
		{"allowed/refills-after-retry-after", func(t *testing.T, e env) {
			l := e.l
			lim := Limit{Name: "refill", Rate: 10, Period: time.Hour, Burst: 1} // 6 min per event
			mustAllow(t, l, "k", lim)
			r := mustAllow(t, l, "k", lim)
			if r.Allowed || r.RetryAfter <= 0 || r.RetryAfter > 6*time.Minute {
				t.Fatalf("second event: %+v, want denied with 0 < RetryAfter <= 6m", r)
			}
			e.advance(t, r.RetryAfter-10*time.Second)
			if r := mustAllow(t, l, "k", lim); r.Allowed {
				t.Fatalf("allowed 10 s before RetryAfter: %+v", r)
			}
			e.advance(t, 10*time.Second)
			if r := mustAllow(t, l, "k", lim); !r.Allowed {
				t.Fatalf("not refilled after RetryAfter: %+v", r)
			}
		}},
		{"allowed/denials-not-counted", func(t *testing.T, e env) {
			l := e.l
			lim := Limit{Name: "denials", Rate: 5, Period: time.Hour, Burst: 1} // 12 min per event
			mustAllow(t, l, "k", lim)
			for range 5 {
				if r := mustAllow(t, l, "k", lim); r.Allowed {
					t.Fatal("allowed past burst")
				}
			}
			// One event's cost later: counted denials would have pushed the
			// next allowed event an hour further.
			e.advance(t, 12*time.Minute)
			if r := mustAllow(t, l, "k", lim); !r.Allowed {
				t.Fatalf("denied events pushed the limit back: %+v", r)
			}
		}},
		{"exact/concurrent-burst", func(t *testing.T, e env) {
			l := e.l
			lim := Limit{Name: "concurrent", Rate: 1, Period: time.Hour, Burst: 25}
			var allowed atomic.Int32
			var wg sync.WaitGroup
			for range 60 {
				wg.Go(func() {
					r, err := l.Allow(context.Background(), "k", lim)
					if err != nil {
						t.Error(err)
					} else if r.Allowed {
						allowed.Add(1)
					}
				})
			}
			wg.Wait()
			if allowed.Load() != 25 {
				t.Fatalf("%d of 60 concurrent events allowed, want exactly the burst of 25", allowed.Load())
			}
		}},
		{"invalid/limits", func(t *testing.T, e env) {
			l := e.l
			for _, lim := range []Limit{
				{Name: "", Rate: 1, Period: time.Second, Burst: 1},
				{Name: "a:b", Rate: 1, Period: time.Second, Burst: 1},
				{Name: "x", Rate: 0, Period: time.Second, Burst: 1},
				{Name: "x", Rate: 1, Period: 0, Burst: 1},
				{Name: "x", Rate: 1, Period: time.Second, Burst: 0},
				{Name: "x", Rate: 1, Period: time.Hour * 24 * 365 * 100, Burst: 1 << 30},
			} {
				if _, err := l.Allow(context.Background(), "k", lim); !errors.Is(err, ErrInvalidLimit) {
					t.Errorf("Allow(%+v) = %v, want ErrInvalidLimit", lim, err)
				}
			}
		}},
	}
	for _, impl := range impls() {
		for _, tt := range tests {
			t.Run(impl.name+"/"+tt.name, func(t *testing.T) {
				tt.run(t, impl.new(t))
			})
		}
	}
}

func TestRedisDownIsUnavailable(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{
		Addr:        fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), // nothing listens there
		MaxRetries:  -1,
		DialTimeout: 500 * time.Millisecond,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	l := NewRedis(rdb, "bg:test:rl:")
	r, err := l.Allow(context.Background(), "k", Limit{Name: "down", Rate: 1, Period: time.Second, Burst: 1})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Allow with Redis down = %v, want ErrUnavailable", err)
	}
	if r.Allowed {
		t.Fatal("Allow with Redis down reported allowed")
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMemoryBounded(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := NewMemoryWith(MemoryOptions{MaxKeys: 3, Now: clk.Now})
	lim := Limit{Name: "bounded", Rate: 1, Period: time.Second, Burst: 2}
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		if _, err := m.Allow(ctx, k, lim); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("unavailable/full-of-live-keys", func(t *testing.T) {
		if _, err := m.Allow(ctx, "d", lim); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("new key in a full table = %v, want ErrUnavailable", err)
		}
		// Live keys keep working: no state was forgotten.
		if r, err := m.Allow(ctx, "a", lim); err != nil || !r.Allowed {
			t.Fatalf("existing key: %+v %v", r, err)
		}
		if r, _ := m.Allow(ctx, "a", lim); r.Allowed {
			t.Fatal("key a allowed past burst: its state was lost")
		}
	})
	t.Run("evicted/fresh-keys-purged", func(t *testing.T) {
		clk.Advance(3 * time.Second) // every TAT is now in the past
		if r, err := m.Allow(ctx, "d", lim); err != nil || !r.Allowed {
			t.Fatalf("after expiry: %+v %v", r, err)
		}
		if n := m.Len(); n != 1 {
			t.Fatalf("%d states held, want only d", n)
		}
	})
}

func BenchmarkAllow(b *testing.B) {
	for _, impl := range impls() {
		b.Run(impl.name, func(b *testing.B) {
			l := impl.new(b).l
			lim := Limit{Name: "bench", Rate: 1_000_000, Period: time.Second, Burst: 1000}
			var n atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				key := fmt.Sprintf("client-%d", n.Add(1))
				for pb.Next() {
					if _, err := l.Allow(context.Background(), key, lim); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "allows/s")
		})
	}
}
