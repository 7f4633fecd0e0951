package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/testenv"
)

// cache is the shape keyservice/sigauth.ReplayCache expects.
type cache interface {
	Claim(ctx context.Context, jti string, until time.Time) (fresh bool, err error)
}

var (
	_ cache = (*Redis)(nil)
	_ cache = (*Memory)(nil)
)

// env is a cache under test and its clock: now is the time the cache goes
// by, and advance moves it on. Memory's clock is injected; Redis expires
// keys by its own clock, so advance does to every key what that much time
// would (a TTL shortened, or the key gone). No test waits on a wall clock.
type env struct {
	c       cache
	now     func() time.Time
	advance func(t *testing.T, d time.Duration)
}

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
			return env{NewMemoryWith(MemoryOptions{Now: clk.Now}), clk.Now, func(_ *testing.T, d time.Duration) { clk.Advance(d) }}
		}},
		{"redis", func(t testing.TB) env {
			rdb := testenv.Redis(t)
			return env{NewRedis(rdb, "bg:test:jti:"), time.Now, func(t *testing.T, d time.Duration) { ageKeys(t, rdb, d) }}
		}},
	}
}

// ageKeys does to every key of rdb's database what d of Redis's time would:
// a key whose TTL is up is deleted, the others keep d less.
func ageKeys(t *testing.T, rdb *redis.Client, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		ttl, err := rdb.PTTL(ctx, k).Result()
		switch {
		case err != nil:
			t.Fatal(err)
		case ttl <= 0: // gone already, or no TTL (never ours)
		case ttl <= d:
			err = rdb.Del(ctx, k).Err()
		default:
			err = rdb.PExpire(ctx, k, ttl-d).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func claim(t *testing.T, c cache, jti string, until time.Time) bool {
	t.Helper()
	fresh, err := c.Claim(context.Background(), jti, until)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return fresh
}

func TestCacheContract(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, e env)
	}{
		{"fresh-then-409/replay", func(t *testing.T, e env) {
			c, until := e.c, e.now().Add(time.Minute)
			if !claim(t, c, "jti-1", until) {
				t.Fatal("first claim not fresh")
			}
			if claim(t, c, "jti-1", until) {
				t.Fatal("second claim of the same jti fresh: replay accepted")
			}
		}},
		{"fresh/other-jti", func(t *testing.T, e env) {
			c, until := e.c, e.now().Add(time.Minute)
			claim(t, c, "jti-a", until)
			if !claim(t, c, "jti-b", until) {
				t.Fatal("a different jti is not fresh")
			}
		}},
		{"fresh/after-expiry", func(t *testing.T, e env) {
			c, until := e.c, e.now().Add(time.Minute)
			claim(t, c, "jti-exp", until)
			if claim(t, c, "jti-exp", until) {
				t.Fatal("replay before expiry accepted")
			}
			e.advance(t, 50*time.Second)
			if claim(t, c, "jti-exp", until) {
				t.Fatal("replay 10 s before expiry accepted")
			}
			e.advance(t, 11*time.Second)
			if !claim(t, c, "jti-exp", e.now().Add(time.Minute)) {
				t.Fatal("jti not fresh after its expiry")
			}
		}},
		{"exact/concurrent-claims", func(t *testing.T, e env) {
			c, until := e.c, e.now().Add(time.Minute)
			var fresh atomic.Int32
			var wg sync.WaitGroup
			for range 40 {
				wg.Go(func() {
					ok, err := c.Claim(context.Background(), "jti-race", until)
					if err != nil {
						t.Error(err)
					} else if ok {
						fresh.Add(1)
					}
				})
			}
			wg.Wait()
			if fresh.Load() != 1 {
				t.Fatalf("%d of 40 concurrent claims fresh, want exactly 1", fresh.Load())
			}
		}},
		{"invalid/jti", func(t *testing.T, e env) {
			for _, jti := range []string{"", strings.Repeat("x", MaxJTILen+1)} {
				if _, err := e.c.Claim(context.Background(), jti, e.now().Add(time.Minute)); !errors.Is(err, ErrInvalidJTI) {
					t.Errorf("Claim(len %d) = %v, want ErrInvalidJTI", len(jti), err)
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

func TestRedisExpirySet(t *testing.T) {
	rdb := testenv.Redis(t)
	c := NewRedis(rdb, "bg:test:jti:")
	until := time.Now().Add(30 * time.Second)
	claim(t, c, "jti-ttl", until)
	ttl, err := rdb.PTTL(context.Background(), "bg:test:jti:jti-ttl").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 29*time.Second || ttl > 30*time.Second {
		t.Fatalf("key TTL %v, want about 30s", ttl)
	}
}

func TestRedisDownFailsClosed(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{
		Addr:        fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), // nothing listens there
		MaxRetries:  -1,
		DialTimeout: 500 * time.Millisecond,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	fresh, err := NewRedis(rdb, "bg:test:jti:").Claim(context.Background(), "jti-1", time.Now().Add(time.Minute))
	if !errors.Is(err, ErrUnavailable) || fresh {
		t.Fatalf("Claim with Redis down = %v, %v; want false, ErrUnavailable", fresh, err)
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
	m := NewMemoryWith(MemoryOptions{MaxEntries: 3, Now: clk.Now})
	ctx := context.Background()
	for i, d := range []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second} {
		if fresh, err := m.Claim(ctx, fmt.Sprintf("jti-%d", i), clk.Now().Add(d)); err != nil || !fresh {
			t.Fatalf("claim %d: %v %v", i, fresh, err)
		}
	}
	t.Run("503/full-of-unexpired", func(t *testing.T) {
		if _, err := m.Claim(ctx, "jti-new", clk.Now().Add(time.Minute)); !errors.Is(err, ErrFull) {
			t.Fatalf("claim into a full cache = %v, want ErrFull", err)
		}
		// Nothing was forgotten to make room: a replay is still caught.
		if fresh, err := m.Claim(ctx, "jti-0", clk.Now().Add(time.Minute)); err != nil || fresh {
			t.Fatalf("replay of jti-0 while full: %v %v", fresh, err)
		}
	})
	t.Run("fresh/expired-purged", func(t *testing.T) {
		clk.Advance(15 * time.Second) // jti-0 has expired
		if fresh, err := m.Claim(ctx, "jti-new", clk.Now().Add(time.Minute)); err != nil || !fresh {
			t.Fatalf("claim after expiry: %v %v", fresh, err)
		}
		if fresh, _ := m.Claim(ctx, "jti-1", clk.Now().Add(time.Minute)); fresh {
			t.Fatal("unexpired jti-1 was dropped")
		}
		if n := m.Len(); n != 3 {
			t.Fatalf("len %d, want 3", n)
		}
	})
	t.Run("fresh/until-in-past-still-held", func(t *testing.T) {
		m := NewMemoryWith(MemoryOptions{Now: clk.Now})
		past := clk.Now().Add(-time.Second)
		if fresh, _ := m.Claim(ctx, "jti-old", past); !fresh {
			t.Fatal("first claim not fresh")
		}
		if fresh, _ := m.Claim(ctx, "jti-old", past); fresh {
			t.Fatal("a jti with a past expiry was not held at all")
		}
	})
}

func BenchmarkClaim(b *testing.B) {
	for _, impl := range impls() {
		b.Run(impl.name, func(b *testing.B) {
			c := impl.new(b).c
			var n atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					jti := fmt.Sprintf("jti-%d", n.Add(1))
					// A short lifetime keeps the memory cache below its cap, so
					// the benchmark includes the purge of expired jtis.
					if _, err := c.Claim(context.Background(), jti, time.Now().Add(10*time.Millisecond)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
		})
	}
}
