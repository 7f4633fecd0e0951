package unwrap

import (
	"context"
	"crypto"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/keyring"
)

// trace is the order in which a service appended audit records and used a
// private key. The package's ordering invariants are statements about it.
type trace struct {
	mu    sync.Mutex
	steps []string
}

const stepDecrypt = "decrypt"

func (tr *trace) add(step string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.steps = append(tr.steps, step)
}

func (tr *trace) get() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.steps)
}

func (tr *trace) decrypts() int {
	n := 0
	for _, s := range tr.get() {
		if s == stepDecrypt {
			n++
		}
	}
	return n
}

// recordingAudit notes every append in the trace (event/outcome, and
// whether it failed), then passes it to the real log or fails it.
type recordingAudit struct {
	tr   *trace
	next Auditor
	fail atomic.Bool
}

func (r *recordingAudit) Append(ctx context.Context, e audit.Event) (audit.Event, error) {
	step := "audit " + e.Event + "/" + e.Outcome
	if r.fail.Load() {
		r.tr.add(step + " FAILED")
		return audit.Event{}, audit.ErrUnavailable
	}
	r.tr.add(step)
	return r.next.Append(ctx, e)
}

func auditStep(event, outcome string) string { return "audit " + event + "/" + outcome }

// watched is a service over the fixture's keys whose audit appends and
// decrypts are recorded, in order, in one trace.
func (f *fixture) watched(t *testing.T) (*Service, *recordingAudit, *trace) {
	t.Helper()
	tr := &trace{}
	ra := &recordingAudit{tr: tr, next: f.log}
	svc := New(staticKeys{kr: f.kr}, ra, ratelimit.NewMemory(), f.logger(t), Config{Now: func() time.Time { return f.now }, Approver: &approver{cred: "cred_1"}})
	svc.decrypt = func(j *jose.JWE, key crypto.PrivateKey) ([]byte, error) {
		tr.add(stepDecrypt)
		return j.Decrypt(key)
	}
	return svc, ra, tr
}

// TestRevealAuditBeforeDecrypt: a reveal's record is durable before the
// private key is used, and a record that cannot be written means nothing
// is decrypted at all. The trace sees both the auditor and the decrypt, so
// decrypting first (even if the result were then thrown away) fails here.
func TestRevealAuditBeforeDecrypt(t *testing.T) {
	f := newFixture(t, nil)
	good := f.encrypt(t, testPAN, f.now.Add(-48*time.Hour), "cs_1")
	tampered := func() string {
		p := strings.Split(good, ".")
		p[3] = "AAAA" + p[3][4:]
		return strings.Join(p, ".")
	}()
	for _, tc := range []struct {
		name        string
		jwe, reason string
		auditFails  bool
		want        error
		steps       []string
	}{
		{"200/audited-then-decrypted", good, "chargeback 1234", false, nil,
			[]string{auditStep(audit.EventReveal, audit.OutcomeSuccess), stepDecrypt}},
		{"503/audit-fails-nothing-decrypted", good, "chargeback 1234", true, ErrAudit,
			[]string{auditStep(audit.EventReveal, audit.OutcomeSuccess) + " FAILED"}},
		{"422/undecryptable-recorded-after-the-grant", tampered, "chargeback 1234", false, ErrUndecryptable,
			[]string{auditStep(audit.EventReveal, audit.OutcomeSuccess), stepDecrypt, auditStep(audit.EventReveal, audit.OutcomeFailure)}},
		{"400/refused-before-any-key-use", good, "no", false, ErrInvalidRequest,
			[]string{auditStep(audit.EventRevealDenied, audit.OutcomeDenied)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, ra, tr := f.watched(t)
			ra.fail.Store(tc.auditFails)
			r, err := reveal(t, svc, Meta{Client: "backoffice"}, tc.jwe, "op_alice", tc.reason, "tok_1")
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got := tr.get(); !slices.Equal(got, tc.steps) {
				t.Fatalf("steps %q, want %q", got, tc.steps)
			}
			if (r.PAN == testPAN) != (tc.want == nil) || tc.want != nil && r != (cardPayload{}) {
				t.Fatalf("revealed %v (exp %d/%d), want the card only on success", r.PAN != "", r.ExpMonth, r.ExpYear)
			}
		})
	}
}

// TestAnswerOnlyAfterAudit: inspect and rewrap must decrypt to answer, but
// their answer leaves the service only once its audit record is written; a
// record that cannot be written withholds the whole answer (no masked
// field, no ciphertext, no binding).
func TestAnswerOnlyAfterAudit(t *testing.T) {
	f := newFixture(t, nil)
	stored := f.encrypt(t, testPAN, f.now.Add(-48*time.Hour), "cs_9")
	// Rotated: the rewrap re-encrypts, so its answer is a new ciphertext.
	if _, err := f.kr.Rotate(keyring.AlgECDHP256); err != nil {
		t.Fatal(err)
	}
	fresh := func() string { return f.encrypt(t, testPAN, f.now, "cs_1") }
	binding := f.kr.Binding("m_1", []byte(stored))
	type answer struct {
		zero bool
		err  error
	}
	ops := []struct {
		name  string
		event string
		call  func(svc *Service) answer
	}{
		{"inspect", audit.EventInspect, func(svc *Service) answer {
			m, err := svc.Inspect(context.Background(), Meta{Client: "gateway"}, InspectInput{JWE: fresh(), Session: "cs_1", Merchant: "m_1", CVCJWE: f.cvc(t, "123", f.now, "cs_1")})
			return answer{m == Masked{}, err}
		}},
		{"rewrap", audit.EventRewrap, func(svc *Service) answer {
			rw, err := svc.Rewrap(context.Background(), Meta{Client: "gateway"}, RewrapInput{JWE: stored, Merchant: "m_1", Refresh: true, Binding: binding})
			return answer{rw == Rewrapped{}, err}
		}},
	}
	for _, op := range ops {
		t.Run("200/"+op.name+"-answers-after-its-record", func(t *testing.T) {
			svc, _, tr := f.watched(t)
			a := op.call(svc)
			if a.err != nil || a.zero {
				t.Fatalf("err = %v, empty answer %v", a.err, a.zero)
			}
			steps := tr.get()
			if len(steps) == 0 || steps[len(steps)-1] != auditStep(op.event, audit.OutcomeSuccess) || tr.decrypts() == 0 {
				t.Fatalf("steps %q: want decrypts, then the %s record last", steps, op.event)
			}
		})
		t.Run("503/"+op.name+"-audit-fails-answer-withheld", func(t *testing.T) {
			svc, ra, tr := f.watched(t)
			ra.fail.Store(true)
			a := op.call(svc)
			if !errors.Is(a.err, ErrAudit) || !a.zero {
				t.Fatalf("err = %v, empty answer %v: want ErrAudit and nothing answered", a.err, a.zero)
			}
			if steps := tr.get(); steps[len(steps)-1] != auditStep(op.event, audit.OutcomeSuccess)+" FAILED" {
				t.Fatalf("steps %q", steps)
			}
		})
	}
}
