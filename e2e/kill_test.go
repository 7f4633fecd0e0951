package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	dockerclient "github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/blindgate/blindgate/internal/audit"
)

// gwAuditLog is the gateway's audit log in its container (stack's -audit-log).
const gwAuditLog = "/var/lib/blindgate/gateway-audit.log"

// TestProcessKill kills the key service, then the gateway, with SIGKILL
// while payments flow: no chance to flush, close or say goodbye, as on a
// power cut or an OOM kill. Each comes back on its own (the audit log's
// start-up check quarantines a torn last line instead of refusing to
// start), payments resume, every acknowledged token is kept and every
// stored token has its token.create record in the gateway's audit trail
// and its inspect in the key service's.
func TestProcessKill(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{GatewayArgs: []string{"-submit-per-ip", "1000"}})
	tr := s.startTraffic(brandCards[0], 20*time.Millisecond)
	t.Cleanup(tr.stop)
	tr.waitOK(t, 3, time.Time{}, 30*time.Second)

	for _, victim := range []struct {
		name string
		c    testcontainers.Container
	}{
		{"keyservice", s.KeyService},
		{"gateway", s.Gateway},
	} {
		// Kill in the middle of a burst: the process is busy appending.
		tr.waitOK(t, 2, time.Now(), 30*time.Second)
		killedAt := time.Now()
		sigkill(t, victim.c)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := victim.c.Start(ctx); err != nil {
			cancel()
			t.Fatalf("restart %s after SIGKILL: %v\n%s", victim.name, err, tail(containerLogs(victim.c), 4000))
		}
		cancel()
		eventually(t, 60*time.Second, "gateway /readyz 200 after the "+victim.name+" restarted", func() (bool, string) {
			st, b := get(t, s.GatewayURL+"/readyz")
			return st == http.StatusOK, fmt.Sprintf("%d %s", st, b)
		})
		since := time.Now()
		tr.waitOK(t, 3, since, 60*time.Second)
		t.Logf("%s killed; payments again %s later", victim.name, time.Since(killedAt).Round(100*time.Millisecond))
	}
	tr.stop()
	ok, failed := tr.results()
	t.Logf("traffic: %d acknowledged, %d refused around the kills", len(ok), len(failed))

	stored := map[string]tokenView{}
	for _, v := range s.tokens(t) {
		stored[v.ID] = v
	}
	t.Run("every-acknowledged-token-kept", func(t *testing.T) {
		for _, p := range ok {
			if _, found := stored[p.Token]; !found {
				t.Errorf("token %s was acknowledged at %s and is gone after the kills", p.Token, p.At.Format(time.TimeOnly))
			}
		}
	})
	t.Run("no-token-without-its-audit-record", func(t *testing.T) {
		created := map[string]bool{}
		for _, e := range containerAudit(t, s.Gateway, gwAuditLog) {
			if e.Event == audit.EventTokenCreate && e.Outcome == audit.OutcomeSuccess {
				created[e.Resource] = true
			}
		}
		// An inspect record names the ciphertext, not the token: count them.
		inspected := 0
		for _, e := range s.auditTrail(t) {
			if e.Event == audit.EventInspect && e.Outcome == audit.OutcomeSuccess {
				inspected++
			}
		}
		if inspected < len(stored) {
			t.Errorf("%d tokens stored, only %d successful inspects in the key service's audit log", len(stored), inspected)
		}
		// The record is synced before the token is written (gateway/ingest),
		// so no kill can leave a token without it.
		for _, p := range ok {
			if !created[p.Token] {
				t.Errorf("token %s was acknowledged without a token.create record in the gateway's audit log", p.Token)
			}
		}
		for id := range stored {
			if !created[id] {
				t.Errorf("stored token %s has no token.create record", id)
			}
		}
	})
	t.Run("refusals-were-clean", func(t *testing.T) {
		for _, err := range failed {
			// A refused payment says "retry later"; a dropped connection
			// to a killed gateway is a transport error, never a 4xx or 500.
			// An answer without an error object did not come from the
			// gateway (this machine's network answers for a port nobody
			// listens on): it counts as a dropped connection.
			if fromGateway(err) && !isStatus(err, http.StatusServiceUnavailable) && !isStatus(err, http.StatusBadGateway) {
				t.Errorf("payment around a kill failed with %v, want 503/502 or a dropped connection", err)
			}
		}
	})
}

// sigkill sends SIGKILL to c's process and waits until Docker reports it
// stopped.
func sigkill(t *testing.T, c testcontainers.Container) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dc, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	defer dc.Close()
	if _, err := dc.ContainerKill(ctx, c.GetContainerID(), dockerclient.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatalf("SIGKILL %s: %v", c.GetContainerID(), err)
	}
	for ctx.Err() == nil {
		st, err := c.State(ctx)
		if err == nil && !st.Running {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("container %s still running after SIGKILL", c.GetContainerID())
}

// containerAudit copies an audit log out of a container, checks its chain
// with the library and returns its events.
func containerAudit(t *testing.T, c testcontainers.Container, path string) []audit.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := c.CopyFileFromContainer(ctx, path)
	if err != nil {
		t.Fatalf("copy %s: %v", path, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("copy %s: %v", path, err)
	}
	saveArtifactOnFailure(t, "gateway-audit.log", raw)
	if _, err := audit.Verify(bytes.NewReader(raw)); err != nil {
		t.Fatalf("audit.Verify of %s: %v", path, err)
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
			t.Fatalf("%s line %d: %v", path, len(events)+1, err)
		}
		events = append(events, e)
	}
	return events
}
