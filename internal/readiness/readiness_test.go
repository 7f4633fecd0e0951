package readiness_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blindgate/blindgate/internal/readiness"
)

// clock is an injectable clock for the cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// probe is a switchable probe that counts its calls.
type probe struct {
	calls atomic.Int32
	err   atomic.Pointer[error]
}

func (p *probe) set(err error) { p.err.Store(&err) }

func (p *probe) Probe(context.Context) error {
	p.calls.Add(1)
	if e := p.err.Load(); e != nil {
		return *e
	}
	return nil
}

func TestReport(t *testing.T) {
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	release := make(chan struct{})
	defer close(release)
	deaf := func(context.Context) error { <-release; return nil } // ignores its context
	tests := []struct {
		name    string
		checks  []readiness.Check
		ready   bool
		failing []string
		status  map[string]string
	}{
		{"200/all-ok", []readiness.Check{
			{Name: "audit", Probe: func(context.Context) error { return nil }, Local: true},
			{Name: "redis", Probe: func(context.Context) error { return nil }},
		}, true, []string{}, map[string]string{"audit": "ok", "redis": "ok"}},
		{"503/one-failing-named", []readiness.Check{
			{Name: "audit", Probe: func(context.Context) error { return errors.New("disk full at /var/x") }, Local: true},
			{Name: "redis", Probe: func(context.Context) error { return nil }},
		}, false, []string{"audit"}, map[string]string{"audit": "failing", "redis": "ok"}},
		{"503/failure-word", []readiness.Check{
			{Name: "keyservice", Probe: func(context.Context) error { return readiness.Fail("sealed", nil) }},
		}, false, []string{"keyservice"}, map[string]string{"keyservice": "sealed"}},
		{"503/hanging-probe-times-out", []readiness.Check{
			{Name: "redis", Probe: hang},
			{Name: "seal", Probe: func(context.Context) error { return nil }, Local: true},
		}, false, []string{"redis"}, map[string]string{"redis": "timeout", "seal": "ok"}},
		{"503/deaf-probe-abandoned", []readiness.Check{
			{Name: "redis", Probe: deaf},
		}, false, []string{"redis"}, map[string]string{"redis": "timeout"}},
		{"503/several-sorted", []readiness.Check{
			{Name: "redis", Probe: func(context.Context) error { return errors.New("x") }},
			{Name: "audit", Probe: func(context.Context) error { return errors.New("y") }, Local: true},
		}, false, []string{"audit", "redis"}, map[string]string{"audit": "failing", "redis": "failing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := readiness.New(readiness.Options{Timeout: 50 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}, tc.checks...)
			r := c.Report(context.Background())
			if r.Ready != tc.ready || !slices.Equal(r.Failing, tc.failing) {
				t.Fatalf("report %+v, want ready %v failing %v", r, tc.ready, tc.failing)
			}
			for name, want := range tc.status {
				if r.Checks[name] != want {
					t.Errorf("check %s: %q, want %q", name, r.Checks[name], want)
				}
			}
			for _, st := range r.Checks {
				if strings.Contains(st, "/var") || strings.Contains(st, " ") {
					t.Errorf("status %q carries free text", st)
				}
			}
		})
	}
}

// TestRemoteCachedLocalNot: a load balancer polling in a loop reaches Redis
// once per TTL, while a local check (the seal, the audit flag) is read on
// every poll, so a change there shows at once.
func TestRemoteCachedLocalNot(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	var remote, local probe
	c := readiness.New(readiness.Options{TTL: time.Second, Now: clk.Now, Log: slog.New(slog.DiscardHandler)},
		readiness.Check{Name: "redis", Probe: remote.Probe},
		readiness.Check{Name: "audit", Probe: local.Probe, Local: true})
	for range 100 {
		c.Report(context.Background())
	}
	if n := remote.calls.Load(); n != 1 {
		t.Fatalf("remote probe ran %d times in one TTL, want 1", n)
	}
	if n := local.calls.Load(); n != 100 {
		t.Fatalf("local probe ran %d times for 100 reports", n)
	}
	local.set(errors.New("failed"))
	if r := c.Report(context.Background()); r.Ready || r.Checks["audit"] != "failing" {
		t.Fatalf("local failure not shown at once: %+v", r)
	}
	remote.set(errors.New("down"))
	if r := c.Report(context.Background()); r.Checks["redis"] != "ok" {
		t.Fatalf("remote result within TTL not the cached one: %+v", r)
	}
	clk.Add(time.Second)
	if r := c.Report(context.Background()); r.Checks["redis"] != "failing" {
		t.Fatalf("remote result after TTL not refreshed: %+v", r)
	}
	if n := remote.calls.Load(); n != 2 {
		t.Fatalf("remote probe ran %d times, want 2", n)
	}
}

