package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/internal/audit"
)

// auditLog writes n inspect events to a new log and returns its path.
func auditLog(t *testing.T, n int, opts audit.Options) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	opts.SpoolInterval = -1
	l, err := audit.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := l.Append(context.Background(), audit.Event{Event: audit.EventInspect, Client: "gateway", Resource: "cs_1", Outcome: audit.OutcomeSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuditRecover(t *testing.T) {
	t.Run("ok/torn-last-line-set-aside", func(t *testing.T) {
		path := auditLog(t, 3, audit.Options{})
		intact, _ := os.ReadFile(path)
		torn := []byte(`{"seq":4,"time":"2031-01-01T00:`)
		_ = os.WriteFile(path, append(bytes.Clone(intact), torn...), 0o600)

		out, err := runCmd(t, "", "audit", "recover", "-audit-log", path)
		if err != nil {
			t.Fatalf("audit recover: %v\n%s", err, out)
		}
		for _, want := range []string{"torn last line set aside: line 4", "moved to " + path + ".quarantine-", "continues from seq 3", "recorded as audit.recovered at seq 4"} {
			if !strings.Contains(out, want) {
				t.Fatalf("summary lacks %q:\n%s", want, out)
			}
		}
		q, _ := filepath.Glob(path + ".quarantine-*")
		if len(q) != 1 {
			t.Fatalf("quarantine files %v", q)
		}
		if b, _ := os.ReadFile(q[0]); !bytes.Equal(b, torn) {
			t.Fatalf("quarantine holds %q", b)
		}
		evs, err := audit.Read(bytes.NewReader(must(os.ReadFile(path))), audit.Filter{})
		if err != nil || len(evs) != 5 || evs[1].Event != audit.EventAuditRecovered || evs[0].Event != audit.EventAlarm {
			t.Fatalf("log after recover: %d events, %v", len(evs), err)
		}

		// Run again: nothing left to do.
		out, err = runCmd(t, "", "audit", "recover", "-audit-log", path)
		if err != nil || !strings.Contains(out, "nothing to recover") {
			t.Fatalf("second recover: %v\n%s", err, out)
		}
	})
	t.Run("refused/broken-in-the-middle", func(t *testing.T) {
		path := auditLog(t, 3, audit.Options{})
		b, _ := os.ReadFile(path)
		lines := bytes.SplitAfter(b, []byte("\n"))
		broken := append(bytes.Clone(lines[0]), lines[2]...)
		_ = os.WriteFile(path, broken, 0o600)
		out, err := runCmd(t, "", "audit", "recover", "-audit-log", path)
		if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("recover of a log with a deleted line: %v\n%s", err, out)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(after, broken) {
			t.Fatal("a refused recover changed the log")
		}
	})
	t.Run("refused/held-by-a-running-service", func(t *testing.T) {
		path := auditLog(t, 1, audit.Options{})
		l, err := audit.Open(path, audit.Options{SpoolInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if out, err := runCmd(t, "", "audit", "recover", "-audit-log", path); err == nil || !strings.Contains(err.Error(), "running process") {
			t.Fatalf("recover while held: %v\n%s", err, out)
		}
	})
	t.Run("refused/no-log", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		if out, err := runCmd(t, "", "audit", "recover", "-audit-log", path); err == nil {
			t.Fatalf("recover of no log: %s", out)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatal("recover created a log")
		}
	})
}

func TestAuditVerifyAcrossSegments(t *testing.T) {
	path := auditLog(t, 400, audit.Options{SegmentSize: 16 << 10})
	pub, _, _ := ed25519.GenerateKey(nil)
	pin := base64.StdEncoding.EncodeToString(pub)
	verify := func() (string, error) {
		return runCmd(t, "", "audit", "verify", "-audit-log", path, "-keyring", filepath.Join(t.TempDir(), "none"), "-audit-public-key", pin, "-audit-checkpoints", "none")
	}
	files, _ := audit.Segments(path)
	if len(files) < 3 {
		t.Fatalf("%d segment files", len(files))
	}
	out, err := verify()
	if err != nil || !strings.Contains(out, "audit chain OK:") || !strings.Contains(out, "segment files") || strings.Contains(out, "WARNING: the chain is verified from") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	// An edit in the oldest segment, which a start never reads.
	b, _ := os.ReadFile(files[0])
	_ = os.WriteFile(files[0], bytes.Replace(b, []byte(`"resource":"cs_1"`), []byte(`"resource":"cs_2"`), 1), 0o600)
	if out, err := verify(); err == nil || !strings.Contains(err.Error(), "BROKEN") || !strings.Contains(err.Error(), filepath.Base(files[0])) {
		t.Fatalf("verify of an edited old segment: %v\n%s", err, out)
	}
	// That segment removed (past its retention): the rest verifies, with a warning.
	_ = os.Remove(files[0])
	if out, err := verify(); err != nil || !strings.Contains(out, "WARNING: the chain is verified from seq") {
		t.Fatalf("verify without the oldest segment: %v\n%s", err, out)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
