package unwrap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/admit"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/passkeys"
	"github.com/blindgate/blindgate/keyservice/replay"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// approver stands in for keyservice/passkeys: it records what it was asked
// and answers cred and err.
type approver struct {
	cred  string
	err   error
	calls atomic.Int32
	last  passkeys.Approval
}

func (a *approver) Approve(_ context.Context, _ string, ap passkeys.Approval) (string, error) {
	a.calls.Add(1)
	a.last = ap
	return a.cred, a.err
}

// browserKey is the key pair the reveal page makes.
func browserKey(t *testing.T) (wire.BrowserKey, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt, _ := k.PublicKey.Bytes()
	return wire.BrowserKey{Kty: "EC", Crv: "P-256", X: base64.RawURLEncoding.EncodeToString(pt[1:33]), Y: base64.RawURLEncoding.EncodeToString(pt[33:])}, k
}

func first[A, B any](a A, _ B) A { return a }

// checked is k as the key service's request checks hand it on.
func checked(t *testing.T, k wire.BrowserKey) wire.CheckedBrowserKey {
	t.Helper()
	c, err := k.Check()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const testNonce = "rvn_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// reveal runs one reveal with a fresh browser key and opens the answer as
// the page would, checking its header binds the token and nonce.
func reveal(t *testing.T, svc *Service, m Meta, jwe, actor, reason, token string) (cardPayload, error) {
	t.Helper()
	if token == "" {
		token = "tok_1"
	}
	bk, priv := browserKey(t)
	out, err := svc.Reveal(context.Background(), m, RevealInput{JWE: jwe, Actor: actor, Reason: reason, Token: token, Nonce: testNonce, BrowserKey: checked(t, bk), Assertion: []byte(`{}`)})
	if err != nil {
		if out.JWE != "" {
			t.Fatal("a refused reveal answered a ciphertext")
		}
		return cardPayload{}, err
	}
	hdr, pt, err := jose.DecryptDirect([]byte(out.JWE), priv)
	if err != nil {
		t.Fatalf("the answer does not open with the browser key: %v", err)
	}
	if hdr[wire.HeaderToken] != token || hdr[wire.HeaderNonce] != testNonce || hdr["cty"] != wire.CardContentType {
		t.Fatalf("answer header %v", hdr)
	}
	var c cardPayload
	if err := json.Unmarshal(pt, &c); err != nil {
		t.Fatal(err)
	}
	return c, nil
}

// countingKeys counts every look at the keyring: a reveal refused before
// its decrypt never even looks the private key up.
type countingKeys struct {
	kr *keyring.Keyring
	n  atomic.Int32
}

func (c *countingKeys) Keyring() (*keyring.Keyring, error) {
	c.n.Add(1)
	return c.kr, nil
}

// TestRevealAnswersOnlyCiphertext: the answer is a JWE to the browser key
// (ECDH-ES, A256GCM) and nothing in it or in Sealed is the card in clear.
func TestRevealAnswersOnlyCiphertext(t *testing.T) {
	f := newFixture(t, nil)
	jwe := f.encrypt(t, testPAN, f.now, "cs_1")
	bk, priv := browserKey(t)
	out, err := f.svc.Reveal(context.Background(), Meta{Client: "bo"}, RevealInput{JWE: jwe, Actor: "op_1", Reason: "ticket 9", Token: "tok_9", Nonce: testNonce, BrowserKey: checked(t, bk)})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprintf("%+v", out), testPAN) {
		t.Fatal("the answer holds the card number")
	}
	if out.Credential != "cred_1" {
		t.Fatalf("credential %q", out.Credential)
	}
	hdr, pt, err := jose.DecryptDirect([]byte(out.JWE), priv)
	if err != nil || hdr[wire.HeaderToken] != "tok_9" || !strings.Contains(string(pt), `"pan":"`+testPAN+`"`) {
		t.Fatalf("answer: %v %v", hdr, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(out.JWE, ".")[0])
	if !strings.Contains(string(raw), `"alg":"ECDH-ES"`) || !strings.Contains(string(raw), `"enc":"A256GCM"`) {
		t.Fatalf("protected header %s", raw)
	}
	// The approval was asked about exactly this reveal.
	a := f.svc.cfg.Approver.(*approver)
	jkt, _ := wire.JWKThumbprint(bk)
	if a.last.Token != "tok_9" || a.last.Reason != "ticket 9" || a.last.Nonce != testNonce || a.last.JKT != jkt || a.last.Actor != "op_1" {
		t.Fatalf("approval asked %+v", a.last)
	}
	// Another browser key cannot open it.
	_, other := browserKey(t)
	if _, _, err := jose.DecryptDirect([]byte(out.JWE), other); !errors.Is(err, jose.ErrDecrypt) {
		t.Fatalf("another key: %v", err)
	}
}

// TestRevealRefusedBeforeDecrypt: each approval refusal is answered with
// its error, audited as reveal.denied with its code and the credential,
// spends no limit and never reaches the keyring.
func TestRevealRefusedBeforeDecrypt(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		cred string
		code string
	}{
		{"403/nonce-replayed", fmt.Errorf("%w: spent", passkeys.ErrNonce), "", "reveal_nonce_invalid"},
		{"403/passkey-required", fmt.Errorf("%w: none", passkeys.ErrRequired), "", "passkey_required"},
		{"403/passkey-invalid", fmt.Errorf("%w: challenge", passkeys.ErrInvalid), "cred_x", "passkey_invalid"},
		{"403/passkey-unknown", fmt.Errorf("%w: pending", passkeys.ErrUnknown), "cred_p", "passkey_unknown"},
		{"503/approval-store-down", fmt.Errorf("%w: redis", passkeys.ErrUnavailable), "", "unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := &countingKeys{}
			f := newFixture(t, nil)
			keys.kr = f.kr
			jwe := f.encrypt(t, testPAN, f.now, "cs_1")
			ap := &approver{cred: tc.cred, err: tc.err}
			lim := ratelimit.NewMemory()
			svc := New(keys, f.log, lim, slog.Default(), Config{Now: func() time.Time { return f.now }, Approver: ap,
				Limits: func() Limits {
					l := DefaultLimits()
					l.RevealActorShort = ratelimit.Limit{Name: "ras", Rate: 1, Period: time.Hour, Burst: 1}
					return l
				}()})
			if _, err := reveal(t, svc, Meta{Client: "bo"}, jwe, "op_1", "ticket 1", "tok_1"); !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if keys.n.Load() != 0 {
				t.Fatal("a refused reveal looked up the private key")
			}
			evs := f.events(t)
			if len(evs) != 1 || evs[0].Event != audit.EventRevealDenied || evs[0].Code != tc.code || evs[0].Credential != tc.cred ||
				evs[0].Actor != "op_1" || evs[0].Resource != "tok_1" {
				t.Fatalf("audit %+v", evs)
			}
			// The limit was not spent by the refusal: an approved reveal passes.
			ap.err = nil
			if _, err := reveal(t, svc, Meta{Client: "bo"}, jwe, "op_1", "ticket 1", "tok_1"); err != nil {
				t.Fatalf("after the refusal: %v", err)
			}
		})
	}
}

