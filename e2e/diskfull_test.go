package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/testenv"
)

// TestAuditDiskFull runs the key service with its audit log on a small
// disk (a tmpfs this test mounts and later grows), fills it with payments,
// and frees space: while full, every payment is refused with a 503 and no
// token is minted; once there is space again the key service recovers on
// its own schedule (no restart, no person), records the outage in its chain
// with an alarm, and payments go through.
func TestAuditDiskFull(t *testing.T) {
	t.Parallel()
	dir := smallDisk(t, "32k")
	s := newStack(t, stackOptions{
		GatewayArgs:     []string{"-submit-per-ip", "1000"},
		KeyServiceArgs:  []string{"-audit-log", "/audit/audit.log"},
		KeyServiceBinds: []string{dir + ":/audit"},
	})
	tr := s.startTraffic(brandCards[0], 10*time.Millisecond)
	t.Cleanup(tr.stop)

	eventually(t, 90*time.Second, "a payment refused with the audit disk full", func() (bool, string) {
		ok, failed := tr.results()
		return len(failed) > 0, fmt.Sprintf("%d ok, %d failed", len(ok), len(failed))
	})
	fullAt := time.Now()
	okBefore, _ := tr.results()
	// Still full: nothing goes through for a while.
	time.Sleep(2 * time.Second)
	if ok, _ := tr.results(); len(ok) != len(okBefore) {
		t.Errorf("%d payments acknowledged while the audit disk was full", len(ok)-len(okBefore))
	}

	if out, err := exec.Command("mount", "-o", "remount,size=4m", dir).CombinedOutput(); err != nil {
		t.Fatalf("grow the audit disk: %v: %s", err, out)
	}
	freedAt := time.Now()
	tr.waitOK(t, 3, freedAt, 2*time.Minute)
	recovered := time.Since(freedAt)
	tr.stop()
	ok, failed := tr.results()
	t.Logf("audit disk full after %d payments; refused %d; payments again %s after space was freed (refusing for %s in all)",
		len(okBefore), len(failed), recovered.Round(100*time.Millisecond), time.Since(fullAt).Round(100*time.Millisecond))

	t.Run("refusals-are-503", func(t *testing.T) {
		for _, err := range failed {
			if !isStatus(err, http.StatusServiceUnavailable) {
				t.Errorf("payment with the audit disk full failed with %v, want 503", err)
			}
		}
	})
	t.Run("every-acknowledged-token-kept", func(t *testing.T) {
		stored := map[string]bool{}
		for _, v := range s.tokens(t) {
			stored[v.ID] = true
		}
		for _, p := range ok {
			if !stored[p.Token] {
				t.Errorf("acknowledged token %s is missing", p.Token)
			}
		}
	})
	t.Run("outage-recorded-in-the-chain", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(dir, "audit.log"))
		if err != nil {
			t.Fatal(err)
		}
		saveArtifactOnFailure(t, "keyservice-audit.log", raw)
		if _, err := audit.Verify(bytes.NewReader(raw)); err != nil {
			t.Fatalf("the recovered log does not verify: %v", err)
		}
		var recoveredEv, alarm bool
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var e audit.Event
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				t.Fatalf("unparsable line in the recovered log: %q", sc.Bytes())
			}
			switch e.Event {
			case audit.EventAuditRecovered:
				recoveredEv = true
				t.Logf("audit.recovered: code %s, reason %s", e.Code, e.Reason)
			case audit.EventAlarm:
				alarm = true
			}
		}
		if !recoveredEv || !alarm {
			t.Errorf("recovered log: audit.recovered %v, alarm %v; want both", recoveredEv, alarm)
		}
	})
}

// smallDisk mounts a tmpfs of size at a fresh directory (writable by the
// images' uid) and unmounts it when the test ends. Mounting needs root,
// which CI has; elsewhere the test skips.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0777", "tmpfs", dir).CombinedOutput()
	if err != nil {
		testenv.Missing(t, "cannot mount a small disk for the audit log (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
