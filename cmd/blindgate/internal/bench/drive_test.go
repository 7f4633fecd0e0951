package bench

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// slowDriver answers each request after a fixed delay.
type slowDriver struct{ delay time.Duration }

func (d slowDriver) prepare(context.Context, int) error { return nil }
func (d slowDriver) send(ctx context.Context) error {
	sleepCtx(ctx, d.delay)
	return nil
}
func (slowDriver) inline() int64 { return 0 }
func (slowDriver) closeIdle()    {}

// A window shorter than one request would hold none; MinRequests stretches
// it until it holds enough, and its elapsed time says how long it ran.
func TestDriveMinRequests(t *testing.T) {
	d := slowDriver{delay: 30 * time.Millisecond}
	w := drive(context.Background(), d, 1, 0, 0, 10*time.Millisecond, 3, func(int) {})
	if w.ok < 3 {
		t.Fatalf("%d requests in the window (elapsed %s), want at least 3", w.ok, w.elapsed)
	}
	// One worker, 30 ms a request: three answers take at least 60 ms after
	// the first, so the window cannot have kept its nominal 10 ms.
	if w.elapsed < 60*time.Millisecond {
		t.Fatalf("elapsed %s: the window was not stretched", w.elapsed)
	}
}

// checkingDriver answers at once and leaves a check that fails for every
// bad-th answer and records whether the window was still open when it ran.
type checkingDriver struct {
	slowDriver
	n, bad     atomic.Int64
	closed     *atomic.Bool
	inWindowAt atomic.Int64 // checks run before the window's last mark
}

func (d *checkingDriver) sendDeferred(ctx context.Context) (func() error, error) {
	sleepCtx(ctx, d.delay)
	i := d.n.Add(1)
	return func() error {
		if !d.closed.Load() {
			d.inWindowAt.Add(1)
		}
		if i%3 == 0 {
			d.bad.Add(1)
			return errBadAnswer
		}
		return nil
	}, nil
}

// A deferred sender's answers are checked after the window's last mark, so
// the client's work is not in its CPU figures; a failed check still counts
// as an error of that window, with its kind.
func TestDriveDefersChecks(t *testing.T) {
	var closed atomic.Bool
	d := &checkingDriver{slowDriver: slowDriver{delay: time.Millisecond}, closed: &closed}
	w := drive(context.Background(), d, 4, 0, 5*time.Millisecond, 50*time.Millisecond, 0, func(edge int) {
		if edge == 1 {
			closed.Store(true)
		}
	})
	if n := d.inWindowAt.Load(); n != 0 {
		t.Fatalf("%d checks ran before the window closed", n)
	}
	if w.ok == 0 || w.failed == 0 {
		t.Fatalf("ok %d, failed %d: want both", w.ok, w.failed)
	}
	if w.failed != d.bad.Load() {
		t.Fatalf("failed %d, want the %d checks that failed", w.failed, d.bad.Load())
	}
	if w.errKinds["bad_answer"] != w.failed {
		t.Fatalf("error kinds %v, want %d bad_answer", w.errKinds, w.failed)
	}
	if got := w.lat.n; int64(got) != w.ok {
		t.Fatalf("latency histogram holds %d answers, want the %d that passed", got, w.ok)
	}
}
