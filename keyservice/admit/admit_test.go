package admit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/replay"
)

// env is an admitter under test with the replay cache and limiter it
// admits through, to look at their state from outside.
type env struct {
	a  Admitter
	rc ReplayCache
	l  ratelimit.Limiter
}

func impls() []struct {
	name string
	new  func(t *testing.T) env
} {
	return []struct {
		name string
		new  func(t *testing.T) env
	}{
		{"memory", func(*testing.T) env {
			rc, l := replay.NewMemory(), ratelimit.NewMemory()
			return env{New(rc, l), rc, l}
		}},
		{"redis-script", func(t *testing.T) env {
			rdb := testenv.Redis(t)
			rc, l := replay.NewRedis(rdb, "t:jti:"), ratelimit.NewRedis(rdb, "t:rl:")
			a := New(rc, l)
			if _, ok := a.(script); !ok {
				t.Fatalf("New on one Redis client made %T, want the one-script admitter", a)
			}
			return env{a, rc, l}
		}},
		{"redis-split", func(t *testing.T) env {
			// What a Cluster runs: the claim, then the limits.
			rdb := testenv.Redis(t)
			rc, l := replay.NewRedis(rdb, "t:jti:"), ratelimit.NewRedis(rdb, "t:rl:")
			return env{split{rc, l}, rc, l}
		}},
	}
}

var (
	perClient = ratelimit.Limit{Name: "per-client", Rate: 2, Period: time.Hour, Burst: 2}
	daily     = ratelimit.Limit{Name: "daily", Rate: 100, Period: 24 * time.Hour, Burst: 100}
)

func takes(client string) []ratelimit.Take {
	return []ratelimit.Take{{Limit: perClient, Key: client, Stop: true}, {Limit: daily, Key: client}}
}

func claim(jti string) Claim { return Claim{JTI: "gateway:" + jti, Until: time.Now().Add(time.Minute)} }

