package backoffice_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/gateway/websession"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/wire"
)

const (
	testPAN   = "4242424242424242"
	merchA    = "m_alpha"
	merchB    = "m_beta"
	tokAID    = "tok_aaaaaaaaaaaaaaaaaaaaaaaaaa"
	tokA2ID   = "tok_cccccccccccccccccccccccccc"
	tokBID    = "tok_bbbbbbbbbbbbbbbbbbbbbbbbbb"
	password  = "correct horse battery staple"
	goodCode  = "123456"
	goodCause = "ticket 42"
)

var testNow = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// calls is the one ordered log every fake writes to, so a test can assert
// the order of checks across collaborators.
type calls struct {
	mu  sync.Mutex
	log []string
}

func (c *calls) add(s string) { c.mu.Lock(); defer c.mu.Unlock(); c.log = append(c.log, s) }
func (c *calls) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.log...)
}

type fakeTokens struct {
	c    *calls
	toks map[string]tokens.Token
	last tokens.Query
}

func (f *fakeTokens) Get(_ context.Context, merchantID, id string) (tokens.Token, error) {
	f.c.add("tokens.get")
	t, ok := f.toks[id]
	if !ok || t.MerchantID != merchantID {
		return tokens.Token{}, tokens.ErrNotFound
	}
	return t, nil
}

func (f *fakeTokens) Lookup(_ context.Context, id string) (tokens.Token, error) {
	f.c.add("tokens.lookup")
	t, ok := f.toks[id]
	if !ok {
		return tokens.Token{}, tokens.ErrNotFound
	}
	return t, nil
}

func (f *fakeTokens) Search(_ context.Context, q tokens.Query) ([]tokens.Token, error) {
	f.c.add("tokens.search")
	f.last = q
	var out []tokens.Token
	for _, t := range f.toks {
		if (q.MerchantID == "" || t.MerchantID == q.MerchantID) && (q.Fingerprint == "" || t.Fingerprint == q.Fingerprint) {
			out = append(out, t)
		}
	}
	return out, nil
}

type fakeOperators struct {
	c       *calls
	authErr error
	ops     []operators.Operator
}

func (f *fakeOperators) Authenticate(_ context.Context, username, pw, code string, _ time.Time) (operators.Operator, error) {
	f.c.add("operators.authenticate")
	if f.authErr != nil {
		return operators.Operator{}, f.authErr
	}
	for _, o := range f.ops {
		if o.Username == username && pw == password && code == goodCode {
			return o, nil
		}
	}
	return operators.Operator{}, operators.ErrBadCredentials
}

func (f *fakeOperators) Get(_ context.Context, id string) (operators.Operator, error) {
	for _, o := range f.ops {
		if o.ID == id {
			return o, nil
		}
	}
	return operators.Operator{}, operators.ErrNotFound
}

func (f *fakeOperators) List(_ context.Context, merchantID string) ([]operators.Operator, error) {
	f.c.add("operators.list")
	var out []operators.Operator
	for _, o := range f.ops {
		if o.MerchantID == merchantID {
			out = append(out, o)
		}
	}
	return out, nil
}

// fakeSessions holds the live sessions by id; getErr, when set, is every
// Get's answer.
type fakeSessions struct {
	c      *calls
	live   map[string]websession.Session
	getErr error
}

func (f *fakeSessions) Get(_ context.Context, id string, _ time.Time) (websession.Session, error) {
	f.c.add("sessions.get")
	if f.getErr != nil {
		return websession.Session{}, f.getErr
	}
	s, ok := f.live[id]
	if !ok {
		return websession.Session{}, websession.ErrNotFound
	}
	return s, nil
}

func (f *fakeSessions) Reauth(_ context.Context, id string, now time.Time) (websession.Session, error) {
	f.c.add("sessions.reauth")
	return websession.Session{ID: id, AuthAt: now}, nil
}

