package backoffice_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/merchants"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/orderref"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/gateway/websession"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

const (
	testPAN   = "4242424242424242"
	merchA    = "m_alpha"
	merchB    = "m_beta"
	tokAID    = "tok_aaaaaaaaaaaaaaaaaaaaaaaaaa"
	tokA2ID   = "tok_cccccccccccccccccccccccccc"
	tokBID    = "tok_bbbbbbbbbbbbbbbbbbbbbbbbbb"
	password  = "correct horse battery staple 42"
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
		if (q.MerchantID == "" || t.MerchantID == q.MerchantID) && (q.Fingerprint == "" || t.Fingerprint == q.Fingerprint) &&
			(q.Reference == "" || orderref.Fold(t.Reference) == orderref.Fold(q.Reference)) {
			out = append(out, t)
		}
	}
	return out, nil
}

type fakeOperators struct {
	c          *calls
	authErr    error
	confirmErr error // ConfirmPasskey's answer
	mfa        operators.MFAMode
	verifier   *passkey.Verifier
	ops        []operators.Operator
	added      []passkey.Credential
}

func (f *fakeOperators) Reconfirm(_ context.Context, username, pw string, fac operators.Factor, _ time.Time) (operators.Operator, error) {
	f.c.add("operators.reconfirm")
	if f.authErr != nil {
		return operators.Operator{}, f.authErr
	}
	for _, o := range f.ops {
		if o.Username == username && pw == password && (fac.Code == goodCode || !o.TOTPEnabled) {
			return o, nil
		}
	}
	return operators.Operator{}, operators.ErrBadCredentials
}

func (f *fakeOperators) ConfirmPasskey(context.Context, string, []byte, []byte, time.Time) error {
	f.c.add("operators.confirm-passkey")
	return f.confirmErr
}

func (f *fakeOperators) LoginChallenge(context.Context) ([]byte, error) {
	f.c.add("operators.login-challenge")
	return []byte("a login challenge of 32 bytes..."), nil
}

func (f *fakeOperators) LoginFactors(op operators.Operator) (bool, bool) {
	if f.mfa == operators.MFATOTP {
		return op.TOTPEnabled, false
	}
	return op.TOTPEnabled, len(op.Passkeys) > 0
}

func (f *fakeOperators) SecondFactorDone(op operators.Operator) bool {
	return op.TOTPEnabled || len(op.Passkeys) > 0
}

func (f *fakeOperators) AddPasskey(_ context.Context, id string, cred passkey.Credential) (operators.Operator, error) {
	f.c.add("operators.add-passkey")
	f.added = append(f.added, cred)
	return operators.Operator{ID: id}, nil
}

func (f *fakeOperators) Passkeys() *passkey.Verifier { return f.verifier }

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

func (f *fakeOperators) GetByUsername(_ context.Context, username string) (operators.Operator, error) {
	for _, o := range f.ops {
		if strings.EqualFold(o.Username, strings.TrimSpace(username)) {
			return o, nil
		}
	}
	return operators.Operator{}, operators.ErrNotFound
}

// fakeMerchants knows the two fixture merchants' names.
type fakeMerchants struct {
	c     *calls
	names map[string]string
}

func (f *fakeMerchants) Get(_ context.Context, id string) (merchants.Merchant, error) {
	f.c.add("merchants.get")
	n, ok := f.names[id]
	if !ok {
		return merchants.Merchant{}, merchants.ErrNotFound
	}
	return merchants.Merchant{ID: id, Name: n}, nil
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
	c           *calls
	revealErr   error
	queryErr    error
	registerErr error
	queries     []wire.AuditQueryRequest
	events      []wire.AuditEvent
	reveals     []wire.RevealRequest
	approved    []string // credential ids the reveal challenge lists
	rpID        string   // the reveal and registration challenges' RP id
	verifier    *passkey.Verifier
	fingerprint string // overrides the registration's fingerprint
}

func (f *fakeKS) RevealChallenge(_ context.Context, req wire.RevealChallengeRequest) (wire.RevealChallengeResponse, error) {
	f.c.add("keyservice.reveal-challenge")
	return wire.RevealChallengeResponse{Nonce: testNonce, ExpiresAt: testNow.Add(2 * time.Minute).Unix(), RPID: f.rpID,
		Credentials: f.approved, PasskeyRequired: true}, nil
}

func (f *fakeKS) Reveal(_ context.Context, req wire.RevealRequest) (wire.RevealResponse, error) {
	f.c.add("keyservice.reveal")
	f.reveals = append(f.reveals, req)
	if f.revealErr != nil {
		return wire.RevealResponse{}, f.revealErr
	}
	return wire.RevealResponse{JWE: "eyJhbGciOiJFQ0RILUVTIn0..iv.ct.tag", Credential: testCredID}, nil
}

