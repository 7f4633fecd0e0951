package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/testenv"
)

func openLog(t testing.TB, opts Options) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, path
}

func ev(i int) Event {
	return Event{
		Event:    EventReveal,
		Client:   "backoffice",
		Actor:    fmt.Sprintf("op_%d", i%3),
		Origin:   "203.0.113.7",
		Outcome:  OutcomeSuccess,
		Resource: fmt.Sprintf("tok_%d", i),
		Kid:      "kek-1",
		Reason:   "chargeback <dispute> & \"refund\"\n",
	}
}

func appendN(t testing.TB, l *Log, n int) []Event {
	t.Helper()
	out := make([]Event, 0, n)
	for i := range n {
		e, err := l.Append(context.Background(), ev(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out = append(out, e)
	}
	return out
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func join(lines [][]byte) []byte { return bytes.Join(lines, nil) }

func TestAppendVerify(t *testing.T) {
	l, path := openLog(t, Options{})
	got := appendN(t, l, 5)
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d: seq %d", i, e.Seq)
		}
		if e.Time.IsZero() || e.Time.Location() != time.UTC {
			t.Fatalf("event %d: time %v not stamped in UTC", i, e.Time)
		}
	}
	if got[0].Prev != Genesis() || got[1].Prev != got[0].Hash {
		t.Fatalf("chain links wrong: %q %q", got[0].Prev, got[1].Prev)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Verify(f)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	seq, head := l.Head()
	if rep.Lines != 5 || rep.LastSeq != 5 || rep.Head != got[4].Hash || seq != 5 || head != rep.Head {
		t.Fatalf("report %+v, head %d %s", rep, seq, head)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestVerifyEmpty(t *testing.T) {
	rep, err := Verify(strings.NewReader(""))
	if err != nil || rep.Lines != 0 || rep.Head != Genesis() {
		t.Fatalf("empty log: %+v %v", rep, err)
	}
}

func TestAppendIgnoresCallerChainFields(t *testing.T) {
	l, _ := openLog(t, Options{})
	e := ev(1)
	e.Seq, e.Prev, e.Hash = 99, "forged", "forged"
	got, err := l.Append(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 1 || got.Prev != Genesis() || got.Hash == "forged" {
		t.Fatalf("caller chain fields leaked into the log: %+v", got)
	}
}

// forge builds a correctly hashed line, as an attacker with write access
// could: the chain alone cannot stop that, only the seq/prev of its neighbours.
func forge(t *testing.T, seq uint64, prev string, e Event) ([]byte, string) {
	t.Helper()
	raw, err := decodeHash(prev)
	if err != nil {
		t.Fatal(err)
	}
	e.Seq = seq
	e.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sealed, line, _, err := seal(e, prev, raw)
	if err != nil {
		t.Fatal(err)
	}
	return line, sealed.Hash
}

func TestVerifyDetectsTampering(t *testing.T) {
	l, path := openLog(t, Options{})
	evs := appendN(t, l, 6)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	orig := readLines(t, path)
	clone := func() [][]byte {
		c := make([][]byte, len(orig))
		for i := range orig {
			c[i] = bytes.Clone(orig[i])
		}
		return c
	}
	tests := []struct {
		name     string
		tamper   func(t *testing.T) []byte
		wantLine int
	}{
		{"edit-field/actor", func(t *testing.T) []byte {
			c := clone()
			c[2] = bytes.Replace(c[2], []byte(`"actor":"op_2"`), []byte(`"actor":"op_9"`), 1)
			return join(c)
		}, 3},
		{"edit-field/outcome", func(t *testing.T) []byte {
			c := clone()
			c[3] = bytes.Replace(c[3], []byte(`"outcome":"success"`), []byte(`"outcome":"denied"`), 1)
			return join(c)
		}, 4},
		{"edit-hash", func(t *testing.T) []byte {
			c := clone()
			h := evs[2].Hash
			c[2] = bytes.Replace(c[2], []byte(h), []byte(strings.Repeat("a", 64)), 1)
			return join(c)
		}, 3},
		{"edit-prev", func(t *testing.T) []byte {
			c := clone()
			c[2] = bytes.Replace(c[2], []byte(evs[1].Hash), []byte(strings.Repeat("b", 64)), 1)
			return join(c)
		}, 3},
		{"delete-middle", func(t *testing.T) []byte {
			c := clone()
			return join(append(c[:2], c[3:]...))
		}, 3},
		{"delete-first", func(t *testing.T) []byte {
			return join(clone()[1:])
		}, 1},
		{"swap", func(t *testing.T) []byte {
			c := clone()
			c[2], c[3] = c[3], c[2]
			return join(c)
		}, 3},
		{"insert-duplicate", func(t *testing.T) []byte {
			c := clone()
			return join(append(c[:3], append([][]byte{orig[1]}, c[3:]...)...))
		}, 4},
		{"insert-forged", func(t *testing.T) []byte {
			// A well-formed line with the right seq and prev: caught at the
			// next line, whose seq no longer fits.
			c := clone()
			line, _ := forge(t, 3, evs[1].Hash, ev(42))
			return join(append(c[:2], append([][]byte{line}, c[2:]...)...))
		}, 4},
		{"replace-forged", func(t *testing.T) []byte {
			// Line 3 replaced by a well-formed forgery: line 4's prev breaks.
			c := clone()
			c[2], _ = forge(t, 3, evs[1].Hash, ev(42))
			return join(c)
		}, 4},
		{"insert-junk", func(t *testing.T) []byte {
			c := clone()
			return join(append(c[:1], append([][]byte{[]byte("{}\n")}, c[1:]...)...))
		}, 2},
		{"add-field", func(t *testing.T) []byte {
			c := clone()
			c[4] = bytes.Replace(c[4], []byte(`{"seq":`), []byte(`{"extra":1,"seq":`), 1)
			return join(c)
		}, 5},
		{"reformat", func(t *testing.T) []byte {
			c := clone()
			c[4] = bytes.Replace(c[4], []byte(`,"event":`), []byte(`, "event":`), 1)
			return join(c)
		}, 5},
		{"torn-last-line", func(t *testing.T) []byte {
			b := join(clone())
			return b[:len(b)-10]
		}, 6},
		{"empty-line", func(t *testing.T) []byte {
			c := clone()
			return join(append(c[:2], append([][]byte{[]byte("\n")}, c[2:]...)...))
		}, 3},
	}
	for _, tt := range tests {
		t.Run("detected/"+tt.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(tt.tamper(t)))
			var ce *ChainError
			if !errors.As(err, &ce) || !errors.Is(err, ErrChain) {
				t.Fatalf("Verify = %v, want a *ChainError", err)
			}
			t.Logf("%v", ce)
			if ce.Line != tt.wantLine {
				t.Fatalf("flagged line %d (%s), want line %d", ce.Line, ce.Reason, tt.wantLine)
			}
		})
	}
	t.Run("ok/untouched", func(t *testing.T) {
		if _, err := Verify(bytes.NewReader(join(orig))); err != nil {
			t.Fatal(err)
		}
	})
}

func TestVerifyHead(t *testing.T) {
	l, path := openLog(t, Options{})
	evs := appendN(t, l, 5)
	seq, head := l.Head()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)

	// Rewriting the tail with fresh hashes yields a chain Verify accepts.
	rewritten := append([][]byte{}, lines[:3]...)
	prev := evs[2].Hash
	for s := uint64(4); s <= 5; s++ {
		var line []byte
		line, prev = forge(t, s, prev, ev(int(s)+100))
		rewritten = append(rewritten, line)
	}

	tests := []struct {
		name    string
		log     []byte
		wantErr error
	}{
		{"ok/intact", join(lines), nil},
		{"ok/longer-than-head", nil, nil}, // filled below
		{"truncated/tail-cut", join(lines[:3]), ErrTruncated},
		{"truncated/emptied", nil, ErrTruncated},
		{"mismatch/tail-rewritten", join(rewritten), ErrHeadMismatch},
	}
	// A log that grew after the head was recorded still contains it.
	l2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l2, 2)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	grown, _ := os.ReadFile(path)
	tests[1].log = grown

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "truncated/tail-cut" || tt.name == "mismatch/tail-rewritten" {
				// Verify alone cannot see these: that is the point of a head.
				if _, err := Verify(bytes.NewReader(tt.log)); err != nil {
					t.Fatalf("Verify: %v", err)
				}
			}
			_, err := VerifyHead(bytes.NewReader(tt.log), seq, head)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("VerifyHead = %v, want %v", err, tt.wantErr)
			}
		})
	}
	t.Run("ok/empty-genesis", func(t *testing.T) {
		if _, err := VerifyHead(strings.NewReader(""), 0, Genesis()); err != nil {
			t.Fatal(err)
		}
	})
}

