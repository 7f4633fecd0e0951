package unwrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/logtest"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/card"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/wire"
)

const testPAN = "4242424242424242"

type staticKeys struct {
	kr  *keyring.Keyring
	err error
}

func (s staticKeys) Keyring() (*keyring.Keyring, error) { return s.kr, s.err }

type failingAudit struct{ n int }

func (f *failingAudit) Append(context.Context, audit.Event) (audit.Event, error) {
	f.n++
	return audit.Event{}, audit.ErrUnavailable
}

type downLimiter struct{}

func (downLimiter) Allow(context.Context, string, ratelimit.Limit) (ratelimit.Result, error) {
	return ratelimit.Result{}, fmt.Errorf("%w: connection refused", ratelimit.ErrUnavailable)
}

type fixture struct {
	svc      *Service
	kr       *keyring.Keyring
	logPath  string
	log      *audit.Log
	now      time.Time
	logLines *logtest.Sink // the service's logs, every level; checked for card numbers
	cfg      Config        // svc's, for a service on another limiter (limitedBy)
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	kr, err := keyring.New(keyring.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	al, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = al.Close() })
	f := &fixture{kr: kr, logPath: path, log: al, now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	cfg := Config{Now: func() time.Time { return f.now }, Approver: &approver{cred: "cred_1"}}
	if mutate != nil {
		mutate(&cfg)
	}
	var log *slog.Logger
	log, f.logLines = logtest.Text(t)
	f.cfg = cfg
	f.svc = New(staticKeys{kr: kr}, al, ratelimit.NewMemory(), log, cfg)
	return f
}

// logger is another service's logger into the fixture's sink.
func (f *fixture) logger(*testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(f.logLines, logtest.Debug))
}

