package redisx_test

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

	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/testenv"
)

// echo answers its own argument, or fails when asked to: a batch carries
// several callers' scripts, and each must get its own answer.
var echo = redis.NewScript(`
if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end
redis.call('INCR', KEYS[1])
return ARGV[1]`)

func TestBatchedScriptsShareRoundTrips(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	proxy := testenv.NewFaultProxy(t, srv.Addr)
	rdb := newClient(t, proxy.Addr)
	ctx := context.Background()
	if err := echo.Run(ctx, rdb, []string{"n"}, "warm").Err(); err != nil {
		t.Fatal(err)
	}
	before, ok := redisx.Batching(rdb)
	if !ok {
		t.Fatal("redisx.New did not batch a single node's scripts")
	}

	// While one batch is on the wire (Redis answers 20 ms late), every
	// script that arrives queues for the next: 40 scripts in a few round
	// trips, each answered with its own value or its own error.
	proxy.Delay(20 * time.Millisecond)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			arg := strconv.Itoa(i)
			if i%7 == 3 {
				arg = "fail"
			}
			got, err := echo.Run(ctx, rdb, []string{"n"}, arg).Text()
			switch {
			case arg == "fail" && (err == nil || err.Error() != "asked to fail"):
				errs <- fmt.Errorf("script %d: got %q, %v; want its own error", i, got, err)
			case arg != "fail" && (err != nil || got != arg):
				errs <- fmt.Errorf("script %d: got %q, %v; want %q", i, got, err, arg)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	after, _ := redisx.Batching(rdb)
	scripts, batches := after.Scripts-before.Scripts, after.Batches-before.Batches
	if scripts != n {
		t.Errorf("%d scripts sent, want %d", scripts, n)
	}
	if batches*4 > scripts {
		t.Errorf("%d scripts took %d round trips: not shared", scripts, batches)
	}
	t.Logf("%d scripts in %d round trips", scripts, batches)
	proxy.Pass()
	if got, err := srv.Client(t).Get(ctx, "n").Int(); err != nil || got != 1+n-(n/7+1) {
		t.Errorf("counter = %d, %v; want every script that did not fail to have run once (%d)", got, err, 1+n-(n/7+1))
	}
}

// TestBatchedScriptAbandonedIsNeverSent: a caller that gives up while its
// script waits behind a stalled batch leaves nothing behind, so a Redis
// that comes back does not receive a backlog of writes whose callers were
// already refused.
func TestBatchedScriptAbandonedIsNeverSent(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	proxy := testenv.NewFaultProxy(t, srv.Addr)
	rdb := newClient(t, proxy.Addr)
	ctx := context.Background()
	if err := echo.Run(ctx, rdb, []string{"warm"}, "x").Err(); err != nil {
		t.Fatal(err)
	}

	proxy.Stall()
	// Hold both round trips out with a script each, sent by its caller
	// (each is now held for the timeout), then queue scripts whose callers
	// give up sooner.
	first := make(chan error, 2)
	for _, k := range []string{"first", "second"} {
		go func() { first <- echo.Run(ctx, rdb, []string{k}, "x").Err() }()
		time.Sleep(20 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
			defer cancel()
			err := echo.Run(short, rdb, []string{"abandoned"}, "x").Err()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("abandoned script: %v, want its deadline", err)
			}
		})
	}
	wg.Wait()
	for range 2 {
		if err := <-first; err == nil {
			t.Error("a script through a stalled Redis succeeded")
		}
	}
	proxy.Pass()
	eventually(t, 5*time.Second, "Redis back", func() error { return echo.Run(ctx, rdb, []string{"after"}, "x").Err() })
	if n, err := srv.Client(t).Exists(ctx, "abandoned").Result(); err != nil || n != 0 {
		t.Errorf("abandoned scripts ran on recovery (exists=%d, %v)", n, err)
	}
}

