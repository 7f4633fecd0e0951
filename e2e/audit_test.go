package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
)

// ksAuditLog is the key service's audit log in its container (its state
// volume; the image's working directory and the flag's default name).
const ksAuditLog = "/var/lib/blindgate/audit.log"

// auditTrail checks the key service's audit chain with the image's own
// `keyservice audit verify`, run in a one-shot container on the key
// service's volume as an auditor would, and returns the log's events, copied
// out of the container (no shell needed).
func (z *keyZone) auditTrail(t *testing.T) []audit.Event {
	t.Helper()
	return z.auditTrailAt(t, ksAuditLog)
}

// auditTrailAt is auditTrail for the audit log at path in the key
// service's state volume (a replica's: ksReplicaAuditLog).
func (z *keyZone) auditTrailAt(t *testing.T, path string) []audit.Event {
	t.Helper()
	out := z.admin(t, nil, "audit", "verify", "-audit-log", path)
	if !strings.Contains(out, "audit chain OK") {
		t.Fatalf("keyservice audit verify -audit-log %s: %s", path, tail([]byte(out), 2000))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := z.KeyService.CopyFileFromContainer(ctx, path)
	if err != nil {
		t.Fatalf("copy %s: %v", path, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("copy %s: %v", path, err)
	}
	saveArtifactOnFailure(t, "keyservice-"+filepath.Base(path), raw)
	// The library agrees with the command (and checks the copy we parse).
	rep, err := audit.Verify(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("audit.Verify of the copied log: %v", err)
	}
	var events []audit.Event
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %d: %v", len(events)+1, err)
		}
		events = append(events, e)
	}
	if len(events) != rep.Lines {
		t.Fatalf("parsed %d events, audit.Verify counted %d lines", len(events), rep.Lines)
	}
	t.Logf("key service audit chain OK: %d events, head %s", rep.Lines, rep.Head)
	return events
}

// auditCheckpoints runs `keyservice audit verify` beside the key service
// (the chain, and every signed checkpoint in it and in its exported copy
// against the keyring's audit public key) and returns how many checkpoints
// it verified in the chain and in the export. No checkpoint at all is a
// failure: the command then only warns.
func (z *keyZone) auditCheckpoints(t *testing.T) (inChain, exported int) {
	t.Helper()
	out := z.admin(t, nil, "audit", "verify")
	m := regexp.MustCompile(`checkpoints OK: (\d+) in the chain, (\d+) exported`).FindStringSubmatch(out)
	if !strings.Contains(out, "audit chain OK") || m == nil || strings.Contains(out, "WARNING") {
		t.Fatalf("keyservice audit verify, want the chain and signed checkpoints verified:\n%s", tail([]byte(out), 2000))
	}
	inChain, _ = strconv.Atoi(m[1])
	exported, _ = strconv.Atoi(m[2])
	t.Logf("keyservice audit verify: %s", strings.TrimSpace(out))
	return inChain, exported
}

// revealRecord is a reveal the test made and expects on record.
type revealRecord struct {
	Token, Actor, Reason string
}

// checkReveals fails t unless each reveal appears as a successful "reveal"
// event naming the token, the operator and the reason, and no other
// successful reveal is on record.
func checkReveals(t *testing.T, events []audit.Event, want []revealRecord) {
	t.Helper()
	var got []revealRecord
	for _, e := range events {
		if e.Event == audit.EventReveal && e.Outcome == audit.OutcomeSuccess {
			got = append(got, revealRecord{Token: e.Resource, Actor: e.Actor, Reason: e.Reason})
		}
	}
	remaining := append([]revealRecord(nil), got...)
	for _, w := range want {
		found := false
		for i, g := range remaining {
			if g == w {
				remaining = append(remaining[:i], remaining[i+1:]...)
				found = true
				break
			}
		}
		if !found {
			t.Errorf("reveal of %s by %s (%q) is not in the audit log; reveals on record: %+v", w.Token, w.Actor, w.Reason, got)
		}
	}
	if len(remaining) > 0 {
		t.Errorf("reveals on record that the test did not make: %+v", remaining)
	}
}

// saveArtifactOnFailure keeps data among t's artifacts if t fails, now or
// later (the audit log explains a failed reveal check).
func saveArtifactOnFailure(t *testing.T, name string, data []byte) {
	t.Helper()
	if t.Failed() {
		saveArtifact(t, name, data)
		return
	}
	t.Cleanup(func() {
		if t.Failed() {
			saveArtifact(t, name, data)
		}
	})
}