func (f *fakeKS) PasskeyChallenge(_ context.Context, req wire.PasskeyChallengeRequest) (wire.PasskeyChallengeResponse, error) {
	f.c.add("keyservice.passkey-challenge")
	return wire.PasskeyChallengeResponse{Nonce: testEnrolNonce, ExpiresAt: testNow.Add(2 * time.Minute).Unix(), RPID: f.rpID,
		UserHandle: base64.RawURLEncoding.EncodeToString(wire.UserHandle(req.Actor))}, nil
}

// RegisterPasskey verifies like the real key service (same library, same
// challenge rule), so the gateway's cross-check has something to compare.
func (f *fakeKS) RegisterPasskey(_ context.Context, req wire.PasskeyRegisterRequest) (wire.PasskeyRegisterResponse, error) {
	f.c.add("keyservice.register")
	if f.registerErr != nil {
		return wire.PasskeyRegisterResponse{}, f.registerErr
	}
	cred, err := f.verifier.Register(wire.EnrolChallenge(req.Nonce, req.Actor), wire.UserHandle(req.Actor), req.Attestation)
	if err != nil {
		return wire.PasskeyRegisterResponse{}, &client.Error{Status: 403, Code: "passkey_invalid"}
	}
	fp := passkey.Fingerprint(cred)
	if f.fingerprint != "" {
		fp = f.fingerprint
	}
	return wire.PasskeyRegisterResponse{Credential: cred.IDString(), Fingerprint: fp, Status: wire.PasskeyPending}, nil
}

func (f *fakeKS) ListPasskeys(_ context.Context, req wire.PasskeyListRequest) (wire.PasskeyListResponse, error) {
	f.c.add("keyservice.list-passkeys")
	return wire.PasskeyListResponse{}, nil
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
	merch *fakeMerchants
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
	// pia has a passkey at the gateway (testCredID) and no TOTP.
	pia = withPasskey(op("op_pia", "pia", operators.RoleRevealer, ""))
)

func withPasskey(o operators.Operator) operators.Operator {
	o.TOTPEnabled = false
	o.Passkeys = []operators.Passkey{{Credential: passkey.Credential{ID: []byte("cred-1"), PublicKey: []byte{1}, UserHandle: []byte("h")}}}
	return o
}

const (
	testRPID       = "backoffice.example"
	testOrigin     = "https://backoffice.example"
	testCredID     = "Y3JlZC0x" // base64url of "cred-1"
	testNonce      = "rvn_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	testEnrolNonce = "pkn_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA"
	// testAssertion names testCredID; the fakes do not verify it.
	testAssertion = `{"id":"Y3JlZC0x","rawId":"Y3JlZC0x","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AA","signature":"AA"}}`
)

func testVerifier(t *testing.T) *passkey.Verifier {
	t.Helper()
	v, err := passkey.New(passkey.RP{ID: testRPID, Origins: []string{testOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// testBrowserKey is a valid browser key (a fresh P-256 point).
func testBrowserKey(t *testing.T) wire.BrowserKey {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt := k.PublicKey().Bytes()
	return wire.BrowserKey{Kty: "EC", Crv: "P-256", X: base64.RawURLEncoding.EncodeToString(pt[1:33]), Y: base64.RawURLEncoding.EncodeToString(pt[33:])}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := &calls{}
	f := &fixture{
		calls: c,
		toks: &fakeTokens{c: c, toks: map[string]tokens.Token{
			tokAID:  {ID: tokAID, MerchantID: merchA, JWE: "a.b.c.d.e", Kid: "kek-1", Fingerprint: "fp_same", Reference: "ORD-1"},
			tokA2ID: {ID: tokA2ID, MerchantID: merchA, JWE: "a.b.c.d.e", Kid: "kek-1", Fingerprint: "fp_same"},
			tokBID:  {ID: tokBID, MerchantID: merchB, JWE: "a.b.c.d.e", Kid: "kek-1", Fingerprint: "fp_same"},
		}},
		ops:   &fakeOperators{c: c, ops: []operators.Operator{rita, anna, vera, adam, mia, bruno, pia}, verifier: testVerifier(t), mfa: operators.MFAAny},
		sess:  &fakeSessions{c: c, live: map[string]websession.Session{}},
		audit: &fakeAudit{c: c},
		ks:    &fakeKS{c: c, rpID: testRPID, verifier: testVerifier(t)},
		merch: &fakeMerchants{c: c, names: map[string]string{merchA: "Alpha Shop", merchB: "Beta Books"}},
	}
	f.svc = backoffice.New(backoffice.Deps{
		Operators: f.ops, Sessions: f.sess, Tokens: f.toks, KeyService: f.ks, Audit: f.audit, Merchants: f.merch,
		Now: func() time.Time { return testNow },
	})
	return f
}

// actor signs o in, authenticated age ago.
func actor(o operators.Operator, age time.Duration) backoffice.Actor {
	return backoffice.Actor{Op: o, Sess: websession.Session{ID: "sess", AuthAt: testNow.Add(-age)}, Origin: "192.0.2.1"}
}
