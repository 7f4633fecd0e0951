package nonce

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/testenv"
)

var (
	_ Store = (*Memory)(nil)
	_ Store = (*Redis)(nil)
)

// clock is an injectable time for Memory; Redis tests use real TTLs of a
// few milliseconds only where expiry is the point.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type impl struct {
	name string
	new  func(t *testing.T) (Store, func(time.Duration))
}

func impls() []impl {
	return []impl{
		{"memory", func(*testing.T) (Store, func(time.Duration)) {
			c := &clock{t: time.Unix(1_700_000_000, 0)}
			return NewMemory(c.now, 0), c.add
		}},
		{"redis", func(t *testing.T) (Store, func(time.Duration)) {
			rdb := testenv.Redis(t)
			// Redis keeps its own clock: "time passes" by expiring the keys.
			return NewRedis(rdb, "bg:test:nonce:"), func(time.Duration) {
				keys, _ := rdb.Keys(context.Background(), "bg:test:nonce:*").Result()
				for _, k := range keys {
					_ = rdb.PExpire(context.Background(), k, time.Millisecond).Err()
				}
				// An expired key is gone for every later command once its
				// millisecond has passed.
				for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
					if n, _ := rdb.Exists(context.Background(), keys...).Result(); n == 0 || len(keys) == 0 {
						return
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
		}},
	}
}

func TestStoreContract(t *testing.T) {
	ctx := context.Background()
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			for _, tc := range []struct {
				name string
				run  func(t *testing.T, s Store, advance func(time.Duration))
			}{
				{"ok/redeemed-once", func(t *testing.T, s Store, _ func(time.Duration)) {
					n, err := Issue(ctx, s, "rvn_", Binding("backoffice", "op_1", "tok_1"), 2*time.Minute)
					if err != nil {
						t.Fatal(err)
					}
					if !strings.HasPrefix(n, "rvn_") || len(n) != 4+43 {
						t.Fatalf("nonce %q", n)
					}
					if err := Redeem(ctx, s, n, Binding("backoffice", "op_1", "tok_1")); err != nil {
						t.Fatalf("Redeem: %v", err)
					}
				}},
				{"unknown/replayed", func(t *testing.T, s Store, _ func(time.Duration)) {
					n, _ := Issue(ctx, s, "rvn_", "b", time.Minute)
					if err := Redeem(ctx, s, n, "b"); err != nil {
						t.Fatal(err)
					}
					if err := Redeem(ctx, s, n, "b"); !errors.Is(err, ErrUnknown) {
						t.Fatalf("second Redeem = %v, want ErrUnknown", err)
					}
				}},
				{"unknown/never-issued", func(t *testing.T, s Store, _ func(time.Duration)) {
					if err := Redeem(ctx, s, "rvn_"+strings.Repeat("A", 43), "b"); !errors.Is(err, ErrUnknown) {
						t.Fatalf("Redeem = %v", err)
					}
				}},
				{"unknown/expired", func(t *testing.T, s Store, advance func(time.Duration)) {
					n, _ := Issue(ctx, s, "rvn_", "b", 2*time.Minute)
					advance(2*time.Minute + time.Second)
					if err := Redeem(ctx, s, n, "b"); !errors.Is(err, ErrUnknown) {
						t.Fatalf("Redeem after expiry = %v", err)
					}
				}},
				{"mismatch/another-binding-spends-it", func(t *testing.T, s Store, _ func(time.Duration)) {
					n, _ := Issue(ctx, s, "rvn_", Binding("backoffice", "op_1", "tok_1"), time.Minute)
					if err := Redeem(ctx, s, n, Binding("backoffice", "op_1", "tok_2")); !errors.Is(err, ErrMismatch) {
						t.Fatalf("Redeem other token = %v", err)
					}
					if err := Redeem(ctx, s, n, Binding("backoffice", "op_1", "tok_1")); !errors.Is(err, ErrUnknown) {
						t.Fatalf("Redeem after a mismatch = %v, want ErrUnknown (spent)", err)
					}
				}},
				{"ok/one-of-racing-takers", func(t *testing.T, s Store, _ func(time.Duration)) {
					n, _ := Issue(ctx, s, "rvn_", "b", time.Minute)
					var wins atomic.Int32
					var wg sync.WaitGroup
					for range 16 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							if Redeem(ctx, s, n, "b") == nil {
								wins.Add(1)
							}
						}()
					}
					wg.Wait()
					if wins.Load() != 1 {
						t.Fatalf("%d takers got the nonce", wins.Load())
					}
				}},
				{"unavailable/put-twice", func(t *testing.T, s Store, _ func(time.Duration)) {
					if err := s.Put(ctx, "rvn_x", "b", time.Minute); err != nil {
						t.Fatal(err)
					}
					if err := s.Put(ctx, "rvn_x", "c", time.Minute); !errors.Is(err, ErrUnavailable) {
						t.Fatalf("second Put = %v", err)
					}
				}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					s, advance := im.new(t)
					tc.run(t, s, advance)
				})
			}
		})
	}
}

func TestMemoryFull(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(c.now, 2)
	ctx := context.Background()
	_ = m.Put(ctx, "a", "", time.Minute)
	_ = m.Put(ctx, "b", "", time.Minute)
	if err := m.Put(ctx, "c", "", time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put when full = %v", err)
	}
	c.add(2 * time.Minute)
	if err := m.Put(ctx, "c", "", time.Minute); err != nil {
		t.Fatalf("Put after the others expired = %v", err)
	}
	if m.Len() != 1 {
		t.Fatalf("Len = %d after the sweep", m.Len())
	}
}

func TestRedisDown(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer rdb.Close()
	s := NewRedis(rdb, "x:")
	if _, err := Issue(context.Background(), s, "rvn_", "b", time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Issue = %v", err)
	}
	if err := Redeem(context.Background(), s, "rvn_x", "b"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Redeem = %v", err)
	}
}

// TestTakeThen: the take another store's script runs (TakeThen) is Take:
// the binding once, then ErrUnknown; a reply of another shape is refused.
func TestTakeThen(t *testing.T) {
	rdb := testenv.Redis(t)
	s := NewRedis(rdb, "bg:test:nonce:")
	ctx := context.Background()
	if err := s.Put(ctx, "rvn_then", "client\nactor\ntoken", time.Minute); err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, ErrUnknown} {
		reply, err := s.TakeThen("rvn_then").Alone(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := Taken(reply); !errors.Is(err, want) || (err == nil) != (want == nil) || (want == nil && b != "client\nactor\ntoken") {
			t.Fatalf("take %d: %q %v, want %v", i+1, b, err, want)
		}
	}
	if _, err := Taken(int64(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("an integer reply: %v, want ErrUnavailable", err)
	}
}

// TestStored: the reply of PutThen's SET NX is a stored nonce only when it
// is OK; a nonce held already, or any other reply, is a store that did not
// store it (fail closed).
func TestStored(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply any
		ok    bool
	}{
		{"stored/ok", "OK", true},
		{"503/held-already", nil, false},
		{"503/other-string", "QUEUED", false},
		{"503/other-type", int64(1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Stored(tc.reply)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrUnavailable)) {
				t.Fatalf("Stored(%v) = %v", tc.reply, err)
			}
		})
	}
}
