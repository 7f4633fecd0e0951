package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/testenv"
)

func mustBatch(t *testing.T, l Limiter, takes ...Take) []Result {
	t.Helper()
	res, err := AllowBatch(context.Background(), l, takes)
	if err != nil {
		t.Fatalf("AllowBatch: %v", err)
	}
	return res
}

// TestBatchContract: a batch counts what the same Allow calls one after
// another would, on the same state, and stops where they would stop. The
// Redis batch is one script; memory is one call after another.
func TestBatchContract(t *testing.T) {
	a := Limit{Name: "a", Rate: 1, Period: time.Hour, Burst: 1}
	b := Limit{Name: "b", Rate: 5, Period: time.Hour, Burst: 5}
	tests := []struct {
		name string
		run  func(t *testing.T, e env)
	}{
		{"stop/refused-counts-nothing-after", func(t *testing.T, e env) {
			if res := mustBatch(t, e.l, Take{a, "k", true}, Take{b, "k", false}); len(res) != 2 || !res[0].Allowed || !res[1].Allowed || res[1].Remaining != 4 {
				t.Fatalf("first batch: %+v", res)
			}
			res := mustBatch(t, e.l, Take{a, "k", true}, Take{b, "k", false})
			if len(res) != 1 || res[0].Allowed || res[0].RetryAfter <= 0 {
				t.Fatalf("second batch: %+v, want only a, refused with a RetryAfter", res)
			}
			if r := mustAllow(t, e.l, "k", b); r.Remaining != 3 {
				t.Fatalf("b after the refused batch: %+v, want it counted once before (3 remaining)", r)
			}
		}},
		{"go-on/refusal-without-stop", func(t *testing.T, e env) {
			mustBatch(t, e.l, Take{a, "k", false}, Take{b, "k", false})
			res := mustBatch(t, e.l, Take{a, "k", false}, Take{b, "k", false})
			if len(res) != 2 || res[0].Allowed || !res[1].Allowed || res[1].Remaining != 3 {
				t.Fatalf("second batch: %+v, want a refused and b counted", res)
			}
		}},
		{"shared/state-with-allow", func(t *testing.T, e env) {
			three := Limit{Name: "three", Rate: 3, Period: time.Hour, Burst: 3}
			mustAllow(t, e.l, "k", three)
			if res := mustBatch(t, e.l, Take{three, "k", true}); !res[0].Allowed || res[0].Remaining != 1 {
				t.Fatalf("batch after one Allow: %+v, want 1 remaining", res)
			}
			if r := mustAllow(t, e.l, "k", three); !r.Allowed || r.Remaining != 0 {
				t.Fatalf("Allow after the batch: %+v, want 0 remaining", r)
			}
			if r := mustAllow(t, e.l, "k", three); r.Allowed {
				t.Fatalf("4th event allowed: %+v", r)
			}
		}},
		{"allowed/refills", func(t *testing.T, e env) {
			mustBatch(t, e.l, Take{a, "k", true})
			res := mustBatch(t, e.l, Take{a, "k", true})
			if res[0].Allowed {
				t.Fatal("allowed past burst")
			}
			e.advance(t, res[0].RetryAfter)
			if res := mustBatch(t, e.l, Take{a, "k", true}); !res[0].Allowed {
				t.Fatalf("not refilled after RetryAfter: %+v", res)
			}
		}},
		{"exact/concurrent-burst", func(t *testing.T, e env) {
			burst := Limit{Name: "concurrent", Rate: 1, Period: time.Hour, Burst: 25}
			var allowed atomic.Int32
			var wg sync.WaitGroup
			for range 60 {
				wg.Go(func() {
					res, err := AllowBatch(context.Background(), e.l, []Take{{burst, "k", true}, {b, "k", false}})
					if err != nil {
						t.Error(err)
					} else if res[0].Allowed {
						allowed.Add(1)
					}
				})
			}
			wg.Wait()
			if allowed.Load() != 25 {
				t.Fatalf("%d of 60 concurrent batches allowed, want exactly the burst of 25", allowed.Load())
			}
		}},
		{"invalid/limit", func(t *testing.T, e env) {
			if _, err := AllowBatch(context.Background(), e.l, []Take{{a, "k", true}, {Limit{Name: "bad"}, "k", true}}); !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("AllowBatch with an invalid limit = %v, want ErrInvalidLimit", err)
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

// TestRedisBatchOnce: the once key is claimed before anything is counted;
// when it exists nothing is counted at all; it expires with its TTL.
func TestRedisBatchOnce(t *testing.T) {
	rdb := testenv.Redis(t)
	l := NewRedis(rdb, "bg:test:rl:")
	ctx := context.Background()
	lim := Limit{Name: "once", Rate: 10, Period: time.Hour, Burst: 10}
	once := Once{Key: "bg:test:jti:c:one", TTL: 30 * time.Second}
	t.Run("fresh/claimed-and-counted", func(t *testing.T) {
		res, err := l.AllowBatchOnce(ctx, once, []Take{{lim, "k", true}})
		if err != nil || len(res) != 1 || res[0].Remaining != 9 {
			t.Fatalf("first: %+v %v", res, err)
		}
		ttl, err := rdb.PTTL(ctx, once.Key).Result()
		if err != nil || ttl <= 29*time.Second || ttl > 30*time.Second {
			t.Fatalf("once key TTL %v %v, want about 30s", ttl, err)
		}
	})
	t.Run("409/claimed-counts-nothing", func(t *testing.T) {
		if res, err := l.AllowBatchOnce(ctx, once, []Take{{lim, "k", true}}); !errors.Is(err, ErrClaimed) || res != nil {
			t.Fatalf("replayed once: %+v %v, want ErrClaimed", res, err)
		}
		if r := mustAllow(t, l, "k", lim); r.Remaining != 8 {
			t.Fatalf("limit after the refused claim: %+v, want counted once (8 remaining)", r)
		}
	})
	t.Run("exact/concurrent-claims", func(t *testing.T) {
		var fresh atomic.Int32
		var wg sync.WaitGroup
		for range 40 {
			wg.Go(func() {
				_, err := l.AllowBatchOnce(ctx, Once{Key: "bg:test:jti:c:race", TTL: time.Minute}, []Take{{lim, "race", false}})
				switch {
				case err == nil:
					fresh.Add(1)
				case !errors.Is(err, ErrClaimed):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if fresh.Load() != 1 {
			t.Fatalf("%d of 40 concurrent claims fresh, want exactly 1", fresh.Load())
		}
	})
}

// TestGateBatchIsCheckAndWatch: Gate.Batch gives, event after event, the
// alarms and refusals of the Check and Watch calls it replaces, and counts
// the same (two memory limiters, one driven each way).
func TestGateBatchIsCheckAndWatch(t *testing.T) {
	errLimited := errors.New("domain: limited")
	per := Limit{Name: "per", Rate: 4, Period: time.Hour, Burst: 4}
	day := Window{Limit: Limit{Name: "day", Rate: 3, Period: 24 * time.Hour, Burst: 3}, AlarmAt: 0.6}
	hard := Window{Limit: Limit{Name: "hard", Rate: 5, Period: 24 * time.Hour, Burst: 5}, AlarmAt: 0.8, Refuse: true}
	off := Window{Limit: Limit{Name: "off"}, Refuse: true}
	steps := []Step{CheckStep(per, "c"), WatchStep(day, "c"), WatchStep(off, "m"), WatchStep(hard, "m")}
	batch := Gate{Limiter: NewMemory(), Limited: errLimited}
	single := Gate{Limiter: NewMemory(), Limited: errLimited}
	ctx := context.Background()
	for i := range 7 {
		got, gotErr := batch.Batch(ctx, steps)
		want := make([]string, len(steps))
		wantErr := func() error {
			if err := single.Check(ctx, per, "c"); err != nil {
				return err
			}
			for j, w := range []struct {
				w   Window
				key string
			}{{day, "c"}, {off, "m"}, {hard, "m"}} {
				why, err := single.Watch(ctx, w.w, w.key)
				want[j+1] = why
				if err != nil {
					return err
				}
			}
			return nil
		}()
		if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("event %d: Batch = %q, %v; Check and Watch = %q, %v", i+1, got, gotErr, want, wantErr)
		}
		if wantErr != nil && (!errors.Is(gotErr, errLimited) || !errors.Is(gotErr, ErrRefused)) {
			t.Fatalf("event %d: %v does not match the gate's sentinels", i+1, gotErr)
		}
	}
	t.Run("unavailable/store-down", func(t *testing.T) {
		errDown := errors.New("domain: unavailable")
		g := Gate{Limiter: failing{fmt.Errorf("%w: down", ErrUnavailable)}, Unavailable: errDown}
		alarms, err := g.Batch(ctx, steps)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errDown) || len(alarms) != len(steps) {
			t.Fatalf("Batch with the store down = %q, %v", alarms, err)
		}
	})
	t.Run("unavailable/short-reply", func(t *testing.T) {
		if _, err := batch.Judge(steps, []Result{{Allowed: true, Remaining: 1}}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Judge of too few results = %v, want ErrUnavailable", err)
		}
	})
}

func BenchmarkAllowBatch(b *testing.B) {
	for _, impl := range impls() {
		b.Run(impl.name, func(b *testing.B) {
			l := impl.new(b).l
			lim := Limit{Name: "bench", Rate: 1_000_000, Period: time.Second, Burst: 1000}
			day := Limit{Name: "day", Rate: 1_000_000_000, Period: 24 * time.Hour, Burst: 1_000_000_000}
			var n atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				key := fmt.Sprintf("client-%d", n.Add(1))
				takes := []Take{{lim, key, true}, {day, key, false}, {day, "merchant", false}}
				for pb.Next() {
					if _, err := AllowBatch(context.Background(), l, takes); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
		})
	}
}

// TestRedisBatchThen: the work after the limits runs only when no Stop
// take refused, sees its own keys and arguments, and answers its reply;
// the same on one script and one command after another (Cluster).
func TestRedisBatchThen(t *testing.T) {
	// Sets K[1] to A[1] and answers {A[2], the old value or "none"}.
	const lua = `
local old = redis.call("GET", K[1])
redis.call("SET", K[1], A[1])
return {A[2], old or "none"}
`
	one := Limit{Name: "then-one", Rate: 1, Period: time.Hour, Burst: 1}
	for _, split := range []bool{false, true} {
		t.Run(fmt.Sprintf("split=%v", split), func(t *testing.T) {
			rdb := testenv.Redis(t)
			l := NewRedis(rdb, "bg:test:rl:")
			l.split = split
			ctx := context.Background()
			then := redisx.Then{Client: rdb, Lua: lua, Keys: []string{"bg:test:then"}, Args: []any{"v1", "hello"}}
			res, reply, ran, err := l.AllowBatchThen(ctx, []Take{{one, "k", true}}, then)
			if err != nil || !ran || len(res) != 1 || !res[0].Allowed {
				t.Fatalf("first: %+v %v %v %v", res, reply, ran, err)
			}
			if r, _ := reply.([]any); len(r) != 2 || r[0] != "hello" || r[1] != "none" {
				t.Fatalf("reply %#v", reply)
			}
			then.Args = []any{"v2", "again"}
			res, reply, ran, err = l.AllowBatchThen(ctx, []Take{{one, "k", true}}, then)
			if err != nil || ran || reply != nil || len(res) != 1 || res[0].Allowed {
				t.Fatalf("refused by a Stop take: %+v %v %v %v, want no work", res, reply, ran, err)
			}
			if v, _ := rdb.Get(ctx, "bg:test:then").Result(); v != "v1" {
				t.Fatalf("the work ran after a refusal: %q", v)
			}
			_, reply, ran, err = l.AllowBatchThen(ctx, []Take{{one, "k", false}}, then)
			if r, _ := reply.([]any); err != nil || !ran || len(r) != 2 || r[1] != "v1" {
				t.Fatalf("refused without Stop: %v %v %v, want the work done", reply, ran, err)
			}
			if _, reply, ran, err := l.AllowBatchThen(ctx, nil, redisx.Then{Client: rdb, Lua: `return nil`}); err != nil || !ran || reply != nil {
				t.Fatalf("no limits, nil reply: %v %v %v", reply, ran, err)
			}
		})
	}
}

// TestRedisBatchOnceThen: the once key is claimed before anything else: a
// fresh claim runs the work after the limits (in the script, or after it
// on the split path), a claimed one runs neither the limits nor the work.
func TestRedisBatchOnceThen(t *testing.T) {
	// Takes K[1] as GETDEL does.
	const lua = `return redis.call("GETDEL", K[1])`
	lim := Limit{Name: "once-then", Rate: 10, Period: time.Hour, Burst: 10}
	for _, split := range []bool{false, true} {
		t.Run(fmt.Sprintf("split=%v", split), func(t *testing.T) {
			rdb := testenv.Redis(t)
			l := NewRedis(rdb, "bg:test:rl:")
			l.split = split
			ctx := context.Background()
			if err := rdb.Set(ctx, "bg:test:work", "v", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			then := redisx.Then{Client: rdb, Lua: lua, Keys: []string{"bg:test:work"}}
			once := Once{Key: "bg:test:jti:c:once-then", TTL: time.Minute}
			if err := rdb.Set(ctx, once.Key, "1", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			res, reply, ran, err := l.AllowBatchOnceThen(ctx, once, []Take{{lim, "k", true}}, then)
			if !errors.Is(err, ErrClaimed) || ran || reply != nil || res != nil {
				t.Fatalf("claimed before: %+v %v %v %v, want ErrClaimed and nothing done", res, reply, ran, err)
			}
			if v, _ := rdb.Get(ctx, "bg:test:work").Result(); v != "v" {
				t.Fatalf("the work ran for a claimed once key: %q left", v)
			}
			if r := mustAllow(t, l, "k", lim); r.Remaining != 9 {
				t.Fatalf("a claimed once key counted: %+v", r)
			}
			once.Key = "bg:test:jti:c:once-then-2"
			res, reply, ran, err = l.AllowBatchOnceThen(ctx, once, []Take{{lim, "k", true}}, then)
			if err != nil || !ran || reply != "v" || len(res) != 1 || res[0].Remaining != 8 {
				t.Fatalf("fresh: %+v %v %v %v, want counted and the work's reply", res, reply, ran, err)
			}
			if n, _ := rdb.Exists(ctx, once.Key).Result(); n != 1 {
				t.Fatal("the once key was not claimed")
			}
			once.Key = "bg:test:jti:c:once-then-3"
			if _, reply, ran, err := l.AllowBatchOnceThen(ctx, once, nil, then); err != nil || !ran || reply != nil {
				t.Fatalf("no limits, the key gone: %v %v %v, want the work run with a nil reply", reply, ran, err)
			}
		})
	}
}

// TestStopped: only a refusal of a Stop take, which ends the results,
// refuses the batch.
func TestStopped(t *testing.T) {
	stop, goOn := Take{Key: "a", Stop: true}, Take{Key: "b"}
	yes, no := Result{Allowed: true}, Result{}
	for _, tc := range []struct {
		name  string
		takes []Take
		res   []Result
		want  bool
	}{
		{"refused/stop-take-refused", []Take{goOn, stop, goOn}, []Result{yes, no}, true},
		{"allowed/all-allowed", []Take{stop, goOn}, []Result{yes, yes}, false},
		{"allowed/refusal-without-stop", []Take{stop, goOn}, []Result{yes, no}, false},
		{"allowed/no-results", []Take{stop}, nil, false},
	} {
		if got := Stopped(tc.takes, tc.res); got != tc.want {
			t.Errorf("%s: Stopped = %v, want %v", tc.name, got, tc.want)
		}
	}
}