func (f *fakeSessions) Delete(_ context.Context, id string) error {
	f.c.add("sessions.delete")
	delete(f.live, id)
	return nil
}

type fakeAudit struct {
	c      *calls
	failOn string // event name whose append fails
	events []audit.Event
}

func (f *fakeAudit) Append(_ context.Context, e audit.Event) (audit.Event, error) {
	f.c.add("audit:" + e.Event)
	if e.Event == f.failOn {
		return audit.Event{}, errors.New("disk full")
	}
	f.events = append(f.events, e)
	return e, nil
}

type fakeKS struct {
	c         *calls
	revealErr error
	queryErr  error
	queries   []wire.AuditQueryRequest
	events    []wire.AuditEvent
}

func (f *fakeKS) Reveal(_ context.Context, req wire.RevealRequest) (wire.RevealResponse, error) {
	f.c.add("keyservice.reveal")
	if f.revealErr != nil {
		return wire.RevealResponse{}, f.revealErr
	}
	return wire.RevealResponse{JWE: "a.b.c.d.e"}, nil
}

func (f *fakeKS) AuditQuery(_ context.Context, req wire.AuditQueryRequest) (wire.AuditQueryResponse, error) {
	f.c.add("keyservice.audit")
	f.queries = append(f.queries, req)
	if f.queryErr != nil {
		return wire.AuditQueryResponse{}, f.queryErr
	}
	return wire.AuditQueryResponse{Events: f.events, ChainOK: true, NextBeforeSeq: 7}, nil
}

// fixture is a Service over fakes, with operators of every role.
type fixture struct {
	svc   *backoffice.Service
	calls *calls
	toks  *fakeTokens
	ops   *fakeOperators
	sess  *fakeSessions
	audit *fakeAudit
	ks    *fakeKS
}

func op(id, name string, role operators.Role, merchant string) operators.Operator {
	return operators.Operator{ID: id, Username: name, Role: role, MerchantID: merchant, TOTPEnabled: true}
}

var (
	rita  = op("op_rita", "rita", operators.RoleRevealer, "")
	anna  = op("op_anna", "anna", operators.RoleRevealer, merchA)
	vera  = op("op_vera", "vera", operators.RoleViewer, "")
	adam  = op("op_adam", "adam", operators.RoleAdmin, "")
	mia   = op("op_mia", "mia", operators.RoleAdmin, merchA)
	bruno = op("op_bruno", "bruno", operators.RoleRevealer, merchB)
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := &calls{}
	f := &fixture{
		calls: c,
		toks: &fakeTokens{c: c, toks: map[string]tokens.Token{
			tokAID:  {ID: tokAID, MerchantID: merchA, JWE: "a.b.c.d.e", Kid: "kek-1", Fingerprint: "fp_same"},
			tokA2ID: {ID: tokA2ID, MerchantID: merchA, JWE: "a.b.c.d.e", Kid: "kek-1", Fingerprint: "fp_same"},
			tokBID:  {ID: tokBID, MerchantID: merchB, JWE: "a.b.c.d.e", Kid: "kek-1", Fingerprint: "fp_same"},
		}},
		ops:   &fakeOperators{c: c, ops: []operators.Operator{rita, anna, vera, adam, mia, bruno}},
		sess:  &fakeSessions{c: c, live: map[string]websession.Session{}},
		audit: &fakeAudit{c: c},
		ks:    &fakeKS{c: c},
	}
	f.svc = backoffice.New(backoffice.Deps{
		Operators: f.ops, Sessions: f.sess, Tokens: f.toks, KeyService: f.ks, Audit: f.audit,
		Now: func() time.Time { return testNow },
	})
	return f
}

// actor signs o in, authenticated age ago.
func actor(o operators.Operator, age time.Duration) backoffice.Actor {
	return backoffice.Actor{Op: o, Sess: websession.Session{ID: "sess", AuthAt: testNow.Add(-age)}, Origin: "192.0.2.1"}
}