func TestRevealRequestRefusals(t *testing.T) {
	f := newFixture(t, nil)
	jwe := f.encrypt(t, testPAN, f.now, "cs_1")
	good := checked(t, first(browserKey(t)))
	for _, tc := range []struct {
		name string
		in   RevealInput
		want error
		code string
	}{
		// A key that failed the request's checks (off the curve, P-384...:
		// wire's TestBrowserKeyRefusals) cannot be handed on; what can is
		// the zero value, refused here too.
		{"400/browser-key-unchecked", RevealInput{JWE: jwe, Actor: "op_1", Reason: "ticket", Token: "tok_1", Nonce: testNonce},
			ErrBrowserKey, "browser_key_invalid"},
		{"400/no-token", RevealInput{JWE: jwe, Actor: "op_1", Reason: "ticket", Nonce: testNonce, BrowserKey: good}, ErrInvalidRequest, "invalid_field"},
		{"400/reason-not-normalised", RevealInput{JWE: jwe, Actor: "op_1", Reason: "ticket  1", Token: "tok_1", Nonce: testNonce, BrowserKey: good}, ErrInvalidRequest, "invalid_field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.events(t))
			if _, err := f.svc.Reveal(context.Background(), Meta{Client: "bo"}, tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			evs := f.events(t)
			if len(evs) != before+1 || evs[0].Event != audit.EventRevealDenied || evs[0].Code != tc.code {
				t.Fatalf("audit %+v", evs[0])
			}
		})
	}
	if n := f.svc.cfg.Approver.(*approver).calls.Load(); n != 0 {
		t.Fatalf("a malformed request reached the approval (%d calls): the nonce would be spent for nothing", n)
	}
}

