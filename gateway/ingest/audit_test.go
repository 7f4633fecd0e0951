package ingest_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/ingest"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/logtest"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/client"
)

// recorder is an audit trail in memory; fail makes every write fail.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
	fail   error
}

func (r *recorder) Append(_ context.Context, e audit.Event) (audit.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return audit.Event{}, r.fail
	}
	r.events = append(r.events, e)
	return e, nil
}

func (r *recorder) list() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Event(nil), r.events...)
}

// TestSubmitAuditsMintedToken: ingest writes one token.create per minted
// token, with the merchant, token, key and shopper address; a refused
// submission and a retry answered with the existing token write none.
func TestSubmitAuditsMintedToken(t *testing.T) {
	st := allStores(t)[0](t)
	rec := &recorder{}
	in := &slowInspector{fail: &client.Error{Status: 422, Code: "card_invalid"}}
	svc := ingest.New(st.sessions, st.tokens, in, ratelimit.NewMemory(), noLimits(), time.Minute, ingest.WithAudit(rec, nil))
	cs := newSession(t, st)
	sub := ingest.Submission{SessionID: cs.ID, CardJWE: jwe(1), ClientIP: "192.0.2.7"}

	if _, err := svc.Submit(context.Background(), sub); err == nil {
		t.Fatal("refused card minted a token")
	}
	if got := rec.list(); len(got) != 0 {
		t.Fatalf("refused submission audited: %+v", got)
	}
	in.fail = nil
	tok, err := svc.Submit(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	want := audit.Event{Event: audit.EventTokenCreate, Client: merchantID, Resource: tok.ID, Kid: "kek-1", Origin: "192.0.2.7", Outcome: audit.OutcomeSuccess}
	if got := rec.list(); len(got) != 1 || got[0] != want {
		t.Fatalf("audit = %+v, want [%+v]", got, want)
	}
	// The shopper's retry of the same ciphertext gets the same token; the
	// token already has its record.
	if again, err := svc.Submit(context.Background(), sub); err != nil || again.ID != tok.ID {
		t.Fatalf("retry: %s %v", again.ID, err)
	}
	if _, err := svc.Submit(context.Background(), ingest.Submission{SessionID: cs.ID, CardJWE: jwe(2), ClientIP: "192.0.2.7"}); err == nil {
		t.Fatal("second card on a completed session accepted")
	}
	if got := rec.list(); len(got) != 1 {
		t.Fatalf("retry or refusal audited: %+v", got)
	}
}

// TestSubmitAuditFailureKeepsToken: the gateway's trail is best effort (see
// the package comment): a failed write is logged at ERROR and the committed
// token is still answered.
func TestSubmitAuditFailureKeepsToken(t *testing.T) {
	st := allStores(t)[0](t)
	log, logs := logtest.Text(t)
	rec := &recorder{fail: errors.New("disk full")}
	svc := ingest.New(st.sessions, st.tokens, &slowInspector{}, ratelimit.NewMemory(), noLimits(), time.Minute,
		ingest.WithAudit(rec, log))
	cs := newSession(t, st)
	tok, err := svc.Submit(context.Background(), ingest.Submission{SessionID: cs.ID, CardJWE: jwe(1), ClientIP: "192.0.2.7"})
	if err != nil || tok.ID == "" {
		t.Fatalf("Submit = %q, %v", tok.ID, err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), audit.EventTokenCreate) {
		t.Fatalf("failed audit write not logged: %s", logs.String())
	}
	if strings.Contains(logs.String(), tok.ID) || strings.Contains(logs.String(), jwe(1)) {
		t.Fatalf("log holds the token or ciphertext: %s", logs.String())
	}
}

// events records the tokens ingest reports as minted.
type events struct {
	mu  sync.Mutex
	ids []string
}

func (e *events) TokenCreated(_ context.Context, t tokens.Token) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ids = append(e.ids, t.ID)
}

// TestSubmitEmitsTokenCreatedOnce: the webhook hook hears of each minted
// token once; a refused submission, a retry answered with the existing
// token and a second card on the completed session emit nothing.
func TestSubmitEmitsTokenCreatedOnce(t *testing.T) {
	st := allStores(t)[0](t)
	ev := &events{}
	in := &slowInspector{fail: &client.Error{Status: 422, Code: "card_invalid"}}
	svc := ingest.New(st.sessions, st.tokens, in, ratelimit.NewMemory(), noLimits(), time.Minute, ingest.WithEvents(ev))
	cs := newSession(t, st)
	sub := ingest.Submission{SessionID: cs.ID, CardJWE: jwe(1), ClientIP: "192.0.2.7"}
	if _, err := svc.Submit(context.Background(), sub); err == nil {
		t.Fatal("refused card minted a token")
	}
	in.fail = nil
	tok, err := svc.Submit(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Submit(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	_, _ = svc.Submit(context.Background(), ingest.Submission{SessionID: cs.ID, CardJWE: jwe(2), ClientIP: "192.0.2.7"})
	if len(ev.ids) != 1 || ev.ids[0] != tok.ID {
		t.Fatalf("token.created for %v, want once for %s", ev.ids, tok.ID)
	}
}