// slowSync delays each fsync, as a real disk does, so that appends queue up
// behind it; the real fsync still runs.
type slowSync struct {
	File
	d     time.Duration
	syncs atomic.Int64
}

func (s *slowSync) Sync() error {
	s.syncs.Add(1)
	time.Sleep(s.d)
	return s.File.Sync()
}

func TestConcurrentAppendsGroupCommit(t *testing.T) {
	var ss *slowSync
	l, path := openLog(t, Options{WrapFile: func(f File) File {
		ss = &slowSync{File: f, d: time.Millisecond}
		return ss
	}})
	const workers, each = 50, 40
	seqs := make(chan uint64, workers*each)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				e, err := l.Append(context.Background(), ev(w*each+i))
				if err != nil {
					errs <- err
					return
				}
				seqs <- e.Seq
			}
		})
	}
	wg.Wait()
	close(seqs)
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	seen := make(map[uint64]bool)
	for s := range seqs {
		if seen[s] {
			t.Fatalf("seq %d handed out twice", s)
		}
		seen[s] = true
	}
	for s := uint64(1); s <= workers*each; s++ {
		if !seen[s] {
			t.Fatalf("seq %d missing", s)
		}
	}
	st := l.Stats()
	if st.Appends != workers*each {
		t.Fatalf("stats appends %d", st.Appends)
	}
	if st.Syncs >= st.Appends || int64(st.Syncs) != ss.syncs.Load() {
		t.Fatalf("group commit: %d fsyncs for %d appends (wrapper saw %d)", st.Syncs, st.Appends, ss.syncs.Load())
	}
	t.Logf("%d appends in %d fsyncs, largest batch %d", st.Appends, st.Syncs, st.LargestBatch)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	rep, err := Verify(f)
	if err != nil || rep.Lines != workers*each {
		t.Fatalf("Verify: %+v %v", rep, err)
	}
}

func TestReopenContinuesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := appendN(t, l, 3)

	t.Run("locked/second-writer", func(t *testing.T) {
		_, err := Open(path, Options{})
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("second Open = %v, want ErrLocked", err)
		}
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if seq, head := l2.Head(); seq != 3 || head != first[2].Hash {
		t.Fatalf("reopened head %d %s", seq, head)
	}
	e, err := l2.Append(context.Background(), ev(9))
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 4 || e.Prev != first[2].Hash {
		t.Fatalf("reopened log did not continue the chain: %+v", e)
	}
	_ = l2.Close()
	b, _ := os.ReadFile(path)
	if rep, err := Verify(bytes.NewReader(b)); err != nil || rep.LastSeq != 4 {
		t.Fatalf("Verify after reopen: %+v %v", rep, err)
	}
}

func TestOpenRefusesBrokenChain(t *testing.T) {
	l, path := openLog(t, Options{})
	appendN(t, l, 3)
	_ = l.Close()
	lines := readLines(t, path)
	edited := bytes.Replace(lines[2], []byte("tok_2"), []byte("tok_9"), 1)
	tests := []struct {
		name string
		data []byte
	}{
		{"refused/deleted-line", join([][]byte{lines[0], lines[2]})},
		// Valid JSON with a wrong hash is an edit, not a torn write.
		{"refused/last-line-edited", join([][]byte{lines[0], lines[1], edited})},
		// A torn-looking line that is not the last one.
		{"refused/garbage-before-last-line", join([][]byte{lines[0], []byte("{\"seq\":2,\"ti\n"), lines[2]})},
		{"refused/last-line-too-long", append(join(lines), bytes.Repeat([]byte("x"), MaxLineSize+10)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "broken.log")
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(p, Options{})
			if !errors.Is(err, ErrChain) {
				t.Fatalf("Open = %v, want ErrChain", err)
			}
			if b, _ := os.ReadFile(p); !bytes.Equal(b, tt.data) {
				t.Fatal("a refused log was changed")
			}
			if q, _ := filepath.Glob(p + ".quarantine-*"); len(q) != 0 {
				t.Fatalf("a refused log was quarantined: %v", q)
			}
		})
	}
}

func TestOpenTightensMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

// faults is a disk that fails on demand, shared by every file the log
// opens through Options.WrapFile (the log at Open, after a recovery, a new
// segment).
type faults struct {
	failWrite, failSync atomic.Bool
	// partial: a failing write first writes half its bytes, as a full
	// disk does with a batch that does not fit.
	partial atomic.Bool
}

func (fs *faults) wrap(f File) File { return &faultyFile{File: f, fs: fs} }

// faultyFile fails writes or fsyncs on demand, like a full or failing disk.
type faultyFile struct {
	File
	fs *faults
}

