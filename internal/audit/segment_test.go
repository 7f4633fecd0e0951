package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// segmentedLog writes n events with segments of about size bytes and
// returns the log's path and its events, oldest first.
func segmentedLog(t *testing.T, n int, size int64) (string, []Event) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{SegmentSize: size, SpoolInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	evs := appendN(t, l, n)
	if l.Stats().Rotations < 2 {
		t.Fatalf("%d rotations; the test wants several segments", l.Stats().Rotations)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path, evs
}

func TestSegmentsRotateBySize(t *testing.T) {
	path, written := segmentedLog(t, 30, 2048)
	files, err := Segments(path)
	if err != nil || len(files) < 3 || files[len(files)-1] != path {
		t.Fatalf("Segments = %v, %v", files, err)
	}
	for _, f := range files[:len(files)-1] {
		fi, _ := os.Stat(f)
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v", f, fi.Mode().Perm())
		}
		// Each closed segment ends with its closing record, which names it.
		line, err := lastLine(f)
		if err != nil {
			t.Fatal(err)
		}
		e, reason := checkContent(line)
		if reason != "" || e.Event != EventAuditSegment || e.Resource != filepath.Base(f) || !strings.Contains(e.Reason, "rotate=size") {
			t.Fatalf("%s ends with %+v (%s)", filepath.Base(f), e, reason)
		}
		if fi.Size() > 2048+int64(len(line))+1024 {
			t.Fatalf("%s holds %d bytes for a 2048-byte limit", filepath.Base(f), fi.Size())
		}
	}

	rep, err := VerifySegments(path)
	last := written[len(written)-1]
	if err != nil || rep.Files != len(files) || rep.From != 0 || rep.Head != last.Hash || rep.LastSeq != last.Seq {
		t.Fatalf("VerifySegments = %+v, %v; want every file, ending at seq %d", rep, err, last.Seq)
	}
	if rep.Lines != int(last.Seq) {
		t.Fatalf("%d lines for %d records", rep.Lines, last.Seq)
	}
	// The segments concatenated are one chain, as a plain Verify sees it.
	var all []byte
	for _, f := range files {
		b, _ := os.ReadFile(f)
		all = append(all, b...)
	}
	if whole, err := Verify(bytes.NewReader(all)); err != nil || whole.Head != rep.Head {
		t.Fatalf("concatenated segments: %+v, %v", whole, err)
	}

	t.Run("reopen-continues", func(t *testing.T) {
		l, err := Open(path, Options{SegmentSize: 2048, SpoolInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if seq, head := l.Head(); seq != last.Seq || head != last.Hash {
			t.Fatalf("reopened head %d %s", seq, head)
		}
	})

	t.Run("trail-pages-across-segments", func(t *testing.T) {
		evs, rep, err := FileTrail(path).Query(context.Background(), Filter{Event: EventReveal, Limit: 25})
		if err != nil || len(evs) != 25 || rep.Head != last.Hash {
			t.Fatalf("Query = %d events, %+v, %v", len(evs), rep, err)
		}
		for i, e := range evs {
			if want := written[len(written)-1-i]; e.Hash != want.Hash {
				t.Fatalf("event %d is seq %d, want seq %d (newest first, across segments)", i, e.Seq, want.Seq)
			}
		}
		older, _, err := FileTrail(path).Query(context.Background(), Filter{Event: EventReveal, BeforeSeq: evs[24].Seq, Limit: 25})
		if err != nil || len(older) != 5 || older[0].Hash != written[4].Hash || older[4].Hash != written[0].Hash {
			t.Fatalf("next page: %d events, %v", len(older), err)
		}
	})
}

func TestSegmentsRotateByDay(t *testing.T) {
	var now atomic.Pointer[time.Time]
	day1 := time.Date(2031, 3, 1, 23, 59, 0, 0, time.UTC)
	now.Store(&day1)
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{SegmentDaily: true, SpoolInterval: -1, Now: func() time.Time { return *now.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, 3)
	day2 := day1.Add(2 * time.Minute)
	now.Store(&day2)
	e, err := l.Append(context.Background(), ev(3))
	if err != nil || e.Seq != 5 {
		t.Fatalf("first append of the day = %+v, %v; want seq 5 after the closing record", e, err)
	}
	closed, _ := closedSegments(path)
	if len(closed) != 1 || filepath.Base(closed[0]) != "audit.log.seg-00000000000000000001" {
		t.Fatalf("closed segments %v", closed)
	}
	line, _ := lastLine(closed[0])
	if c, _ := checkContent(line); c.Seq != 4 || !strings.Contains(c.Reason, "first_seq=1 lines=3") || !strings.Contains(c.Reason, "rotate=day") {
		t.Fatalf("closing record %+v", c)
	}
	appendN(t, l, 2) // same day: no rotation
	if l.Stats().Rotations != 1 {
		t.Fatalf("%d rotations in two days", l.Stats().Rotations)
	}
}

// TestStartReadsOnlyTheOpenSegment: a start verifies the open segment and
// the closing record of the one before it, not the history; verifying the
// whole chain still reads every segment.
func TestStartReadsOnlyTheOpenSegment(t *testing.T) {
	tests := []struct {
		name      string
		mangle    func(t *testing.T, closed []string)
		openErr   error // nil: a start succeeds
		verifyErr error
	}{
		{"opens/oldest-segment-edited", func(t *testing.T, closed []string) {
			editLine(t, closed[0], 2)
		}, nil, ErrChain},
		{"refused/last-closing-record-edited", func(t *testing.T, closed []string) {
			b, _ := os.ReadFile(closed[len(closed)-1])
			_ = os.WriteFile(closed[len(closed)-1], bytes.Replace(b, []byte("rotate=size"), []byte("rotate=sizE"), 1), 0o600)
		}, ErrSegment, ErrChain},
		{"refused/last-closing-record-cut", func(t *testing.T, closed []string) {
			p := closed[len(closed)-1]
			line, _ := lastLine(p)
			fi, _ := os.Stat(p)
			_ = os.Truncate(p, fi.Size()-int64(len(line)))
		}, ErrSegment, ErrSegment},
		{"opens/middle-segment-removed", func(t *testing.T, closed []string) {
			_ = os.Remove(closed[1])
		}, nil, ErrSegment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := segmentedLog(t, 40, 2048)
			closed, _ := closedSegments(path)
			if len(closed) < 3 {
				t.Fatalf("%d closed segments", len(closed))
			}
			tt.mangle(t, closed)
			l, err := Open(path, Options{SegmentSize: 2048, SpoolInterval: -1})
			if tt.openErr == nil {
				if err != nil {
					t.Fatalf("Open = %v: a start must not read old segments", err)
				}
				_ = l.Close()
			} else if !errors.Is(err, tt.openErr) {
				t.Fatalf("Open = %v, want %v", err, tt.openErr)
			}
			if _, err := VerifySegments(path); !errors.Is(err, tt.verifyErr) {
				t.Fatalf("VerifySegments = %v, want %v", err, tt.verifyErr)
			}
		})
	}
}

func editLine(t *testing.T, path string, i int) {
	t.Helper()
	lines := readLines(t, path)
	lines[i] = bytes.Replace(lines[i], []byte(`"outcome":"success"`), []byte(`"outcome":"failure"`), 1)
	if err := os.WriteFile(path, join(lines), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifySegmentsNamesTheFile(t *testing.T) {
	path, _ := segmentedLog(t, 30, 2048)
	closed, _ := closedSegments(path)
	editLine(t, closed[1], 1)
	_, err := VerifySegments(path)
	var ce *ChainError
	if !errors.As(err, &ce) || ce.File != filepath.Base(closed[1]) || ce.Line != 2 {
		t.Fatalf("VerifySegments = %v, want the chain error at %s line 2", err, filepath.Base(closed[1]))
	}
}

// TestOldestSegmentsRemoved: past their retention the oldest segments are
// removed; what is left still verifies, from the first segment kept.
func TestOldestSegmentsRemoved(t *testing.T) {
	path, written := segmentedLog(t, 30, 2048)
	closed, _ := closedSegments(path)
	first, _ := segmentFirst(filepath.Base(path), filepath.Base(closed[1]))
	_ = os.Remove(closed[0])
	rep, err := VerifySegments(path)
	if err != nil || rep.From != first-1 || rep.Head != written[len(written)-1].Hash {
		t.Fatalf("VerifySegments without the oldest = %+v, %v; want From %d", rep, err, first-1)
	}
	// The kept segment's first line must still be the seq its name says.
	editLine(t, closed[1], 0)
	if _, err := VerifySegments(path); !errors.Is(err, ErrChain) {
		t.Fatalf("edited first line of the oldest kept segment: %v", err)
	}
}

// TestRotationInterrupted: a crash between the steps of a rotation leaves
// the log in a state the next start completes.
func TestRotationInterrupted(t *testing.T) {
	tests := []struct {
		name string
		undo func(t *testing.T, path, seg string)
	}{
		// Closing record synced, the file not yet renamed.
		{"resumed/before-rename", func(t *testing.T, path, seg string) {
			_ = os.Remove(path)
			if err := os.Rename(seg, path); err != nil {
				t.Fatal(err)
			}
		}},
		// Renamed, the new open segment not yet created.
		{"resumed/before-new-file", func(t *testing.T, path, seg string) { _ = os.Remove(path) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			l, err := Open(path, Options{SegmentSize: 1, SpoolInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 1)
			appendN(t, l, 1) // closes the first segment (seq 1, closing seq 2), then writes seq 3
			_ = l.Close()
			seg := segmentName(path, 1)
			// Keep only the closed segment, as the crash left it.
			tt.undo(t, path, seg)

			l, err = Open(path, Options{SpoolInterval: -1})
			if err != nil {
				t.Fatalf("Open after an interrupted rotation: %v", err)
			}
			e, err := l.Append(context.Background(), ev(5))
			_ = l.Close()
			if err != nil || e.Seq != 3 {
				t.Fatalf("Append = %+v, %v; want seq 3 in a new segment", e, err)
			}
			if _, err := os.Stat(seg); err != nil {
				t.Fatalf("closed segment: %v", err)
			}
			if rep, err := VerifySegments(path); err != nil || rep.Files != 2 || rep.LastSeq != 3 {
				t.Fatalf("VerifySegments = %+v, %v", rep, err)
			}
		})
	}
}

// TestRecoveryAcrossARotation: a failure while the open segment is new
// still recovers, anchored at the closing record of the one before.
func TestRecoveryAcrossARotation(t *testing.T) {
	ff := &faults{}
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{SegmentSize: 2048, WrapFile: ff.wrap, RecoverInterval: -1, SpoolInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, 12)
	if l.Stats().Rotations == 0 {
		t.Fatal("no rotation")
	}
	ctx := context.Background()
	ff.partial.Store(true)
	ff.failWrite.Store(true)
	_, _ = l.Append(ctx, ev(20))
	ff.failWrite.Store(false)
	if err := l.Recover(ctx); err != nil {
		t.Fatalf("Recover = %v", err)
	}
	appendN(t, l, 12)
	_ = l.Close()
	if _, err := VerifySegments(path); err != nil {
		t.Fatalf("chain after a recovery and more rotations: %v", err)
	}
}

func TestCheckpointsAcrossSegments(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	v := Ed25519Verifier{Key: priv.Public().(ed25519.PublicKey)}
	dir := t.TempDir()
	path, export := filepath.Join(dir, "audit.log"), filepath.Join(dir, "audit.log.checkpoints")
	l, err := Open(path, Options{SegmentSize: 1500, SpoolInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := StartCheckpoints(l, edSigner{priv}, CheckpointOptions{Every: 4, Interval: time.Hour, Export: export})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 24 {
		if _, err := l.Append(ctx, ev(i)); err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			if err := cp.checkpoint(ctx, 4); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = cp.Close(ctx)
	_ = l.Close()
	x := func() *os.File {
		f, err := os.Open(export)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		return f
	}
	rep, cr, err := VerifySegmentsCheckpoints(path, x(), v)
	if err != nil || rep.Files < 3 || cr.InChain < 6 || cr.Exported != cr.InChain || cr.Pruned != 0 {
		t.Fatalf("VerifySegmentsCheckpoints = %+v %+v %v", rep, cr, err)
	}
	// Without the oldest segment the checkpoints that signed heads in it
	// cannot be held against the chain: counted, not failed.
	closed, _ := closedSegments(path)
	_ = os.Remove(closed[0])
	rep, cr, err = VerifySegmentsCheckpoints(path, x(), v)
	if err != nil || rep.From == 0 || cr.Pruned == 0 {
		t.Fatalf("without the oldest segment: %+v %+v %v", rep, cr, err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		ok   bool
	}{
		{"64MiB", 64 << 20, true},
		{"512KiB", 512 << 10, true},
		{"1GiB", 1 << 30, true},
		{"4096", 4096, true},
		{"4096B", 4096, true},
		{"off", -1, true},
		{"0", -1, true},
		{"-5MiB", 0, false},
		{"64MB", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v", tt.in, got, err)
			}
			if tt.ok {
				if back, _ := ParseSize(got.String()); back != got {
					t.Fatalf("%q prints as %q, which reads back as %d", tt.in, got.String(), back)
				}
			}
		})
	}
}