// encrypt makes a card ciphertext the way the checkout page does.
func (f *fixture) encrypt(t *testing.T, pan string, iat time.Time, session string) string {
	t.Helper()
	pt := fmt.Sprintf(`{"pan":%q,"exp_month":12,"exp_year":2030,"name":"A Shopper","iat":%d}`, pan, iat.Unix())
	pub := f.kr.PublicKeys()[0]
	out, err := jose.Encrypt([]byte(pt), pub.Key, pub.Kid, map[string]string{jose.HeaderSessionID: session})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func (f *fixture) events(t *testing.T) []audit.Event {
	t.Helper()
	fh, err := os.Open(f.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := audit.Verify(fh); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	_, _ = fh.Seek(0, io.SeekStart)
	evs, err := audit.Read(fh, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestInspect(t *testing.T) {
	f := newFixture(t, nil)
	fresh := f.now.Add(-time.Minute)
	tests := []struct {
		name    string
		jwe     func() string
		session string
		want    error
	}{
		{"ok/visa", func() string { return f.encrypt(t, testPAN, fresh, "cs_1") }, "cs_1", nil},
		{"400/session-mismatch", func() string { return f.encrypt(t, testPAN, fresh, "cs_other") }, "cs_1", ErrSessionMismatch},
		{"400/no-session", func() string { return f.encrypt(t, testPAN, fresh, "cs_1") }, "", ErrInvalidRequest},
		{"400/garbage", func() string { return "a.b.c.d.e" }, "cs_1", ErrInvalidJWE},
		{"422/stale", func() string { return f.encrypt(t, testPAN, f.now.Add(-16*time.Minute), "cs_1") }, "cs_1", ErrStale},
		{"422/future-iat", func() string { return f.encrypt(t, testPAN, f.now.Add(5*time.Minute), "cs_1") }, "cs_1", ErrStale},
		{"422/luhn", func() string { return f.encrypt(t, "4242424242424241", fresh, "cs_1") }, "cs_1", card.ErrLuhn},
		{"422/tampered", func() string {
			j := f.encrypt(t, testPAN, fresh, "cs_1")
			p := strings.Split(j, ".")
			p[3] = "AAAA" + p[3][4:]
			return strings.Join(p, ".")
		}, "cs_1", ErrUndecryptable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jwe := tt.jwe()
			m, err := f.svc.Inspect(context.Background(), Meta{Client: "gateway", Origin: "10.0.0.1"}, InspectInput{JWE: jwe, Session: tt.session, Merchant: "m_1"})
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Masked{Kid: f.kr.Newest().Kid, Brand: "visa", BIN: "424242", Last4: "4242", ExpMonth: 12, ExpYear: 2030, Fingerprint: f.kr.Fingerprint("m_1", []byte(testPAN))}
			if !f.kr.VerifyBinding("m_1", []byte(jwe), m.Binding) {
				t.Fatalf("binding %q is not m_1's of the inspected ciphertext", m.Binding)
			}
			m.Binding = ""
			if m != want {
				t.Fatalf("got %+v, want %+v", m, want)
			}
		})
	}
	evs := f.events(t)
	if len(evs) != len(tests) {
		t.Fatalf("audit has %d events, want one per inspect (%d)", len(evs), len(tests))
	}
	for _, e := range evs {
		raw := fmt.Sprintf("%+v", e)
		if strings.Contains(raw, testPAN) || strings.Contains(raw, "424242424242") {
			t.Fatalf("audit event holds card digits: %s", raw)
		}
	}
}

func TestInspectSealedAndLimiterDown(t *testing.T) {
	f := newFixture(t, nil)
	jwe := f.encrypt(t, testPAN, f.now, "cs_1")
	sealed := New(staticKeys{err: errors.New("sealed")}, f.log, ratelimit.NewMemory(), f.logger(t), Config{Now: func() time.Time { return f.now }, Approver: &approver{}})
	if _, err := sealed.Inspect(context.Background(), Meta{Client: "gateway"}, InspectInput{JWE: jwe, Session: "cs_1", Merchant: "m_1"}); !errors.Is(err, ErrSealed) {
		t.Fatalf("sealed: err = %v", err)
	}
	down := New(staticKeys{kr: f.kr}, f.log, downLimiter{}, f.logger(t), Config{Now: func() time.Time { return f.now }, Approver: &approver{}})
	if _, err := down.Inspect(context.Background(), Meta{Client: "gateway"}, InspectInput{JWE: jwe, Session: "cs_1", Merchant: "m_1"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("limiter down: err = %v, want ErrUnavailable (fail closed)", err)
	}
	if _, err := reveal(t, down, Meta{Client: "bo"}, jwe, "op_1", "customer dispute", ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("limiter down reveal: err = %v, want ErrUnavailable", err)
	}
}

func TestRevealAuditedBeforeDecrypt(t *testing.T) {
	f := newFixture(t, nil)
	jwe := f.encrypt(t, testPAN, f.now.Add(-48*time.Hour), "cs_1") // reveal has no freshness window
	r, err := reveal(t, f.svc, Meta{Client: "backoffice", Origin: "10.0.0.2"}, jwe, "op_alice", "chargeback 1234", "tok_abc")
	if err != nil {
		t.Fatal(err)
	}
	if r.PAN != testPAN || r.ExpMonth != 12 || r.ExpYear != 2030 || r.Name != "A Shopper" {
		t.Fatalf("revealed %+v", r)
	}
	evs := f.events(t)
	if len(evs) != 1 || evs[0].Event != audit.EventReveal || evs[0].Actor != "op_alice" || evs[0].Reason != "chargeback 1234" || evs[0].Resource != "tok_abc" || evs[0].Outcome != audit.OutcomeSuccess || evs[0].Credential != "cred_1" {
		t.Fatalf("audit = %+v", evs)
	}

	// No audit, no reveal.
	fa := &failingAudit{}
	noAudit := New(staticKeys{kr: f.kr}, fa, ratelimit.NewMemory(), f.logger(t), Config{Now: func() time.Time { return f.now }, Approver: &approver{}})
	r, err = reveal(t, noAudit, Meta{Client: "backoffice"}, jwe, "op_alice", "chargeback 1234", "")
	if !errors.Is(err, ErrAudit) || r.PAN != "" {
		t.Fatalf("with a failing audit log: r=%+v err=%v, want ErrAudit and nothing revealed", r.ExpYear, err)
	}
}

func TestRevealValidation(t *testing.T) {
	f := newFixture(t, nil)
	jwe := f.encrypt(t, testPAN, f.now, "cs_1")
	tests := []struct{ name, actor, reason string }{
		{"400/no-actor", "", "a good reason"},
		{"400/no-reason", "op_1", ""},
		{"400/long-reason", "op_1", strings.Repeat("x", 501)},
		{"400/actor-shape", "op 1", "a good reason"},
		{"400/control-in-reason", "op_1", "a good\x00reason"},
		{"400/card-number-in-reason", "op_1", "typed 4242 4242 4242 4242 here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := reveal(t, f.svc, Meta{Client: "bo"}, jwe, tt.actor, tt.reason, ""); !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	for _, e := range f.events(t) {
		if e.Event != audit.EventRevealDenied || e.Outcome != audit.OutcomeDenied {
			t.Fatalf("refused reveal recorded as %+v", e)
		}
		if strings.Contains(e.Reason, "4242") {
			t.Fatalf("the audit trail holds the card number: %+v", e)
		}
	}
}

// TestRevealReasonInCharacters: the domain applies the wire's reason rule,
// in characters, as the gateway's back office does. 300 accented letters
// are 600 bytes; counted in bytes they were refused here after the gateway
// accepted them, and the operator saw a 502.
func TestRevealReasonInCharacters(t *testing.T) {
	f := newFixture(t, nil)
	jwe := f.encrypt(t, testPAN, f.now, "cs_1")
	for _, tc := range []struct {
		name, reason string
		ok           bool
	}{
		{"200/300-accented", strings.Repeat("é", 300), true},
		{"200/500-accented", strings.Repeat("ü", wire.MaxReasonLen), true},
		{"200/4-accented", "éèêë", true},
		{"400/501-accented", strings.Repeat("é", wire.MaxReasonLen+1), false},
		{"400/3-accented", "éèê", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reveal(t, f.svc, Meta{Client: "bo"}, jwe, "op_1", tc.reason, "")
			if wireOK := wire.ValidateReason(tc.reason) == nil; wireOK != tc.ok || (err == nil) != tc.ok {
				t.Fatalf("wire accepts: %v, domain err = %v, want ok=%v", wireOK, err, tc.ok)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
		})
	}
}

func TestRevealLimitsAndAlarm(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Limits = DefaultLimits()
		c.Limits.RevealActorShort = ratelimit.Limit{Name: "ras", Rate: 3, Period: time.Hour, Burst: 3}
		c.Limits.RevealActorDaily = ratelimit.Limit{Name: "rad", Rate: 10, Period: 24 * time.Hour, Burst: 10}
		c.Limits.AlarmDailyFraction = 0.5
	})
	jwe := f.encrypt(t, testPAN, f.now, "cs_1")
	for i := 0; i < 3; i++ {
		if _, err := reveal(t, f.svc, Meta{Client: "bo"}, jwe, "op_bob", "refund check", ""); err != nil {
			t.Fatalf("reveal %d: %v", i, err)
		}
	}
	_, err := reveal(t, f.svc, Meta{Client: "bo"}, jwe, "op_bob", "refund check", "")
	var le *ratelimit.Refused
	if !errors.As(err, &le) || le.RetryAfter <= 0 || le.Limit != "ras" {
		t.Fatalf("4th reveal: err = %v, want the short actor limit with a retry delay", err)
	}
	// Another actor is not affected.
	if _, err := reveal(t, f.svc, Meta{Client: "bo"}, jwe, "op_carol", "refund check", ""); err != nil {
		t.Fatalf("other actor: %v", err)
	}
	var alarms, denied int
	for _, e := range f.events(t) {
		switch e.Event {
		case audit.EventAlarm:
			alarms++
		case audit.EventRevealDenied:
			denied++
		}
	}
	if alarms == 0 || denied != 1 {
		t.Fatalf("alarms=%d denied=%d, want alarms and one denial", alarms, denied)
	}
	if !strings.Contains(f.logLines.String(), "ALARM") {
		t.Fatalf("no ALARM log line: %s", f.logLines.String())
	}
}

func TestRewrapAfterRotation(t *testing.T) {
	f := newFixture(t, nil)
	oldKid := f.kr.Newest().Kid
	jwe := f.encrypt(t, testPAN, f.now, "cs_9")
	if _, err := f.kr.Rotate(keyring.AlgRSA3072); err != nil {
		t.Fatal(err)
	}
	rw, err := f.svc.Rewrap(context.Background(), Meta{Client: "gateway"}, RewrapInput{JWE: jwe, Merchant: "m_1", Resource: "tok_1", Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	out, kid := rw.JWE, rw.Kid
	if rw.BIN != "424242" || rw.Last4 != "4242" || rw.Brand != "visa" || rw.Fingerprint != f.kr.Fingerprint("m_1", []byte(testPAN)) {
		t.Fatalf("rewrap masked fields %+v", rw)
	}
	if kid == oldKid || kid != f.kr.Newest().Kid {
		t.Fatalf("kid = %s, want the new active %s", kid, f.kr.Newest().Kid)
	}
	hdr, err := jose.ParseHeader([]byte(out))
	if err != nil || hdr.SessionID != "cs_9" || hdr.Alg != jose.AlgRSAOAEP256 {
		t.Fatalf("rewrapped header %+v err %v", hdr, err)
	}
	// The old ciphertext still decrypts until its key is retired; the new one reveals the same card.
	r, err := reveal(t, f.svc, Meta{Client: "bo"}, out, "op_1", "check rewrap", "")
	if err != nil || r.PAN != testPAN {
		t.Fatalf("reveal rewrapped: %v", err)
	}
	if err := f.kr.Retire(oldKid); err != nil {
		t.Fatal(err)
	}
	if _, err := reveal(t, f.svc, Meta{Client: "bo"}, jwe, "op_1", "check retired", ""); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("retired key: err = %v", err)
	}
	// Rewrapping a ciphertext already under the newest key is a no-op.
	same, err := f.svc.Rewrap(context.Background(), Meta{Client: "gateway"}, RewrapInput{JWE: out, Merchant: "m_1", Refresh: true})
	if err != nil || same.JWE != out || same.Fingerprint != rw.Fingerprint {
		t.Fatalf("no-op rewrap changed the ciphertext: %v", err)
	}
	// ... but the masked fields are recomputed for the merchant asked about,
	// and under the deployment's truncation.
	other, err := f.svc.Rewrap(context.Background(), Meta{Client: "gateway"}, RewrapInput{JWE: out, Merchant: "m_2", Refresh: true})
	if err != nil || other.JWE != out || other.Fingerprint == rw.Fingerprint {
		t.Fatalf("rewrap for another merchant: %+v %v", other, err)
	}
	if _, err := f.svc.Rewrap(context.Background(), Meta{Client: "gateway"}, RewrapInput{JWE: out}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("rewrap without merchant: %v", err)
	}
}
