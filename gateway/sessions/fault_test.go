package sessions

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/testenv"
)

// TestRedisFaultsFailClosed: with Redis full, silent, slow or restarted,
// every write of the session store (create, the submission's claim,
// complete) fails within the client's timeout with an error that is none of
// the domain's verdicts (the HTTP layer answers 503 unavailable), never a
// success; once Redis is back the same store works, and the sessions
// stored before the fault are still there.
func TestRedisFaultsFailClosed(t *testing.T) {
	const timeout = 200 * time.Millisecond
	fr := testenv.NewFaultyRedis(t)
	rdb, err := redisx.New(redisx.Config{Addrs: fr.Addr, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	s := NewRedis(rdb, "t")
	ctx := context.Background()
	verdicts := []error{ErrNotFound, ErrExpired, ErrCompleted, ErrBusy, ErrTooManyAttempts, ErrInvalid}
	for _, f := range fr.Faults(10 * timeout) {
		t.Run("503/"+f.Name, func(t *testing.T) {
			before, err := s.Create(ctx, valid())
			if err != nil {
				t.Fatal(err)
			}
			f.Inject(t)
			for _, op := range []struct {
				name string
				do   func() error
			}{
				{"create", func() error { _, err := s.Create(ctx, valid()); return err }},
				{"attempt", func() error { _, err := s.Attempt(ctx, before.ID, "claim-1"); return err }},
				{"complete", func() error { return s.Complete(ctx, before.ID, "tok_1") }},
			} {
				start := time.Now()
				err := op.do()
				took := time.Since(start)
				if err == nil {
					t.Fatalf("%s succeeded with Redis %s", op.name, f.Name)
				}
				for _, v := range verdicts {
					if errors.Is(err, v) {
						t.Fatalf("%s with Redis %s: %v, a verdict about the session rather than an outage", op.name, f.Name, err)
					}
				}
				if took > timeout+2*time.Second {
					t.Errorf("%s with Redis %s took %s (timeout %s)", op.name, f.Name, took, timeout)
				}
			}
			f.Heal(t)
			start := time.Now()
			for {
				fresh, err := s.Create(ctx, valid())
				if err == nil {
					if _, err = s.Attempt(ctx, fresh.ID, "claim-2"); err == nil {
						break
					}
				}
				if time.Since(start) > 10*time.Second {
					t.Fatalf("session store still failing 10s after Redis %s ended: %v", f.Name, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("session store working again %s after Redis %s ended", time.Since(start).Round(time.Millisecond), f.Name)
			// Stored before the fault, still there. (A write that timed out
			// may still land when a slow Redis catches up: the claim then
			// holds the session busy until it lapses, DefaultClaimTTL.)
			if _, err := s.Get(ctx, before.ID); err != nil {
				t.Fatalf("session stored before Redis was %s: %v", f.Name, err)
			}
		})
	}
}
