package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type edSigner struct{ key ed25519.PrivateKey }

func (s edSigner) SignCheckpoint(msg []byte) (string, []byte, error) {
	if s.key == nil {
		return "", nil, errors.New("sealed")
	}
	return Ed25519KeyID(s.key.Public().(ed25519.PublicKey)), ed25519.Sign(s.key, msg), nil
}

// checkpointedLog writes a log of inspects and reveals with a checkpoint
// every 4 records and one at the end, and returns the log and export paths.
func checkpointedLog(t *testing.T, key ed25519.PrivateKey) (string, string) {
	t.Helper()
	dir := t.TempDir()
	path, export := filepath.Join(dir, "audit.log"), filepath.Join(dir, "audit.log.checkpoints")
	l, err := Open(path, Options{SpoolInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := StartCheckpoints(l, edSigner{key}, CheckpointOptions{Every: 4, Interval: time.Hour, Export: export})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 20 {
		e := Event{Event: EventInspect, Client: "gateway", Outcome: OutcomeSuccess}
		if i%3 == 0 {
			e = Event{Event: EventReveal, Client: "backoffice", Actor: "op_1", Reason: "refund", Outcome: OutcomeSuccess}
		}
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			// Let the checkpointer see the commit, as it would under load.
			if err := cp.checkpoint(ctx, 4); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path, export
}

func readEvents(t *testing.T, path string) []Event {
	t.Helper()
	evs := eventsOf(t, path)
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs // oldest first
}

// rebuild writes evs as a fresh, valid chain: what someone who can write the
// file but has no key can do.
func rebuild(t *testing.T, path string, evs []Event) {
	t.Helper()
	var b []byte
	head, headRaw := genesis, make([]byte, 32)
	for i, e := range evs {
		e.Seq = uint64(i + 1)
		sealed, line, raw, err := seal(e, head, headRaw)
		if err != nil {
			t.Fatal(err)
		}
		head, headRaw = sealed.Hash, raw
		b = append(b, line...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func verifyFiles(t *testing.T, path, export string, v CheckpointVerifier) (CheckpointReport, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var x *os.File
	if export != "" {
		if x, err = os.Open(export); err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		_, cr, err := VerifyCheckpoints(f, x, v)
		return cr, err
	}
	_, cr, err := VerifyCheckpoints(f, nil, v)
	return cr, err
}

func TestCheckpoints(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	otherPub, otherKey, _ := ed25519.GenerateKey(nil)
	v := Ed25519Verifier{Key: pub}

	without := func(evs []Event, drop func(Event) bool) []Event {
		var out []Event
		for _, e := range evs {
			if !drop(e) {
				out = append(out, e)
			}
		}
		return out
	}
	isReveal := func(e Event) bool { return e.Event == EventReveal }
	tests := []struct {
		name      string
		tamper    func(t *testing.T, path, export string)
		useExport bool
		v         CheckpointVerifier
		ok        bool
	}{
		{"ok/untampered", nil, true, v, true},
		{"ok/untampered-chain-only", nil, false, v, true},
		{"fail/reveals-deleted-rehashed", func(t *testing.T, path, _ string) {
			rebuild(t, path, without(readEvents(t, path), isReveal))
		}, true, v, false},
		{"fail/reveals-deleted-rehashed-chain-only", func(t *testing.T, path, _ string) {
			rebuild(t, path, without(readEvents(t, path), isReveal))
		}, false, v, false},
		{"fail/reveals-and-checkpoints-deleted-rehashed", func(t *testing.T, path, _ string) {
			rebuild(t, path, without(readEvents(t, path), func(e Event) bool { return isReveal(e) || e.Event == EventAuditCheckpoint }))
		}, true, v, false},
		{"fail/forged-checkpoint-signature", func(t *testing.T, path, _ string) {
			evs := readEvents(t, path)
			for i, e := range evs {
				if e.Event == EventAuditCheckpoint {
					cp, _ := checkpointOf(&e)
					evs[i].Reason = base64.RawURLEncoding.EncodeToString(ed25519.Sign(otherKey, cp.Message()))
					break
				}
			}
			rebuild(t, path, evs)
		}, false, v, false},
		{"fail/checkpoint-by-another-key", nil, true, Ed25519Verifier{Key: otherPub}, false},
		{"fail/no-key", nil, false, nil, false},
		{"fail/tail-cut-past-exported", func(t *testing.T, path, _ string) {
			evs := readEvents(t, path)
			rebuild(t, path, evs[:len(evs)-3])
		}, true, v, false},
		{"fail/export-missing-a-checkpoint", func(t *testing.T, _, export string) {
			b, _ := os.ReadFile(export)
			_ = os.WriteFile(export, b[bytes.IndexByte(b, '\n')+1:], 0o600)
		}, true, v, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, export := checkpointedLog(t, key)
			if tc.tamper != nil {
				tc.tamper(t, path, export)
			}
			// The hash chain alone cannot tell: that is the point.
			if b, _ := os.ReadFile(path); tc.tamper != nil {
				if _, err := Verify(bytes.NewReader(b)); err != nil {
					t.Fatalf("tampering broke the plain chain (test too weak): %v", err)
				}
			}
			if !tc.useExport {
				export = ""
			}
			cr, err := verifyFiles(t, path, export, tc.v)
			if tc.ok {
				if err != nil || cr.InChain < 5 || cr.Newest.Seq == 0 || cr.Uncovered != 1 {
					t.Fatalf("untampered: %+v %v", cr, err)
				}
				if tc.useExport && cr.Exported != cr.InChain {
					t.Fatalf("exported %d, in chain %d", cr.Exported, cr.InChain)
				}
				return
			}
			if !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("tampered log verified: %+v %v", cr, err)
			}
		})
	}
}

// TestCheckpointerWaitsForKey: while the key service is sealed nothing is
// signed; nothing new means no new checkpoint.
func TestCheckpointerWaitsForKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{SpoolInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cp, err := StartCheckpoints(l, edSigner{}, CheckpointOptions{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _ = l.Append(ctx, Event{Event: EventInspect, Outcome: OutcomeSuccess})
	if err := cp.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if seq, _ := l.Head(); seq != 1 {
		t.Fatalf("a sealed signer produced a checkpoint: head %d", seq)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	cp.mu.Lock()
	cp.signer = edSigner{key}
	cp.mu.Unlock()
	_ = cp.Checkpoint(ctx)
	_ = cp.Checkpoint(ctx)
	if err := cp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if seq, _ := l.Head(); seq != 2 {
		t.Fatalf("head %d, want 2 (one checkpoint, none for its own event)", seq)
	}
}
