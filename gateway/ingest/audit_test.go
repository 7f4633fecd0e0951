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

// TestSubmitAuditFailureStoresNothing: the token.create record comes
// first, so a trail that cannot be written refuses the submission, stores
// no token and leaves the session open for the shopper's retry once it
// can (on every store).
func TestSubmitAuditFailureStoresNothing(t *testing.T) {
	for _, mk := range allStores(t) {
		st := mk(t)
		t.Run(st.name, func(t *testing.T) {
			log, logs := logtest.Text(t)
			rec := &recorder{fail: errors.New("disk full")}
			svc := ingest.New(st.sessions, st.tokens, &slowInspector{}, st.limiter, noLimits(), time.Minute,
				ingest.WithAudit(rec, log))
			cs := newSession(t, st)
			sub := ingest.Submission{SessionID: cs.ID, CardJWE: jwe(1), ClientIP: "192.0.2.7"}
			tok, err := svc.Submit(context.Background(), sub)
			if !errors.Is(err, ingest.ErrUnavailable) || tok.ID != "" {
				t.Fatalf("Submit with the trail failing = %q, %v; want ErrUnavailable", tok.ID, err)
			}
			if got := sessionTokens(t, st, cs.ID); len(got) != 0 {
				t.Fatalf("tokens stored without their record: %+v", got)
			}
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), audit.EventTokenCreate) {
				t.Fatalf("failed audit write not logged: %s", logs.String())
			}
			if strings.Contains(logs.String(), jwe(1)) {
				t.Fatalf("log holds the ciphertext: %s", logs.String())
			}
			rec.mu.Lock()
			rec.fail = nil
			rec.mu.Unlock()
			tok, err = svc.Submit(context.Background(), sub)
			if err != nil {
				t.Fatalf("retry once the trail is back: %v", err)
			}
			if got := rec.list(); len(got) != 1 || got[0].Resource != tok.ID || got[0].Outcome != audit.OutcomeSuccess {
				t.Fatalf("audit = %+v, want the minted token's record", got)
			}
		})
	}
}

// storeProbe is a trail that, at each token.create, looks the token up in
// the store: a record written after the token would find it.
type storeProbe struct {
	recorder
	tokens tokens.Store
	found  []string
}

func (p *storeProbe) Append(ctx context.Context, e audit.Event) (audit.Event, error) {
	if e.Event == audit.EventTokenCreate && e.Outcome == audit.OutcomeSuccess {
		if _, err := p.tokens.Lookup(ctx, e.Resource); err == nil {
			p.found = append(p.found, e.Resource)
		}
	}
	return p.recorder.Append(ctx, e)
}

// TestSubmitRecordsBeforeStoring: the token.create record is written before
// the token exists (a kill between the two leaves a record, never a token
// without one), and names the id the token is then stored under.
func TestSubmitRecordsBeforeStoring(t *testing.T) {
	for _, mk := range allStores(t) {
		st := mk(t)
		t.Run(st.name, func(t *testing.T) {
			probe := &storeProbe{tokens: st.tokens}
			svc := ingest.New(st.sessions, st.tokens, &slowInspector{}, st.limiter, noLimits(), time.Minute, ingest.WithAudit(probe, nil))
			cs := newSession(t, st)
			tok, err := svc.Submit(context.Background(), ingest.Submission{SessionID: cs.ID, CardJWE: jwe(1), ClientIP: "192.0.2.7"})
			if err != nil {
				t.Fatal(err)
			}
			if len(probe.found) != 0 {
				t.Fatalf("token %v was stored before its record", probe.found)
			}
			if got := probe.list(); len(got) != 1 || got[0].Resource != tok.ID {
				t.Fatalf("audit = %+v, want one record of %s", got, tok.ID)
			}
		})
	}
}

// failingPut is a token store whose writes fail.
type failingPut struct{ tokens.Store }

func (failingPut) Put(context.Context, tokens.Token, string, time.Duration, string) (tokens.Token, bool, error) {
	return tokens.Token{}, false, errors.New("store down")
}

// TestSubmitRecordsATokenNotStored: a record whose token could not be
// stored is followed by a failure record for the same id, so the trail
// does not claim a token that never existed.
func TestSubmitRecordsATokenNotStored(t *testing.T) {
	st := allStores(t)[0](t)
	rec := &recorder{}
	svc := ingest.New(st.sessions, failingPut{st.tokens}, &slowInspector{}, ratelimit.NewMemory(), noLimits(), time.Minute, ingest.WithAudit(rec, nil))
	cs := newSession(t, st)
	if _, err := svc.Submit(context.Background(), ingest.Submission{SessionID: cs.ID, CardJWE: jwe(1), ClientIP: "192.0.2.7"}); !errors.Is(err, ingest.ErrUnavailable) {
		t.Fatalf("Submit with the store down = %v, want ErrUnavailable", err)
	}
	got := rec.list()
	if len(got) != 2 || got[0].Resource == "" || got[1].Resource != got[0].Resource ||
		got[0].Outcome != audit.OutcomeSuccess || got[1].Outcome != audit.OutcomeFailure || got[1].Code != "store_failed" {
		t.Fatalf("audit = %+v, want the record then its failure", got)
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
