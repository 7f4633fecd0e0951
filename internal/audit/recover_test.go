package audit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAfter stands in for time.After: the writer's recovery schedule asks
// it for a timer, and the test fires the timer when it chooses.
type fakeAfter struct {
	mu      sync.Mutex
	pending []chan time.Time
	asked   chan time.Duration
}

func newFakeAfter() *fakeAfter { return &fakeAfter{asked: make(chan time.Duration, 64)} }

func (a *fakeAfter) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	a.mu.Lock()
	a.pending = append(a.pending, ch)
	a.mu.Unlock()
	a.asked <- d
	return ch
}

// next waits for the writer to schedule a try and returns its delay.
func (a *fakeAfter) next(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-a.asked:
		return d
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("the log never scheduled a recovery try")
		return 0
	}
}

// fire fires the newest timer.
func (a *fakeAfter) fire() {
	a.mu.Lock()
	ch := a.pending[len(a.pending)-1]
	a.mu.Unlock()
	ch <- time.Now()
}

// captureLog is a logger whose output a test can read.
type captureLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *captureLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *captureLog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func (c *captureLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(c, nil)) }

func eventsOfLog(t *testing.T, path string) []Event {
	t.Helper()
	var evs []Event
	if _, err := walkSegments(path, func(e *Event) bool { evs = append(evs, *e); return true }); err != nil {
		t.Fatalf("chain after recovery: %v", err)
	}
	return evs
}

func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func TestRecoversOnItsOwnAfterTheDiskHeals(t *testing.T) {
	tests := []struct {
		name    string
		fault   func(*faults, bool)
		class   string
		discard bool // bytes of the failed batch reached the file
	}{
		{"recovered/disk-full-partial-write", func(f *faults, on bool) { f.partial.Store(true); f.failWrite.Store(on) }, "no_space", true},
		{"recovered/disk-full-nothing-written", func(f *faults, on bool) { f.failWrite.Store(on) }, "no_space", false},
		{"recovered/fsync-io-error", func(f *faults, on bool) { f.failSync.Store(on) }, "io_error", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ff, fa, logs := &faults{}, newFakeAfter(), &captureLog{}
			l, path := openLog(t, Options{WrapFile: ff.wrap, After: fa.After, Logger: logs.logger(), SpoolInterval: -1})
			before := appendN(t, l, 3)
			tt.fault(ff, true)
			ctx := context.Background()
			if _, err := l.Append(ctx, ev(50)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Append on a failing disk = %v, want ErrUnavailable", err)
			}

			// While the disk stays bad every try fails and the next one
			// waits twice as long.
			if d := fa.next(t); d != 5*time.Second {
				t.Fatalf("first try after %v, want 5s", d)
			}
			fa.fire()
			if d := fa.next(t); d != 10*time.Second {
				t.Fatalf("second try after %v, want 10s (backoff)", d)
			}
			if err := l.Healthy(); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnrecoverable) {
				t.Fatalf("Healthy while the disk is bad = %v", err)
			}
			if _, err := l.Append(ctx, ev(51)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Append while failed = %v, want ErrUnavailable", err)
			}

			// The disk heals; the next scheduled try recovers.
			tt.fault(ff, false)
			drain(l.Committed())
			fa.fire()
			<-l.Committed() // the scheduled try's own batch: it recovered
			// Served by the writer after that try has finished its books.
			if err := l.Recover(ctx); err != nil {
				t.Fatalf("Recover after the scheduled recovery = %v", err)
			}
			if err := l.Healthy(); err != nil {
				t.Fatalf("Healthy after recovery = %v", err)
			}
			if st := l.Stats(); st.Failed || st.FailClass != "" || st.Recoveries != 1 {
				t.Fatalf("Stats after recovery: %+v", st)
			}
			after, err := l.Append(ctx, ev(60))
			if err != nil {
				t.Fatalf("Append after recovery: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}

			evs := eventsOfLog(t, path)
			if evs[2].Hash != before[2].Hash {
				t.Fatal("the synced prefix changed")
			}
			rec, alarm := evs[3], evs[4]
			if rec.Event != EventAuditRecovered || rec.Code != tt.class || rec.Prev != before[2].Hash {
				t.Fatalf("record after the synced prefix: %+v, want %s (%s) chained to seq 3", rec, EventAuditRecovered, tt.class)
			}
			if !strings.Contains(rec.Reason, "outage_start=") || !strings.Contains(rec.Reason, "outage_end=") || strings.Contains(rec.Reason, "injected") {
				t.Fatalf("recovered reason %q: want the outage's times and no error text", rec.Reason)
			}
			if alarm.Event != EventAlarm || !strings.Contains(alarm.Reason, "recovered") {
				t.Fatalf("no alarm after the recovery: %+v", alarm)
			}
			if !strings.Contains(logs.String(), "ALARM: audit log recovered") {
				t.Fatalf("no ALARM log line:\n%s", logs.String())
			}
			if last := evs[len(evs)-1]; last.Seq != after.Seq || after.Seq != 6 {
				t.Fatalf("append after recovery has seq %d, want 6 (nothing refused went in)", after.Seq)
			}
			// Each try sets aside what the failed writes left (the refused
			// batch, then a failed try's own records); the record names
			// the last.
			q, _ := filepath.Glob(path + ".quarantine-*")
			if tt.discard {
				if len(q) == 0 || rec.Resource != filepath.Base(q[len(q)-1]) {
					t.Fatalf("unsynced bytes: quarantine %v, record %+v", q, rec)
				}
				b, _ := os.ReadFile(q[len(q)-1])
				if len(b) == 0 || !strings.Contains(rec.Reason, "discarded_bytes="+strconv.Itoa(len(b))) {
					t.Fatalf("record %q does not count the %d bytes set aside", rec.Reason, len(b))
				}
				first, _ := os.ReadFile(q[0])
				if !bytes.HasPrefix(first, []byte(`{"seq":4,`)) {
					t.Fatalf("first quarantine holds %q, want the refused batch", first)
				}
			} else if len(q) != 0 || rec.Resource != "" || !strings.Contains(rec.Reason, "discarded_bytes=0") {
				t.Fatalf("nothing to set aside, yet quarantine %v, record %+v", q, rec)
			}
		})
	}
}

