package bench

import (
	"context"
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
