package redisx_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/testenv"
)

const timeout = 200 * time.Millisecond

// bound is how long a call may take under a fault: the timeout plus room
// for a loaded machine. A call without a bound would wait for as long as
// the fault lasts, which in these tests is until the test ends it.
const bound = timeout + 2*time.Second

func newClient(t *testing.T, addr string) redis.UniversalClient {
	t.Helper()
	rdb, err := redisx.New(redisx.Config{Addrs: addr, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// calls are the shapes of Redis call the services make: a command, a Lua
// script (the rate limiter), a pipeline and a WATCH transaction (stores).
var calls = []struct {
	name string
	do   func(ctx context.Context, rdb redis.UniversalClient) error
}{
	{"ping", func(ctx context.Context, rdb redis.UniversalClient) error { return rdb.Ping(ctx).Err() }},
	{"set", func(ctx context.Context, rdb redis.UniversalClient) error {
		return rdb.Set(ctx, "k", "v", time.Minute).Err()
	}},
	{"script", func(ctx context.Context, rdb redis.UniversalClient) error {
		return rdb.Eval(ctx, `return redis.call("INCR", KEYS[1])`, []string{"n"}).Err()
	}},
	{"pipeline", func(ctx context.Context, rdb redis.UniversalClient) error {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "a", "1", time.Minute)
			p.Get(ctx, "a")
			return nil
		})
		return err
	}},
	{"watch", func(ctx context.Context, rdb redis.UniversalClient) error {
		return rdb.Watch(ctx, func(tx *redis.Tx) error {
			if err := tx.Get(ctx, "w").Err(); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error { p.Set(ctx, "w", "1", time.Minute); return nil })
			return err
		}, "w")
	}},
}