func TestAdmit(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, e env)
	}{
		{"fresh/claims-and-counts", func(t *testing.T, e env) {
			res, err := e.a.Admit(ctx, claim("jti-0000000000000001"), takes("c"))
			if err != nil || len(res) != 2 || !res[0].Allowed || res[0].Remaining != 1 || res[1].Remaining != 99 {
				t.Fatalf("Admit = %+v, %v", res, err)
			}
			if fresh, err := e.rc.Claim(ctx, "gateway:jti-0000000000000001", time.Now().Add(time.Minute)); err != nil || fresh {
				t.Fatalf("the replay cache does not hold the admitted jti (%v): a replay through Verify would pass", err)
			}
		}},
		{"409/replay-counts-nothing", func(t *testing.T, e env) {
			c := claim("jti-0000000000000002")
			if _, err := e.a.Admit(ctx, c, takes("c")); err != nil {
				t.Fatal(err)
			}
			if res, err := e.a.Admit(ctx, c, takes("c")); !errors.Is(err, ErrReplay) || res != nil {
				t.Fatalf("replay: %+v %v, want ErrReplay", res, err)
			}
			if r, _ := e.l.Allow(ctx, "c", perClient); !r.Allowed || r.Remaining != 0 {
				t.Fatalf("per-client limit after the replay: %+v, want counted once before (0 left now)", r)
			}
		}},
		{"409/claimed-by-verify", func(t *testing.T, e env) {
			if fresh, err := e.rc.Claim(ctx, "gateway:jti-0000000000000003", time.Now().Add(time.Minute)); err != nil || !fresh {
				t.Fatal(fresh, err)
			}
			if _, err := e.a.Admit(ctx, claim("jti-0000000000000003"), takes("c")); !errors.Is(err, ErrReplay) {
				t.Fatalf("a jti the replay cache holds: %v, want ErrReplay", err)
			}
		}},
		{"counted/zero-claim", func(t *testing.T, e env) {
			for range 2 {
				if _, err := e.a.Admit(ctx, Claim{}, takes("c")); err != nil {
					t.Fatal(err)
				}
			}
			res, err := e.a.Admit(ctx, Claim{}, takes("c"))
			if err != nil || len(res) != 1 || res[0].Allowed {
				t.Fatalf("third: %+v %v, want the per-client limit refused and the batch stopped", res, err)
			}
		}},
		{"refused/limit-uses-the-jti", func(t *testing.T, e env) {
			for i := range 2 {
				if _, err := e.a.Admit(ctx, claim(fmt.Sprintf("jti-use-%016d", i)), takes("c")); err != nil {
					t.Fatal(err)
				}
			}
			c := claim("jti-0000000000000004")
			if res, err := e.a.Admit(ctx, c, takes("c")); err != nil || res[0].Allowed {
				t.Fatalf("over the limit: %+v %v", res, err)
			}
			if _, err := e.a.Admit(ctx, c, takes("c")); !errors.Is(err, ErrReplay) {
				t.Fatalf("retry of a refused request with its jti: %v, want ErrReplay", err)
			}
		}},
		{"exact/concurrent-claims", func(t *testing.T, e env) {
			var in atomic.Int32
			var wg sync.WaitGroup
			for range 40 {
				wg.Go(func() {
					_, err := e.a.Admit(ctx, claim("jti-race-0000000001"), []ratelimit.Take{{Limit: daily, Key: "race"}})
					switch {
					case err == nil:
						in.Add(1)
					case !errors.Is(err, ErrReplay):
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if in.Load() != 1 {
				t.Fatalf("%d of 40 concurrent requests with one jti admitted, want exactly 1", in.Load())
			}
		}},
	}
	for _, impl := range impls() {
		for _, tt := range tests {
			t.Run(impl.name+"/"+tt.name, func(t *testing.T) { tt.run(t, impl.new(t)) })
		}
	}
	t.Run("503/no-replay-cache", func(t *testing.T) {
		if _, err := New(nil, ratelimit.NewMemory()).Admit(ctx, claim("jti-0000000000000005"), takes("c")); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("a claim without a replay cache: %v, want ErrUnavailable", err)
		}
	})
}

// TestRedisFaults: whatever way Redis fails, Admit refuses with
// ErrUnavailable within the client's timeout, never admits; a jti claimed
// before the fault is still refused once Redis is back.
func TestRedisFaults(t *testing.T) {
	const timeout = 200 * time.Millisecond
	fr := testenv.NewFaultyRedis(t)
	rdb, err := redisx.New(redisx.Config{Addrs: fr.Addr, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	a := New(replay.NewRedis(rdb, "t:jti:"), ratelimit.NewRedis(rdb, "t:rl:"))
	ctx := context.Background()
	n := 0
	next := func() Claim { n++; return claim(fmt.Sprintf("jti-fault-%010d", n)) }
	lots := []ratelimit.Take{{Limit: daily, Key: "f"}}
	for _, f := range fr.Faults(10 * timeout) {
		t.Run("503/"+f.Name, func(t *testing.T) {
			before := next()
			if _, err := a.Admit(ctx, before, lots); err != nil {
				t.Fatalf("before the fault: %v", err)
			}
			f.Inject(t)
			start := time.Now()
			res, err := a.Admit(ctx, next(), lots)
			if took := time.Since(start); took > timeout+2*time.Second {
				t.Errorf("Admit with Redis %s took %s (timeout %s)", f.Name, took, timeout)
			}
			if !errors.Is(err, ErrUnavailable) || res != nil {
				t.Fatalf("Admit with Redis %s: %+v %v, want ErrUnavailable", f.Name, res, err)
			}
			f.Heal(t)
			start = time.Now()
			for {
				if _, err := a.Admit(ctx, next(), lots); err == nil {
					break
				} else if time.Since(start) > 10*time.Second {
					t.Fatalf("still refusing 10s after Redis %s ended: %v", f.Name, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if _, err := a.Admit(ctx, before, lots); !errors.Is(err, ErrReplay) {
				t.Fatalf("a jti claimed before Redis was %s: %v after, want ErrReplay", f.Name, err)
			}
		})
	}
}
