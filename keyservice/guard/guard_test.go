package guard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/testenv"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// contract runs the shared semantics against a counter.
func contract(t *testing.T, c Counter, advance func(time.Duration)) {
	ctx := context.Background()
	w := Window{Period: 2 * time.Second, Keep: 4}
	observe := func(bucket, member string) int {
		t.Helper()
		n, err := c.Observe(ctx, bucket, member, w)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := observe("b1", "m1"); n != 1 {
		t.Fatalf("first = %d", n)
	}
	if n := observe("b1", "m1"); n != 1 {
		t.Fatalf("same member again = %d, want 1", n)
	}
	if n := observe("b2", "m2"); n != 1 {
		t.Fatalf("other bucket = %d, want 1", n)
	}
	for i, want := range []int{2, 3, 4, 5, 5, 5} {
		if n := observe("b1", fmt.Sprint("x", i)); n != want {
			t.Fatalf("distinct #%d = %d, want %d", i, n, want)
		}
	}
	// Over Keep, a stored member counts too (the bucket is full).
	if n := observe("b1", "m1"); n != 4 {
		t.Fatalf("stored member in full bucket = %d, want 4", n)
	}
	advance(2100 * time.Millisecond)
	if n := observe("b1", "y"); n != 1 {
		t.Fatalf("after the window = %d, want 1", n)
	}
	if _, err := c.Observe(ctx, "b1", "z", Window{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("invalid window: %v", err)
	}
}

func TestMemory(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	contract(t, NewMemory(clk.now, 0), clk.add)
}

func TestMemoryFullFailsClosed(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(clk.now, 2)
	w := Window{Period: time.Minute, Keep: 3}
	ctx := context.Background()
	for _, b := range []string{"a", "b"} {
		if _, err := m.Observe(ctx, b, "m", w); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Observe(ctx, "c", "m", w); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("full table: %v", err)
	}
	clk.add(2 * time.Minute)
	if _, err := m.Observe(ctx, "c", "m", w); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestRedis(t *testing.T) {
	rdb := testenv.Redis(t)
	r := NewRedis(rdb, "bg:test:eg:")
	contract(t, r, time.Sleep)
	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if ttl := rdb.PTTL(context.Background(), k).Val(); ttl <= 0 || ttl > 2*time.Second {
			t.Errorf("key %s has ttl %s", k, ttl)
		}
	}
}

func TestRedisDownFailsClosed(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	if _, err := NewRedis(rdb, "x:").Observe(context.Background(), "b", "m", Window{Period: time.Minute, Keep: 2}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("redis down: %v", err)
	}
}