// eventually polls f until it returns nil or limit passes; it returns how
// long that took. It is for waiting on recovery, not for asserting speed.
func eventually(t *testing.T, limit time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: still failing after %s: %v", what, limit, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlowRedisBoundedNoPileUp: behind a Redis that accepts connections and
// never answers, every kind of call fails within the timeout, a storm of
// concurrent calls neither piles up goroutines nor opens more connections
// than the pool allows, and the same client works again once Redis does.
func TestSlowRedisBoundedNoPileUp(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	proxy := testenv.NewFaultProxy(t, srv.Addr)
	rdb := newClient(t, proxy.Addr)
	ctx := context.Background()
	for _, c := range calls {
		if err := c.do(ctx, rdb); err != nil {
			t.Fatalf("%s before the fault: %v", c.name, err)
		}
	}
	baseline := runtime.NumGoroutine() - proxy.Conns()

	for _, mode := range []struct {
		name  string
		fault func()
	}{
		{"stalled", proxy.Stall},
		{"delayed-10x", func() { proxy.Delay(10 * timeout) }},
	} {
		t.Run("503/"+mode.name, func(t *testing.T) {
			mode.fault()
			defer proxy.Pass()
			for _, c := range calls {
				start := time.Now()
				err := c.do(ctx, rdb)
				took := time.Since(start)
				if err == nil {
					t.Fatalf("%s succeeded through a %s Redis", c.name, mode.name)
				}
				if took > bound {
					t.Errorf("%s took %s, bound %s (timeout %s): %v", c.name, took, bound, timeout, err)
				}
				t.Logf("%s failed after %s: %v", c.name, took.Round(time.Millisecond), err)
			}

			const storm = 200
			var wg sync.WaitGroup
			var failed, slow sync.Map
			for i := range storm {
				wg.Go(func() {
					start := time.Now()
					// Half commands, half scripts: scripts queue for a
					// shared round trip, and must keep the same bound.
					err := rdb.Set(ctx, "storm", i, time.Minute).Err()
					if i%2 == 1 {
						err = rdb.Eval(ctx, `return redis.call("INCR", KEYS[1])`, []string{"storm-n"}).Err()
					}
					if err != nil {
						failed.Store(i, true)
					}
					if time.Since(start) > bound {
						slow.Store(i, true)
					}
				})
			}
			wg.Wait()
			n, s := count(&failed), count(&slow)
			if n != storm {
				t.Fatalf("%d of %d calls failed through a %s Redis", n, storm, mode.name)
			}
			if s != 0 {
				t.Errorf("%d of %d calls took longer than %s", s, storm, bound)
			}
			st := rdb.PoolStats()
			if st.TotalConns > 64 {
				t.Errorf("pool holds %d connections after the storm, above its size 64", st.TotalConns)
			}
			// Every call returned, so none of the test's goroutines waits on
			// Redis; what must not grow is what the client keeps behind
			// them. Goroutines that are just ending (the proxy's, go-redis's
			// closing of timed-out connections) get a moment to finish.
			eventually(t, 5*time.Second, "goroutines back near the baseline", func() error {
				if g := runtime.NumGoroutine() - proxy.Conns(); g > baseline+20 {
					return fmt.Errorf("%d goroutines (not counting the proxy's) after %d failed calls, %d before: a pile-up", g, storm, baseline)
				}
				return nil
			})
			t.Logf("after %d failed calls: pool %+v, goroutines %d (baseline %d)", storm, *st, runtime.NumGoroutine()-proxy.Conns(), baseline)
		})
		took := eventually(t, 10*time.Second, "calls after "+mode.name+" Redis answers again", func() error {
			for _, c := range calls {
				if err := c.do(ctx, rdb); err != nil {
					return err
				}
			}
			return nil
		})
		t.Logf("same client working again %s after the %s Redis recovered", took.Round(time.Millisecond), mode.name)
	}
	if st := rdb.PoolStats(); st.TotalConns > 64 {
		t.Errorf("pool holds %d connections after recovery, above its size 64", st.TotalConns)
	}
}

func count(m *sync.Map) int {
	n := 0
	m.Range(func(any, any) bool { n++; return true })
	return n
}

// TestRestartedRedisRecovers: while Redis is down calls fail fast, and after
// it is back the same client serves again without being rebuilt.
func TestRestartedRedisRecovers(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	rdb := newClient(t, srv.Addr)
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// A pool full of connections to the old process.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { _ = rdb.Ping(ctx).Err() })
	}
	wg.Wait()

	srv.Stop(t)
	for _, c := range calls {
		start := time.Now()
		if err := c.do(ctx, rdb); err == nil {
			t.Fatalf("%s succeeded with Redis down", c.name)
		}
		if took := time.Since(start); took > bound {
			t.Errorf("%s with Redis down took %s, bound %s", c.name, took, bound)
		}
	}
	srv.Start(t)
	took := eventually(t, 10*time.Second, "calls after the restart", func() error {
		for _, c := range calls {
			if err := c.do(ctx, rdb); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("same client working again %s after Redis restarted", took.Round(time.Millisecond))
}

// TestFullRedisRefusesWrites: a Redis at maxmemory with noeviction refuses
// every write at once (no timeout spent), keeps answering reads, and the
// same client writes again once memory is freed.
func TestFullRedisRefusesWrites(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	rdb := newClient(t, srv.Addr)
	ctx := context.Background()
	if err := rdb.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv.RefuseWrites(t)
	for _, c := range calls[1:] { // ping is not a write
		start := time.Now()
		err := c.do(ctx, rdb)
		if err == nil {
			t.Errorf("%s on a full Redis succeeded", c.name)
		}
		if took := time.Since(start); took > bound {
			t.Errorf("%s on a full Redis took %s", c.name, took)
		}
		t.Logf("%s on a full Redis: %v", c.name, err)
	}
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Errorf("set on a full Redis: %v, want the OOM refusal", err)
	}
	if v, err := rdb.Get(ctx, "before").Result(); err != nil || v != "1" {
		t.Fatalf("read on a full Redis: %q %v", v, err)
	}
	srv.FreeMemory(t)
	for _, c := range calls {
		if err := c.do(ctx, rdb); err != nil {
			t.Fatalf("%s after memory was freed: %v", c.name, err)
		}
	}
}

func TestConfigTimeoutValidated(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		ok      bool
	}{
		{"ok/default", 0, true},
		{"ok/10ms", 10 * time.Millisecond, true},
		{"ok/30s", 30 * time.Second, true},
		{"err/too-short", time.Millisecond, false},
		{"err/too-long", time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := redisx.Config{Addrs: "127.0.0.1:6379", Timeout: tc.timeout}.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate = %v", err)
			}
		})
	}
}