func TestRevealWithoutApproverRefuses(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Approver = nil })
	jwe := f.encrypt(t, testPAN, f.now, "cs_1")
	if _, err := reveal(t, f.svc, Meta{Client: "bo"}, jwe, "op_1", "ticket", "tok_1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

// TestRevealNotAdmitted: a reveal with a jti to claim (Meta.Claim) has it
// claimed by its approval, or alone (ClaimOnly) when it is refused
// before; a claim refused is ErrNotAdmitted (with ErrReplay for a
// replay), unrecorded here (the HTTP layer records it as a refused
// request), and nothing after it runs: no approval, no limit, no decrypt.
func TestRevealNotAdmitted(t *testing.T) {
	good := checked(t, first(browserKey(t)))
	for _, tc := range []struct {
		name     string
		in       func(jwe string) RevealInput
		approval error // what the approver answers
		first    error // the first use's answer
		approved int32 // approvals asked for, both uses together
	}{
		{"409/replay-of-invalid-field", func(jwe string) RevealInput {
			return RevealInput{JWE: jwe, Actor: "op_1", Reason: "ticket  1", Token: "tok_1", Nonce: testNonce, BrowserKey: good}
		}, nil, ErrInvalidRequest, 0},
		{"409/replay-of-bad-browser-key", func(jwe string) RevealInput {
			return RevealInput{JWE: jwe, Actor: "op_1", Reason: "ticket 1", Token: "tok_1", Nonce: testNonce, BrowserKey: wire.CheckedBrowserKey{}}
		}, nil, ErrBrowserKey, 0},
		{"409/replay-refused-by-the-approval", func(jwe string) RevealInput {
			return RevealInput{JWE: jwe, Actor: "op_1", Reason: "ticket 1", Token: "tok_1", Nonce: testNonce, BrowserKey: good}
		}, admit.ErrReplay, ErrNotAdmitted, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			jwe := f.encrypt(t, testPAN, f.now, "cs_1")
			ap := &approver{cred: "cred_1", err: tc.approval}
			svc, tr := f.limitedBy(t, ratelimit.NewMemory(), func(c *Config) {
				c.Approver = ap
				c.Admit = admit.New(replay.NewMemory(), nil)
			})
			m := Meta{Client: "bo", Claim: admit.Claim{JTI: "bo:jti-reveal-00000001", Until: time.Now().Add(time.Hour)}}
			if _, err := svc.Reveal(context.Background(), m, tc.in(jwe)); !errors.Is(err, tc.first) {
				t.Fatalf("first use: %v, want %v", err, tc.first)
			}
			before := len(tr.get())
			if errors.Is(tc.first, ErrNotAdmitted) && before != 0 {
				t.Fatalf("a reveal not admitted did %q", tr.get())
			}
			_, err := svc.Reveal(context.Background(), m, tc.in(jwe))
			if !errors.Is(err, ErrNotAdmitted) || !errors.Is(err, ErrReplay) {
				t.Fatalf("replay: %v, want ErrNotAdmitted and ErrReplay", err)
			}
			if steps := tr.get()[before:]; len(steps) != 0 {
				t.Fatalf("the replay did %q", steps)
			}
			if n := ap.calls.Load(); n != tc.approved {
				t.Fatalf("%d approvals asked for, want %d", n, tc.approved)
			}
		})
	}
}