func (f *faultyFile) Write(p []byte) (int, error) {
	if f.fs.failWrite.Load() {
		n := 0
		if f.fs.partial.Load() {
			n, _ = f.File.Write(p[:len(p)/2])
		}
		return n, &os.PathError{Op: "write", Path: "injected", Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

func (f *faultyFile) Sync() error {
	if f.fs.failSync.Load() {
		return &os.PathError{Op: "fsync", Path: "injected", Err: syscall.EIO}
	}
	return f.File.Sync()
}

func TestFailureFailsClosed(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*faults) *atomic.Bool
		class string
	}{
		{"503/write-error", func(f *faults) *atomic.Bool { return &f.failWrite }, "no_space"},
		{"503/fsync-error", func(f *faults) *atomic.Bool { return &f.failSync }, "io_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ff := &faults{}
			// No recovery on its own here: what a failed log refuses.
			l, _ := openLog(t, Options{WrapFile: ff.wrap, RecoverInterval: -1})
			appendN(t, l, 2)
			if err := l.Healthy(); err != nil {
				t.Fatalf("Healthy before the fault = %v", err)
			}
			tt.fault(ff).Store(true)

			// A whole concurrent batch fails, not just one caller.
			var wg sync.WaitGroup
			var unavailable atomic.Int32
			for i := range 20 {
				wg.Go(func() {
					if _, err := l.Append(context.Background(), ev(i)); errors.Is(err, ErrUnavailable) {
						unavailable.Add(1)
					}
				})
			}
			wg.Wait()
			if unavailable.Load() != 20 {
				t.Fatalf("%d of 20 appends returned ErrUnavailable", unavailable.Load())
			}
			if st := l.Stats(); !st.Failed || st.FailClass != tt.class {
				t.Fatalf("Stats after a failure: %+v, want failed with class %s", st, tt.class)
			}
			var he *HealthError
			if err := l.Healthy(); !errors.As(err, &he) || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnrecoverable) || he.Class != tt.class {
				t.Fatalf("Healthy = %v, want a retrying *HealthError of class %s", err, tt.class)
			}
			if strings.Contains(l.Healthy().Error(), "injected") {
				t.Fatalf("Healthy carries the system's error text: %v", l.Healthy())
			}
			// The disk healing alone does not revive the log: only a
			// recovery, which checks the file first, does.
			tt.fault(ff).Store(false)
			if _, err := l.Append(context.Background(), ev(99)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Append after failure = %v, want ErrUnavailable", err)
			}
			if seq, _ := l.Head(); seq != 2 {
				t.Fatalf("head moved to %d after failed appends", seq)
			}
		})
	}
}

func TestAppendRejects(t *testing.T) {
	l, _ := openLog(t, Options{})
	tests := []struct {
		name string
		e    Event
	}{
		{"invalid/no-name", Event{Outcome: OutcomeSuccess}},
		{"invalid/no-outcome", Event{Event: EventInspect}},
		{"invalid/bad-outcome", Event{Event: EventInspect, Outcome: "ok"}},
		{"invalid/huge-reason", Event{Event: EventInspect, Outcome: OutcomeSuccess, Reason: strings.Repeat("x", MaxFieldLen+1)}},
		{"invalid/year-10000", Event{Event: EventInspect, Outcome: OutcomeSuccess, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := l.Append(context.Background(), tt.e); !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("Append = %v, want ErrInvalidEvent", err)
			}
		})
	}
	// A caller bug does not fail the log.
	if e, err := l.Append(context.Background(), ev(1)); err != nil || e.Seq != 1 {
		t.Fatalf("Append after rejects: %+v %v", e, err)
	}
}

