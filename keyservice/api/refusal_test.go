package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/unwrap"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// failingAudit is the unwrap domain's audit log with a full disk, once fail
// is set.
type failingAudit struct {
	next unwrap.Auditor
	fail atomic.Bool
}

func (f *failingAudit) Append(ctx context.Context, e audit.Event) (audit.Event, error) {
	if f.fail.Load() {
		return audit.Event{}, audit.ErrUnavailable
	}
	return f.next.Append(ctx, e)
}

type keyOp struct {
	name   string
	signer *client.Signer
	path   string
	body   any
	// answer is a member the successful answer has, which a refusal must not.
	answer string
	// send, when set, makes the request instead of path and body (a
	// reveal needs a fresh nonce and assertion each time).
	send func(t *testing.T) (*http.Response, map[string]any)
}

func (op keyOp) do(t *testing.T, ts *testServer) (*http.Response, map[string]any) {
	t.Helper()
	if op.send != nil {
		return op.send(t)
	}
	return ts.call(t, op.signer, http.MethodPost, op.path, op.body)
}

// keyOps are the signed operations that use a private key, on one stored
// card bound to m_1.
func (ts *testServer) keyOps(t *testing.T) []keyOp {
	t.Helper()
	jwe := ts.cardJWE(t, testPAN, "cs_1", time.Now())
	binding := ts.Keyring.Binding("m_1", []byte(jwe))
	// The operator's passkey is enrolled and approved before any fault.
	if ts.passkeys["op_1"] == nil {
		ts.passkeys["op_1"] = ts.EnrolPasskey(t, "backoffice", "op_1")
	}
	return []keyOp{
		{"inspect", ts.gateway, "/v1/inspect", wire.InspectRequest{JWE: jwe, Session: "cs_1", Merchant: "m_1"}, "fingerprint", nil},
		{"rewrap", ts.gateway, "/v1/rewrap", wire.RewrapRequest{JWE: jwe, Merchant: "m_1", Refresh: true, Binding: binding}, "fingerprint", nil},
		{"reveal", ts.backoffic, "/v1/reveal", nil, "jwe", func(t *testing.T) (*http.Response, map[string]any) {
			return ts.reveal(t, "op_1", "customer dispute", "tok_1", jwe)
		}},
	}
}

// refusedWithNothing checks a refusal: its status and code, and a body that
// is the error alone, with no member of the answer and no digit of the card.
func refusedWithNothing(t *testing.T, resp *http.Response, m map[string]any, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || errCode(m) != code {
		t.Fatalf("status %d code %q, want %d %s (%v)", resp.StatusCode, errCode(m), status, code, m)
	}
	for k := range m {
		if k != "error" {
			t.Errorf("the refusal carries %q: %v", k, m[k])
		}
	}
	if msg, _ := m["error"].(map[string]any)["message"].(string); strings.Contains(msg, testPAN[:6]) || strings.Contains(msg, testPAN[12:]) {
		t.Errorf("the refusal's message holds card digits: %q", msg)
	}
}

// TestAuditFailureWithholdsAnswer: with the audit log failing, inspect,
// rewrap and reveal answer 503 audit_unavailable and nothing else: no masked
// field, no ciphertext, no binding, no number. A handler or domain that
// swallowed the failure would answer 200 with the fields.
func TestAuditFailureWithholdsAnswer(t *testing.T) {
	fa := &failingAudit{}
	ts := newTestServerWith(t, memoryBackends(), func(o *kstest.Options) {
		o.Audit = func(a unwrap.Auditor) unwrap.Auditor { fa.next = a; return fa }
	})
	for _, op := range ts.keyOps(t) {
		t.Run("200/"+op.name+"-control", func(t *testing.T) {
			fa.fail.Store(false)
			resp, m := op.do(t, ts)
			if resp.StatusCode != 200 || m[op.answer] == nil {
				t.Fatalf("with the audit log working: %d %v", resp.StatusCode, m)
			}
		})
		t.Run("503/"+op.name+"-audit-fails", func(t *testing.T) {
			fa.fail.Store(true)
			resp, m := op.do(t, ts)
			refusedWithNothing(t, resp, m, http.StatusServiceUnavailable, "audit_unavailable")
		})
	}
}

// TestSealedRefusesEverySignedOperation: sealed, the key service refuses
// inspect, reveal, rewrap and the audit query with 503 sealed and nothing
// else; unsealed again, the same requests are answered (so the refusals
// were the seal's). The refused reveal is on record.
func TestSealedRefusesEverySignedOperation(t *testing.T) {
	ts := newTestServer(t, memoryBackends())
	ops := append(ts.keyOps(t), keyOp{"audit-query", ts.backoffic, "/v1/audit/query", wire.AuditQueryRequest{}, "chain_ok", nil})
	ts.Holder.Seal()
	for _, op := range ops {
		t.Run("503/"+op.name+"-sealed", func(t *testing.T) {
			resp, m := op.do(t, ts)
			refusedWithNothing(t, resp, m, http.StatusServiceUnavailable, "sealed")
		})
	}
	if err := ts.Holder.UnsealWithKey(ts.Master); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		t.Run("200/"+op.name+"-unsealed", func(t *testing.T) {
			resp, m := op.do(t, ts)
			if resp.StatusCode != 200 || m[op.answer] == nil {
				t.Fatalf("unsealed: %d %v", resp.StatusCode, m)
			}
		})
	}
	denied := ts.Events(t, audit.Filter{Event: audit.EventRevealDenied})
	if len(denied) != 1 || denied[0].Code != "sealed" || denied[0].Actor != "op_1" {
		t.Fatalf("reveal denials on record: %+v, want the sealed one", denied)
	}
}