func TestRecoverNowByHand(t *testing.T) {
	ff := &faults{}
	l, _ := openLog(t, Options{WrapFile: ff.wrap, RecoverInterval: -1, SpoolInterval: -1})
	appendN(t, l, 2)
	ctx := context.Background()
	if err := l.Recover(ctx); err != nil {
		t.Fatalf("Recover of a healthy log = %v", err)
	}
	ff.failWrite.Store(true)
	_, _ = l.Append(ctx, ev(9))
	if err := l.Recover(ctx); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnrecoverable) {
		t.Fatalf("Recover while the disk is bad = %v, want a retrying failure", err)
	}
	ff.failWrite.Store(false)
	if err := l.Recover(ctx); err != nil {
		t.Fatalf("Recover after the disk healed = %v", err)
	}
	if e, err := l.Append(ctx, ev(10)); err != nil || e.Seq != 5 {
		t.Fatalf("Append after Recover = %+v, %v; want seq 5 (recovered, alarm, this)", e, err)
	}
}

func TestRecoveryGivesUpWhenTheTailDoesNotVerify(t *testing.T) {
	tests := []struct {
		name   string
		mangle func(t *testing.T, path string)
		class  string
	}{
		{"unrecoverable/synced-line-edited", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			_ = os.WriteFile(path, bytes.Replace(b, []byte("tok_1"), []byte("tok_7"), 1), 0o600)
		}, "tail_mismatch"},
		{"unrecoverable/synced-lines-cut", func(t *testing.T, path string) {
			lines := readLines(t, path)
			if err := os.Truncate(path, int64(len(join(lines[:2])))); err != nil {
				t.Fatal(err)
			}
		}, "tail_mismatch"},
		{"unrecoverable/file-replaced", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			_ = os.Remove(path)
			_ = os.WriteFile(path, b, 0o600)
		}, "file_replaced"},
		{"unrecoverable/file-removed", func(t *testing.T, path string) { _ = os.Remove(path) }, "file_replaced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ff := &faults{}
			l, path := openLog(t, Options{WrapFile: ff.wrap, RecoverInterval: -1, SpoolInterval: -1})
			appendN(t, l, 3)
			ff.failSync.Store(true)
			ctx := context.Background()
			_, _ = l.Append(ctx, ev(9))
			ff.failSync.Store(false)
			tt.mangle(t, path)
			mangled, _ := os.ReadFile(path)

			err := l.Recover(ctx)
			var he *HealthError
			if !errors.As(err, &he) || !he.Permanent || he.Class != tt.class || !errors.Is(err, ErrUnrecoverable) || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Recover = %v, want a permanent *HealthError of class %s", err, tt.class)
			}
			if he.Reason == "" {
				t.Fatal("no reason given")
			}
			if !errors.Is(l.Healthy(), ErrUnrecoverable) || !l.Stats().Failed {
				t.Fatalf("Healthy = %v after giving up", l.Healthy())
			}
			if _, err := l.Append(ctx, ev(10)); !errors.Is(err, ErrUnrecoverable) {
				t.Fatalf("Append after giving up = %v, want ErrUnrecoverable", err)
			}
			if err := l.Recover(ctx); !errors.Is(err, ErrUnrecoverable) {
				t.Fatalf("second Recover = %v: a log that gave up must stay failed", err)
			}
			if b, _ := os.ReadFile(path); !bytes.Equal(b, mangled) {
				t.Fatal("giving up changed the file")
			}
		})
	}
}