func TestBatchedScriptReloadsAfterFlush(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	rdb := newClient(t, srv.Addr)
	ctx := context.Background()
	if err := echo.Run(ctx, rdb, []string{"k"}, "a").Err(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client(t).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// EVALSHA answers NOSCRIPT; Script.Run falls back to EVAL, batched too.
	if got, err := echo.Run(ctx, rdb, []string{"k"}, "b").Text(); err != nil || got != "b" {
		t.Fatalf("after SCRIPT FLUSH: %q, %v", got, err)
	}
}

func TestBatchedClose(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	rdb, err := redisx.New(redisx.Config{Addrs: srv.Addr, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := echo.Run(ctx, rdb, []string{"k"}, "a").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := echo.Run(ctx, rdb, []string{"k"}, "a").Err(); !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("script after Close: %v, want redis.ErrClosed", err)
	}
	_ = rdb.Close() // twice is harmless
}

func TestUnbatchedAndClusterClientsAreNotBatched(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  redisx.Config
	}{
		{"unbatched", redisx.Config{Addrs: "127.0.0.1:1", Unbatched: true}},
		{"cluster", redisx.Config{Addrs: "127.0.0.1:1,127.0.0.1:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb, err := redisx.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if _, ok := redisx.Batching(rdb); ok {
				t.Error("batched")
			}
			if _, cluster := rdb.(*redis.ClusterClient); tc.name == "cluster" && !cluster {
				t.Errorf("a Cluster client came out as %T: the stores would miss their Cluster paths", rdb)
			}
		})
	}
}

func TestBatchFlag(t *testing.T) {
	for _, tc := range []struct {
		set           string
		wantUnbatched bool
	}{{"true", false}, {"false", true}, {"1", false}, {"0", true}} {
		unbatched := !tc.wantUnbatched
		f := redisx.BatchFlag(&unbatched)
		if err := f.Set(tc.set); err != nil {
			t.Fatal(err)
		}
		if unbatched != tc.wantUnbatched || f.String() != strconv.FormatBool(!tc.wantUnbatched) {
			t.Errorf("-redis-batch=%s: unbatched=%v, String %s", tc.set, unbatched, f.String())
		}
	}
	var u bool
	if err := redisx.BatchFlag(&u).Set("maybe"); err == nil {
		t.Error("-redis-batch=maybe accepted")
	}
}

// BenchmarkScripts: the client's CPU per script (the process's, from
// getrusage) and scripts per round trip, alone and under concurrency,
// batched and not. Alone is where a hand-off to a flusher costs most: it is
// a thread wakeup there and back for every script.
func BenchmarkScripts(b *testing.B) {
	srv := testenv.StartRedisServer(b)
	ctx := context.Background()
	for _, unbatched := range []bool{false, true} {
		for _, callers := range []int{1, 4, 32} {
			mode := "batched"
			if unbatched {
				mode = "unbatched"
			}
			b.Run(fmt.Sprintf("%s/callers=%d", mode, callers), func(b *testing.B) {
				rdb, err := redisx.New(redisx.Config{Addrs: srv.Addr, Timeout: time.Second, Unbatched: unbatched})
				if err != nil {
					b.Fatal(err)
				}
				defer rdb.Close()
				if err := echo.Run(ctx, rdb, []string{"n"}, "warm").Err(); err != nil {
					b.Fatal(err)
				}
				before, _ := redisx.Batching(rdb)
				var wg sync.WaitGroup
				var next atomic.Int64
				b.ResetTimer()
				cpu := testenv.CPUTime()
				for range callers {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if err := echo.Run(ctx, rdb, []string{"n"}, "x").Err(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64((testenv.CPUTime()-cpu).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
				if after, ok := redisx.Batching(rdb); ok && after.Batches > before.Batches {
					b.ReportMetric(float64(after.Scripts-before.Scripts)/float64(after.Batches-before.Batches), "scripts/RT")
				}
			})
		}
	}
}
