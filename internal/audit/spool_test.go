package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func adminEvent(name string) Event {
	return Event{Event: EventOperatorChange, Actor: "cli:test", Resource: name, Reason: "created", Outcome: OutcomeSuccess}
}

func eventsOf(t *testing.T, path string) []Event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := Read(bytes.NewReader(b), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestAdminChangeWithRunningService: the log is held (as the running service
// holds it); the CLI's change still reaches the chain, through the spool.
func TestAdminChangeWithRunningService(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	held, err := Open(path, Options{SpoolInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	changed := false
	var out bytes.Buffer
	if err := AdminChange(context.Background(), path, adminEvent("alice"), &out, func() error { changed = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if !changed || !strings.Contains(out.String(), "spooled") {
		t.Fatalf("changed=%v out=%q", changed, out.String())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if seq, _ := held.Head(); seq == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the running log did not fold the spooled event")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	evs := eventsOf(t, path)
	if len(evs) != 1 || evs[0].Resource != "alice" || evs[0].Actor != "cli:test" {
		t.Fatalf("chain: %+v", evs)
	}
	if ents, _ := os.ReadDir(SpoolDir(path)); len(ents) != 0 {
		t.Fatalf("folded files left in the spool: %v", ents)
	}
}

// TestAdminChangeWithoutService: nobody holds the log; the CLI folds its own
// event, and a failed change leaves a failure record after it.
func TestAdminChangeWithoutService(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var out bytes.Buffer
	if err := AdminChange(context.Background(), path, adminEvent("alice"), &out, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("store refused")
	if err := AdminChange(context.Background(), path, adminEvent("bob"), &out, func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failed change: %v", err)
	}
	evs := eventsOf(t, path) // newest first
	if len(evs) != 3 || evs[2].Resource != "alice" || evs[1].Resource != "bob" || evs[0].Outcome != OutcomeFailure || evs[0].Code != "admin_failed" {
		t.Fatalf("chain: %+v", evs)
	}
}

// TestAdminChangeRefusedWithoutSpool: when the event cannot be written, the
// change is not made.
func TestAdminChangeRefusedWithoutSpool(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	// A file where the spool directory should be: nothing can be spooled.
	if err := os.WriteFile(SpoolDir(path), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path string
		e    Event
	}{
		{"spool-blocked", path, adminEvent("alice")},
		{"no-directory", filepath.Join(dir, "missing", "audit.log"), adminEvent("alice")},
		{"invalid-event", filepath.Join(dir, "other.log"), Event{Event: ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := false
			err := AdminChange(context.Background(), tc.path, tc.e, &bytes.Buffer{}, func() error { changed = true; return nil })
			if !errors.Is(err, ErrSpool) || changed {
				t.Fatalf("err=%v changed=%v", err, changed)
			}
		})
	}
}

func TestFoldSpoolSetsAsideBadFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := Spool(path, adminEvent("alice")); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(SpoolDir(path), "00000000000000000001-bad.json")
	if err := os.WriteFile(bad, []byte(`{"event":"x","outcome":"success","seq":7,"prev":"","hash":""}`), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Options{SpoolInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	evs := eventsOf(t, path)
	if len(evs) != 2 || evs[1].Event != EventSpoolRejected || evs[0].Resource != "alice" {
		t.Fatalf("chain: %+v", evs)
	}
	if _, err := os.Stat(bad + rejectedSuffix); err != nil {
		t.Fatalf("bad file not set aside: %v", err)
	}
}