func TestAppendContextAndClose(t *testing.T) {
	l, path := openLog(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, ev(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with canceled ctx = %v", err)
	}
	appendN(t, l, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(context.Background(), ev(2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	b, _ := os.ReadFile(path)
	if rep, err := Verify(bytes.NewReader(b)); err != nil || rep.Lines != 1 {
		t.Fatalf("canceled append was written: %+v %v", rep, err)
	}
}

func TestCallerTimeKeptInUTC(t *testing.T) {
	l, _ := openLog(t, Options{})
	paris := time.FixedZone("CET", 3600)
	at := time.Date(2026, 3, 4, 10, 0, 0, 123, paris)
	e := ev(1)
	e.Time = at
	got, err := l.Append(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(at) || got.Time.Location() != time.UTC {
		t.Fatalf("time %v, want %v in UTC", got.Time, at)
	}
}

func TestRead(t *testing.T) {
	l, path := openLog(t, Options{})
	appendN(t, l, 10) // actors op_0, op_1, op_2 in turn
	denied := ev(10)
	denied.Event, denied.Outcome, denied.Actor = EventRevealDenied, OutcomeDenied, "op_1"
	if _, err := l.Append(context.Background(), denied); err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	data, _ := os.ReadFile(path)

	seqs := func(es []Event) []uint64 {
		var s []uint64
		for _, e := range es {
			s = append(s, e.Seq)
		}
		return s
	}
	tests := []struct {
		name string
		f    Filter
		want []uint64
	}{
		{"all/newest-first", Filter{}, []uint64{11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"limit/newest", Filter{Limit: 3}, []uint64{11, 10, 9}},
		{"actor", Filter{Actor: "op_1"}, []uint64{11, 8, 5, 2}},
		{"actor+limit", Filter{Actor: "op_1", Limit: 2}, []uint64{11, 8}},
		{"outcome", Filter{Outcome: OutcomeDenied}, []uint64{11}},
		{"event", Filter{Event: EventReveal, Limit: 2}, []uint64{10, 9}},
		{"page/before-seq", Filter{BeforeSeq: 9, Limit: 3}, []uint64{8, 7, 6}},
		{"none", Filter{Actor: "nobody"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(bytes.NewReader(data), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(seqs(got)) != fmt.Sprint(tt.want) {
				t.Fatalf("got seqs %v, want %v", seqs(got), tt.want)
			}
		})
	}
	t.Run("tampered/prefix-and-error", func(t *testing.T) {
		lines := bytes.SplitAfter(data, []byte("\n"))
		broken := join(append(append([][]byte{}, lines[:4]...), lines[5:]...)) // delete line 5
		got, err := Read(bytes.NewReader(broken), Filter{})
		var ce *ChainError
		if !errors.As(err, &ce) || ce.Line != 5 {
			t.Fatalf("Read err = %v, want chain error at line 5", err)
		}
		if fmt.Sprint(seqs(got)) != fmt.Sprint([]uint64{4, 3, 2, 1}) {
			t.Fatalf("prefix %v", seqs(got))
		}
	})
}

// BenchmarkAppendParallel measures durable appends (each one fsynced, in
// group commits) from many concurrent callers, as request goroutines would.
func BenchmarkAppendParallel(b *testing.B) {
	l, _ := openLog(b, Options{})
	b.SetParallelism(32) // many more callers than cores, like an HTTP server under load
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		e := ev(1)
		for pb.Next() {
			if _, err := l.Append(context.Background(), e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := l.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	if st.Syncs > 0 {
		b.ReportMetric(float64(st.Appends)/float64(st.Syncs), "appends/fsync")
	}
}

// BenchmarkAppendSerial is the one-caller baseline: every append pays a full
// fsync, which is what group commit avoids under concurrency.
func BenchmarkAppendSerial(b *testing.B) {
	l, _ := openLog(b, Options{})
	e := ev(1)
	for b.Loop() {
		if _, err := l.Append(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppendUnderLoad is the audit log as a service uses it: 16
// callers, each spending about 300 µs of CPU on its request before it
// appends (an inspect), on 2-4 cores. It reports the CPU time of the whole
// process per append (the work included: compare the linger settings) and
// the batch size.
func BenchmarkAppendUnderLoad(b *testing.B) {
	for _, tc := range []struct {
		name   string
		linger time.Duration
	}{{"linger=off", -1}, {"linger=default", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			l, _ := openLog(b, Options{Linger: tc.linger})
			var next atomic.Int64
			var wg sync.WaitGroup
			start := testenv.CPUTime()
			b.ResetTimer()
			for range 16 {
				wg.Go(func() {
					e := ev(1)
					for next.Add(1) <= int64(b.N) {
						spin(300 * time.Microsecond)
						if _, err := l.Append(context.Background(), e); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			st := l.Stats()
			b.ReportMetric(float64((testenv.CPUTime()-start).Microseconds())/float64(b.N), "cpu-us/op")
			if st.Syncs > 0 {
				b.ReportMetric(float64(st.Appends)/float64(st.Syncs), "appends/fsync")
			}
		})
	}
}

// spin does CPU work: d/2µs SHA-256 blocks of 4 KiB (about 2 µs each on
// this kind of machine), the same work whatever else runs.
func spin(d time.Duration) {
	var buf [4096]byte
	for range int(d / (2 * time.Microsecond)) {
		sum := sha256.Sum256(buf[:])
		buf[0] = sum[0]
	}
}