// TestConcurrentPollsShareOneRun: callers arriving while a run is in
// progress wait for it rather than each probing the dependency.
func TestConcurrentPollsShareOneRun(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	c := readiness.New(readiness.Options{Timeout: 10 * time.Second, Log: slog.New(slog.DiscardHandler)},
		readiness.Check{Name: "keyservice", Probe: func(ctx context.Context) error {
			calls.Add(1)
			<-release
			return nil
		}})
	var wg sync.WaitGroup
	reports := make(chan readiness.Report, 20)
	for range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); reports <- c.Report(context.Background()) }()
	}
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(reports)
	for r := range reports {
		if !r.Ready {
			t.Fatalf("report %+v", r)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("20 concurrent polls probed %d times, want 1", n)
	}
}

// TestCallerGivingUpDoesNotPoisonCache: a poller whose context ends gets
// "timeout", and the run it started still fills the cache for the next.
func TestCallerGivingUpDoesNotPoisonCache(t *testing.T) {
	release := make(chan struct{})
	c := readiness.New(readiness.Options{Timeout: 10 * time.Second, TTL: time.Hour, Log: slog.New(slog.DiscardHandler)},
		readiness.Check{Name: "redis", Probe: func(ctx context.Context) error { <-release; return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := c.Report(ctx); r.Ready || r.Checks["redis"] != "timeout" {
		t.Fatalf("cancelled poll: %+v", r)
	}
	close(release)
	if r := c.Report(context.Background()); !r.Ready {
		t.Fatalf("next poll: %+v", r)
	}
}

// TestTransitionsLoggedOnce: a failing check is logged when it starts
// failing and when it recovers, not on every poll in between.
func TestTransitionsLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	var p probe
	c := readiness.New(readiness.Options{Log: slog.New(slog.NewTextHandler(&buf, nil))},
		readiness.Check{Name: "audit", Probe: p.Probe, Local: true})
	c.Report(context.Background())
	p.set(errors.New("fsync audit.log: no space left on device"))
	for range 5 {
		c.Report(context.Background())
	}
	p.set(nil)
	for range 5 {
		c.Report(context.Background())
	}
	out := buf.String()
	if n := strings.Count(out, "check failing"); n != 1 {
		t.Errorf("failing logged %d times, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "no space left on device") {
		t.Errorf("the cause is not in the log:\n%s", out)
	}
	if n := strings.Count(out, "check recovered"); n != 1 {
		t.Errorf("recovery logged %d times, want 1:\n%s", n, out)
	}
}

func TestCollector(t *testing.T) {
	var p probe
	c := readiness.New(readiness.Options{Log: slog.New(slog.DiscardHandler)},
		readiness.Check{Name: "audit", Probe: p.Probe, Local: true},
		readiness.Check{Name: "seal", Probe: func(context.Context) error { return nil }, Local: true})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector("blindgate_test_ready"))
	p.set(errors.New("failed"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "blindgate_test_ready" || mf.GetType().String() != "GAUGE" {
			t.Fatalf("metric %s %s", mf.GetName(), mf.GetType())
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetName()+"="+m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{"check=audit": 0, "check=seal": 1}
	if len(got) != len(want) || got["check=audit"] != 0 || got["check=seal"] != 1 {
		t.Fatalf("gauges %v, want %v", got, want)
	}
}

func TestNewRefusesBadNames(t *testing.T) {
	for _, name := range []string{"", "Redis", "has space", "a-b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("name %q accepted", name)
				}
			}()
			readiness.New(readiness.Options{}, readiness.Check{Name: name, Probe: func(context.Context) error { return nil }})
		}()
	}
}
