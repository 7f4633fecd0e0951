package redisx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/testenv"
)

// TestLock: one holder at a time; only the holder extends or frees it; a
// lapsed lease is reported lost and can be taken by another.
func TestLock(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	a, err := redisx.TryLock(ctx, rdb, "lock:x", time.Minute)
	if err != nil || a == nil {
		t.Fatalf("first TryLock: %v %v", a, err)
	}
	if b, err := redisx.TryLock(ctx, rdb, "lock:x", time.Minute); err != nil || b != nil {
		t.Fatalf("second TryLock while held: %v %v", b, err)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatalf("refresh by holder: %v", err)
	}
	// The lease lapses (simulated: the key is gone); another takes it.
	if err := rdb.Del(ctx, "lock:x").Err(); err != nil {
		t.Fatal(err)
	}
	b, err := redisx.TryLock(ctx, rdb, "lock:x", time.Minute)
	if err != nil || b == nil {
		t.Fatalf("TryLock after lapse: %v %v", b, err)
	}
	if err := a.Refresh(ctx); !errors.Is(err, redisx.ErrLockLost) {
		t.Fatalf("refresh of a lapsed lease: %v, want ErrLockLost", err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, "lock:x").Result(); n != 1 {
		t.Fatal("a former holder's Release freed the new holder's lease")
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := redisx.TryLock(ctx, rdb, "lock:x", time.Minute); err != nil || c == nil {
		t.Fatalf("TryLock after release: %v %v", c, err)
	}
}
