package replay

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/testenv"
)

// TestRedisFaultsNeverFresh: whatever way Redis fails (full, silent, slow,
// restarted), Claim answers ErrUnavailable within the client's timeout and
// never "fresh" (the verifier then refuses 503); when Redis is back the
// same cache claims again, with no restart of the service.
func TestRedisFaultsNeverFresh(t *testing.T) {
	const timeout = 200 * time.Millisecond
	fr := testenv.NewFaultyRedis(t)
	rdb, err := redisx.New(redisx.Config{Addrs: fr.Addr, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	c := NewRedis(rdb, "t:jti:")
	ctx := context.Background()
	n := 0
	jti := func() string { n++; return fmt.Sprintf("jti-%d", n) }
	if fresh, err := c.Claim(ctx, jti(), time.Now().Add(time.Minute)); err != nil || !fresh {
		t.Fatalf("before the fault: %v %v", fresh, err)
	}
	for _, f := range fr.Faults(10 * timeout) {
		t.Run("503/"+f.Name, func(t *testing.T) {
			// Claimed before the fault: must stay claimed after it.
			before := jti()
			if fresh, err := c.Claim(ctx, before, time.Now().Add(time.Minute)); err != nil || !fresh {
				t.Fatalf("claim before the fault: %v %v", fresh, err)
			}
			f.Inject(t)
			start := time.Now()
			fresh, err := c.Claim(ctx, jti(), time.Now().Add(time.Minute))
			took := time.Since(start)
			if !errors.Is(err, ErrUnavailable) || fresh {
				t.Fatalf("Claim with Redis %s: fresh %v, %v; want ErrUnavailable and not fresh", f.Name, fresh, err)
			}
			if took > timeout+2*time.Second {
				t.Errorf("Claim with Redis %s took %s (timeout %s)", f.Name, took, timeout)
			}
			f.Heal(t)
			start = time.Now()
			for {
				fresh, err := c.Claim(ctx, jti(), time.Now().Add(time.Minute))
				if err == nil && fresh {
					break
				}
				if time.Since(start) > 10*time.Second {
					t.Fatalf("replay cache still failing 10s after Redis %s ended: %v", f.Name, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("claiming again %s after Redis %s ended", time.Since(start).Round(time.Millisecond), f.Name)
			if fresh, err := c.Claim(ctx, before, time.Now().Add(time.Minute)); err != nil || fresh {
				t.Fatalf("a jti claimed before Redis was %s is fresh again after (%v): a replay would pass", f.Name, err)
			}
		})
	}
}
