package audit

import (
	"context"
	"testing"
	"time"
)

// gatedFile says when a write starts and holds it until the test lets it
// through.
type gatedFile struct {
	File
	entered, gate chan struct{}
}

func (g gatedFile) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.gate
	return g.File.Write(p)
}

// TestLingerGathersConcurrentAppends: after a batch of two, an append
// arriving alone waits (the linger) for another to share its fsync, and
// both commit in one batch; a lone append is committed when the linger
// ends; a lone caller (previous batch of one) never waits.
func TestLingerGathersConcurrentAppends(t *testing.T) {
	fa := newFakeAfter()
	entered, gate := make(chan struct{}), make(chan struct{})
	open := func(f File) File { return gatedFile{f, entered, gate} }
	l, _ := openLog(t, Options{Linger: time.Hour, After: fa.After, WrapFile: open, SpoolInterval: -1})
	ctx := context.Background()
	appendAsync := func(i int) chan error {
		done := make(chan error, 1)
		go func() {
			_, err := l.Append(ctx, ev(i))
			done <- err
		}()
		return done
	}
	wait := func(what string, ch chan error) {
		t.Helper()
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
			t.Fatalf("%s never returned", what)
		}
	}
	// writing waits for the writer to start a write; let lets it finish.
	writing := func() {
		t.Helper()
		select {
		case <-entered:
		case <-time.After(30 * time.Second): // a hang guard
			t.Fatal("the writer never wrote")
		}
	}
	let := func() { gate <- struct{}{} }
	queued := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); len(l.reqs) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("%d appends never queued", n)
			}
			time.Sleep(time.Millisecond)
		}
	}

	// A lone caller: its batch of one is written with no linger.
	a := appendAsync(1)
	writing()
	let()
	wait("first append", a)
	// While b's write is held, two appends queue up: the next batch has two.
	b := appendAsync(2)
	writing()
	c, d := appendAsync(3), appendAsync(4)
	queued(2)
	let()
	wait("b", b)
	writing() // c and d, one batch
	let()
	wait("c", c)
	wait("d", d)
	if st := l.Stats(); st.LargestBatch != 2 {
		t.Fatalf("largest batch %d, want 2 (c and d)", st.LargestBatch)
	}
	before := l.Stats().Syncs

	// Alone after a batch of two: the writer lingers for a second append.
	e := appendAsync(5)
	if got := fa.next(t); got != time.Hour {
		t.Fatalf("linger of %s, want the configured hour", got)
	}
	f := appendAsync(6)
	writing()
	let()
	wait("e", e)
	wait("f", f)
	if n := l.Stats().Syncs - before; n != 1 {
		t.Fatalf("e and f took %d fsyncs, want 1 (the linger gathered them)", n)
	}

	// Alone again: the linger ends (the fake timer fires) and it is written alone.
	g := appendAsync(7)
	fa.next(t)
	fa.fire()
	writing()
	let()
	wait("g", g)
	if n := l.Stats().Syncs - before; n != 2 {
		t.Fatalf("g took %d fsyncs in all, want its own", n-1)
	}
}
