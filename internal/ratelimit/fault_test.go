package ratelimit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/testenv"
)

// TestRedisFaultsFailClosed: whatever way Redis fails (full, silent, slow,
// restarted), Allow (and a batch) refuses with ErrUnavailable within the client's timeout
// and never lets a request through; when Redis is back the same limiter
// counts again, with no restart of the service.
func TestRedisFaultsFailClosed(t *testing.T) {
	const timeout = 200 * time.Millisecond
	fr := testenv.NewFaultyRedis(t)
	rdb, err := redisx.New(redisx.Config{Addrs: fr.Addr, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	lim := ratelimit.NewRedis(rdb, "t:rl:")
	l := ratelimit.Limit{Name: "fault", Rate: 1000, Period: time.Second, Burst: 1000}
	ctx := context.Background()
	if res, err := lim.Allow(ctx, "k", l); err != nil || !res.Allowed {
		t.Fatalf("before the fault: %+v %v", res, err)
	}
	for _, f := range fr.Faults(10 * timeout) {
		t.Run("503/"+f.Name, func(t *testing.T) {
			f.Inject(t)
			start := time.Now()
			res, err := lim.Allow(ctx, "k", l)
			took := time.Since(start)
			if !errors.Is(err, ratelimit.ErrUnavailable) || res.Allowed {
				t.Fatalf("Allow with Redis %s: %+v %v, want ErrUnavailable and not allowed", f.Name, res, err)
			}
			if took > timeout+2*time.Second {
				t.Errorf("Allow with Redis %s took %s (timeout %s)", f.Name, took, timeout)
			}
			t.Logf("refused after %s: %v", took.Round(time.Millisecond), err)
			// A batch (one script, with a once key) fails the same way.
			start = time.Now()
			bres, err := lim.AllowBatchOnce(ctx, ratelimit.Once{Key: "t:jti:" + f.Name, TTL: time.Minute}, []ratelimit.Take{{Limit: l, Key: "k", Stop: true}})
			took = time.Since(start)
			if !errors.Is(err, ratelimit.ErrUnavailable) || bres != nil {
				t.Fatalf("AllowBatchOnce with Redis %s: %+v %v, want ErrUnavailable and no result", f.Name, bres, err)
			}
			if took > timeout+2*time.Second {
				t.Errorf("AllowBatchOnce with Redis %s took %s (timeout %s)", f.Name, took, timeout)
			}
			f.Heal(t)
			start = time.Now()
			for {
				res, err := lim.Allow(ctx, "k", l)
				if err == nil && res.Allowed {
					break
				}
				if time.Since(start) > 10*time.Second {
					t.Fatalf("limiter still failing 10s after Redis %s ended: %v", f.Name, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("limiter counting again %s after Redis %s ended", time.Since(start).Round(time.Millisecond), f.Name)
		})
	}
}