func TestOpenSetsAsideATornLastLine(t *testing.T) {
	l, path := openLog(t, Options{})
	appendN(t, l, 3)
	_ = l.Close()
	intact, _ := os.ReadFile(path)
	lines := readLines(t, path)
	tests := []struct {
		name string
		torn []byte
	}{
		{"recovered/cut-inside-a-line", lines[1][:40]},
		{"recovered/zeros-after-power-loss", make([]byte, 300)},
		{"recovered/garbage-line-with-newline", []byte("{\"seq\":4,\"time\":\"20\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(p, append(bytes.Clone(intact), tt.torn...), 0o600); err != nil {
				t.Fatal(err)
			}
			logs := &captureLog{}
			l, err := Open(p, Options{Logger: logs.logger(), SpoolInterval: -1})
			if err != nil {
				t.Fatalf("Open = %v, want the torn line set aside", err)
			}
			rep, ok := l.Repaired()
			if !ok || rep.Line != 4 || rep.Bytes != int64(len(tt.torn)) || rep.Kept.LastSeq != 3 {
				t.Fatalf("Repaired = %+v, %v", rep, ok)
			}
			e, err := l.Append(context.Background(), ev(7))
			if err != nil || e.Seq != 6 {
				t.Fatalf("Append after the repair = %+v, %v; want seq 6", e, err)
			}
			_ = l.Close()
			if q, _ := os.ReadFile(rep.Quarantine); !bytes.Equal(q, tt.torn) {
				t.Fatalf("quarantine holds %q, want the torn bytes", q)
			}
			if filepath.Dir(rep.Quarantine) != filepath.Dir(p) || !strings.HasPrefix(filepath.Base(rep.Quarantine), "audit.log.quarantine-") {
				t.Fatalf("quarantine file %s is not beside the log", rep.Quarantine)
			}
			evs := eventsOfLog(t, p)
			if len(evs) != 6 || evs[2].Hash != lastHash(t, intact) {
				t.Fatalf("%d events; the verified prefix must be kept as it was", len(evs))
			}
			rec, alarm := evs[3], evs[4]
			if rec.Event != EventAuditRecovered || rec.Code != "torn_tail" || rec.Resource != filepath.Base(rep.Quarantine) || rec.Reason != "torn_line=4 discarded_bytes="+strconv.Itoa(len(tt.torn)) {
				t.Fatalf("recovered record: %+v", rec)
			}
			if alarm.Event != EventAlarm || !strings.Contains(logs.String(), "ALARM: audit log: a torn last line") {
				t.Fatalf("no alarm: %+v\n%s", alarm, logs.String())
			}
		})
	}
}

func lastHash(t *testing.T, b []byte) string {
	t.Helper()
	rep, err := Verify(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return rep.Head
}
