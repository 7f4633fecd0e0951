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
	"github.com/blindgate/blindgate/keyservice/nonce"
	"github.com/blindgate/blindgate/keyservice/replay"
)

// env is an admitter under test with the replay cache and limiter it
// admits through, to look at their state from outside.
type env struct {
	a  Admitter
	rc ReplayCache
	l  ratelimit.Limiter
	ns nonce.Store
	// trips counts Redis round trips (nil on memory).
	trips *atomic.Int64
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
			return env{a: New(rc, l), rc: rc, l: l, ns: nonce.NewMemory(nil, 0)}
		}},
		{"redis-script", func(t *testing.T) env {
			rdb := testenv.Redis(t)
			trips := testenv.CountTrips(rdb)
			rc, l := replay.NewRedis(rdb, "t:jti:"), ratelimit.NewRedis(rdb, "t:rl:")
			a := New(rc, l)
			if _, ok := a.(script); !ok {
				t.Fatalf("New on one Redis client made %T, want the one-script admitter", a)
			}
			return env{a: a, rc: rc, l: l, ns: nonce.NewRedis(rdb, "t:nonce:"), trips: trips}
		}},
		{"redis-split", func(t *testing.T) env {
			// What a Cluster runs: the claim, then the limits.
			rdb := testenv.Redis(t)
			rc, l := replay.NewRedis(rdb, "t:jti:"), ratelimit.NewRedis(rdb, "t:rl:")
			return env{a: split{rc, l}, rc: rc, l: l, ns: nonce.NewRedis(rdb, "t:nonce:")}
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
	nonces := nonce.NewRedis(rdb, "t:nonce:")
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
			n := "rvn_fault-" + f.Name
			if err := nonces.Put(ctx, n, "b", time.Minute); err != nil {
				t.Fatal(err)
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
			start = time.Now()
			if b, err := a.Take(ctx, next(), nonces, n); !errors.Is(err, ErrUnavailable) || b != "" {
				t.Fatalf("Take with Redis %s: %q %v, want ErrUnavailable", f.Name, b, err)
			}
			if res, stored, err := a.Issue(ctx, next(), lots, nonces, n+"-issued", "b", time.Minute); !errors.Is(err, ErrUnavailable) || stored || res != nil {
				t.Fatalf("Issue with Redis %s: %+v %v %v, want ErrUnavailable", f.Name, res, stored, err)
			}
			if took := time.Since(start); took > timeout+2*time.Second {
				t.Errorf("Take with Redis %s took %s (timeout %s)", f.Name, took, timeout)
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

// TestTake: a reveal's admission claims its jti, then takes its nonce, on
// every admitter; one round trip on one Redis client.
func TestTake(t *testing.T) {
	ctx := context.Background()
	put := func(t *testing.T, e env, n string) {
		t.Helper()
		if err := e.ns.Put(ctx, n, "binding-"+n, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, e env)
	}{
		{"taken/claims-then-takes", func(t *testing.T, e env) {
			// The first run of a script on a server is two round trips
			// (EVALSHA answers NOSCRIPT, then EVAL): warm it, so the count
			// does not depend on which test ran it first on this server.
			put(t, e, "rvn_warm")
			if _, err := e.a.Take(ctx, claim("jti-take-00000warm"), e.ns, "rvn_warm"); err != nil {
				t.Fatal(err)
			}
			put(t, e, "rvn_1")
			var before int64
			if e.trips != nil {
				before = e.trips.Load()
			}
			if b, err := e.a.Take(ctx, claim("jti-take-000000001"), e.ns, "rvn_1"); err != nil || b != "binding-rvn_1" {
				t.Fatalf("Take = %q, %v", b, err)
			}
			if e.trips != nil && e.trips.Load()-before != 1 {
				t.Fatalf("Take made %d round trips, want 1", e.trips.Load()-before)
			}
			if fresh, err := e.rc.Claim(ctx, "gateway:jti-take-000000001", time.Now().Add(time.Minute)); err != nil || fresh {
				t.Fatalf("the replay cache does not hold the jti (%v)", err)
			}
			if _, err := e.ns.Take(ctx, "rvn_1"); !errors.Is(err, nonce.ErrUnknown) {
				t.Fatalf("the nonce is still there: %v", err)
			}
		}},
		{"409/replay-leaves-the-nonce", func(t *testing.T, e env) {
			put(t, e, "rvn_2")
			if fresh, err := e.rc.Claim(ctx, "gateway:jti-take-000000002", time.Now().Add(time.Minute)); err != nil || !fresh {
				t.Fatal(fresh, err)
			}
			if b, err := e.a.Take(ctx, claim("jti-take-000000002"), e.ns, "rvn_2"); !errors.Is(err, ErrReplay) || b != "" {
				t.Fatalf("replay: %q %v, want ErrReplay", b, err)
			}
			if b, err := e.ns.Take(ctx, "rvn_2"); err != nil || b != "binding-rvn_2" {
				t.Fatalf("a replay took the nonce: %q %v", b, err)
			}
		}},
		{"403/unknown-nonce-uses-the-jti", func(t *testing.T, e env) {
			c := claim("jti-take-000000003")
			if _, err := e.a.Take(ctx, c, e.ns, "rvn_never"); !errors.Is(err, nonce.ErrUnknown) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("unknown nonce: %v, want nonce.ErrUnknown", err)
			}
			put(t, e, "rvn_3")
			if _, err := e.a.Take(ctx, c, e.ns, "rvn_3"); !errors.Is(err, ErrReplay) {
				t.Fatalf("the jti again: %v, want ErrReplay", err)
			}
		}},
		{"taken/zero-claim", func(t *testing.T, e env) {
			put(t, e, "rvn_4")
			if b, err := e.a.Take(ctx, Claim{}, e.ns, "rvn_4"); err != nil || b != "binding-rvn_4" {
				t.Fatalf("Take = %q, %v", b, err)
			}
		}},
		{"exact/concurrent-one-jti", func(t *testing.T, e env) {
			put(t, e, "rvn_5")
			var got atomic.Int32
			var wg sync.WaitGroup
			for range 40 {
				wg.Go(func() {
					_, err := e.a.Take(ctx, claim("jti-take-race-0001"), e.ns, "rvn_5")
					switch {
					case err == nil:
						got.Add(1)
					case !errors.Is(err, ErrReplay):
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if got.Load() != 1 {
				t.Fatalf("%d of 40 requests with one jti took the nonce, want exactly 1", got.Load())
			}
		}},
		{"exact/concurrent-one-nonce", func(t *testing.T, e env) {
			put(t, e, "rvn_6")
			var got atomic.Int32
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Go(func() {
					_, err := e.a.Take(ctx, claim(fmt.Sprintf("jti-take-nonce-%04d", i)), e.ns, "rvn_6")
					switch {
					case err == nil:
						got.Add(1)
					case !errors.Is(err, nonce.ErrUnknown):
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if got.Load() != 1 {
				t.Fatalf("%d of 40 requests took one nonce, want exactly 1", got.Load())
			}
		}},
	}
	for _, impl := range impls() {
		for _, tt := range tests {
			t.Run(impl.name+"/"+tt.name, func(t *testing.T) { tt.run(t, impl.new(t)) })
		}
	}
	t.Run("503/no-replay-cache", func(t *testing.T) {
		ns := nonce.NewMemory(nil, 0)
		if err := ns.Put(ctx, "rvn_7", "b", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := New(nil, nil).Take(ctx, claim("jti-take-000000007"), ns, "rvn_7"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("a claim without a replay cache: %v, want ErrUnavailable", err)
		}
		if _, err := ns.Take(ctx, "rvn_7"); err != nil {
			t.Fatalf("the nonce was taken without a claim: %v", err)
		}
	})
}

// TestIssue: Issue claims the jti, then counts the budget, then writes
// the nonce, in one round trip on one Redis: a replay counts and writes
// nothing, a refused budget uses the jti and writes nothing, and a
// request without a claim only counts and writes.
func TestIssue(t *testing.T) {
	ctx := context.Background()
	budget := func(client string) []ratelimit.Take {
		return []ratelimit.Take{{Limit: perClient, Key: client, Stop: true}}
	}
	held := func(t *testing.T, e env, n string) string {
		t.Helper()
		b, err := e.ns.Take(ctx, n)
		if errors.Is(err, nonce.ErrUnknown) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		run  func(t *testing.T, e env)
	}{
		{"stored/claims-counts-writes", func(t *testing.T, e env) {
			// Warm the script (see taken/claims-then-takes), on a budget
			// of its own.
			if _, _, err := e.a.Issue(ctx, claim("jti-issue-0000warm"), budget("warm"), e.ns, "rvn_iwarm", "b", time.Minute); err != nil {
				t.Fatal(err)
			}
			var before int64
			if e.trips != nil {
				before = e.trips.Load()
			}
			res, stored, err := e.a.Issue(ctx, claim("jti-issue-00000001"), budget("c"), e.ns, "rvn_i1", "binding-1", time.Minute)
			if err != nil || !stored || len(res) != 1 || !res[0].Allowed || res[0].Remaining != 1 {
				t.Fatalf("Issue = %+v, %v, %v", res, stored, err)
			}
			if e.trips != nil && e.trips.Load()-before != 1 {
				t.Fatalf("Issue made %d round trips, want 1", e.trips.Load()-before)
			}
			if b := held(t, e, "rvn_i1"); b != "binding-1" {
				t.Fatalf("the nonce holds %q", b)
			}
			if fresh, err := e.rc.Claim(ctx, "gateway:jti-issue-00000001", time.Now().Add(time.Minute)); err != nil || fresh {
				t.Fatalf("the replay cache does not hold the jti (%v)", err)
			}
		}},
		{"409/replay-counts-and-writes-nothing", func(t *testing.T, e env) {
			if fresh, err := e.rc.Claim(ctx, "gateway:jti-issue-00000002", time.Now().Add(time.Minute)); err != nil || !fresh {
				t.Fatal(fresh, err)
			}
			if res, stored, err := e.a.Issue(ctx, claim("jti-issue-00000002"), budget("c"), e.ns, "rvn_i2", "b", time.Minute); !errors.Is(err, ErrReplay) || stored || res != nil {
				t.Fatalf("replay: %+v %v %v, want ErrReplay", res, stored, err)
			}
			if b := held(t, e, "rvn_i2"); b != "" {
				t.Fatal("a replay wrote its nonce")
			}
			if r, _ := e.l.Allow(ctx, "c", perClient); !r.Allowed || r.Remaining != 1 {
				t.Fatalf("the budget after the replay: %+v, want untouched (1 left after this check)", r)
			}
		}},
		{"429/refused-uses-the-jti-writes-nothing", func(t *testing.T, e env) {
			for i := range 2 {
				if _, stored, err := e.a.Issue(ctx, claim(fmt.Sprintf("jti-issue-use-%04d", i)), budget("c"), e.ns, fmt.Sprintf("rvn_u%d", i), "b", time.Minute); err != nil || !stored {
					t.Fatal(stored, err)
				}
			}
			c := claim("jti-issue-00000003")
			res, stored, err := e.a.Issue(ctx, c, budget("c"), e.ns, "rvn_i3", "b", time.Minute)
			if err != nil || stored || len(res) != 1 || res[0].Allowed {
				t.Fatalf("past the budget: %+v %v %v", res, stored, err)
			}
			if b := held(t, e, "rvn_i3"); b != "" {
				t.Fatal("a refused challenge wrote its nonce")
			}
			if _, _, err := e.a.Issue(ctx, c, budget("other"), e.ns, "rvn_i3", "b", time.Minute); !errors.Is(err, ErrReplay) {
				t.Fatalf("the refused request's jti again: %v, want ErrReplay", err)
			}
		}},
		{"stored/zero-claim-no-takes", func(t *testing.T, e env) {
			if res, stored, err := e.a.Issue(ctx, Claim{}, nil, e.ns, "rvn_i4", "binding-4", time.Minute); err != nil || !stored || len(res) != 0 {
				t.Fatalf("Issue = %+v %v %v", res, stored, err)
			}
			if b := held(t, e, "rvn_i4"); b != "binding-4" {
				t.Fatalf("the nonce holds %q", b)
			}
		}},
		{"503/nonce-held-already", func(t *testing.T, e env) {
			if err := e.ns.Put(ctx, "rvn_i5", "first", time.Minute); err != nil {
				t.Fatal(err)
			}
			if _, stored, err := e.a.Issue(ctx, claim("jti-issue-00000005"), nil, e.ns, "rvn_i5", "second", time.Minute); !errors.Is(err, nonce.ErrUnavailable) || stored {
				t.Fatalf("a nonce held already: %v %v, want nonce.ErrUnavailable", stored, err)
			}
			if b := held(t, e, "rvn_i5"); b != "first" {
				t.Fatalf("the nonce holds %q, want the first binding", b)
			}
		}},
	}
	for _, impl := range impls() {
		for _, tt := range tests {
			t.Run(impl.name+"/"+tt.name, func(t *testing.T) { tt.run(t, impl.new(t)) })
		}
	}
	t.Run("503/no-replay-cache", func(t *testing.T) {
		ns := nonce.NewMemory(nil, 0)
		if _, stored, err := New(nil, nil).Issue(ctx, claim("jti-issue-00000006"), nil, ns, "rvn_i6", "b", time.Minute); !errors.Is(err, ErrUnavailable) || stored {
			t.Fatalf("a claim without a replay cache: %v, want ErrUnavailable", err)
		}
		if ns.Len() != 0 {
			t.Fatal("a nonce was written without a claim")
		}
	})
}

// TestClaimOnly: a request refused before its admission has its jti
// claimed and nothing counted; its replay is ErrReplay; a zero Claim (the
// caller claimed it) costs no round trip.
func TestClaimOnly(t *testing.T) {
	ctx := context.Background()
	for _, impl := range impls() {
		t.Run(impl.name, func(t *testing.T) {
			e := impl.new(t)
			if e.trips != nil {
				before := e.trips.Load()
				if err := ClaimOnly(ctx, e.a, Claim{}); err != nil {
					t.Fatal(err)
				}
				if n := e.trips.Load() - before; n != 0 {
					t.Fatalf("a zero Claim made %d round trips, want none", n)
				}
			}
			c := claim("jti-claim-only-0001")
			if err := ClaimOnly(ctx, e.a, c); err != nil {
				t.Fatalf("first claim: %v", err)
			}
			if err := ClaimOnly(ctx, e.a, c); !errors.Is(err, ErrReplay) {
				t.Fatalf("the same jti again: %v, want ErrReplay", err)
			}
			if r, _ := e.l.Allow(ctx, "c", perClient); !r.Allowed || r.Remaining != perClient.Burst-1 {
				t.Fatalf("per-client limit after ClaimOnly: %+v, want nothing counted before", r)
			}
		})
	}
}
