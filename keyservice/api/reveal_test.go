package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/passkey/passkeytest"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/nonce"
	"github.com/blindgate/blindgate/keyservice/replay"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// clock is the nonce store's time, moved by the tests (no sleeping).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// approvalZone is a key service with two back-office identities (the
// gateway's, and another client allowed to reveal), a nonce clock, and
// operators with passkeys in every status.
type approvalZone struct {
	*testServer
	other   *client.Signer // a second client with the reveal operation
	clock   *clock
	jwe     string
	rita    *passkeytest.Authenticator // op_rita: approved
	otto    *passkeytest.Authenticator // op_otto: approved (another operator)
	pending *passkeytest.Authenticator // op_rita: registered, never approved
	revoked *passkeytest.Authenticator // op_rita: approved, then revoked
}

func newApprovalZone(t *testing.T) *approvalZone {
	t.Helper()
	z := &approvalZone{testServer: &testServer{passkeys: map[string]*passkeytest.Authenticator{}}, clock: &clock{t: time.Now()}}
	z.Zone = kstest.NewZone(t, kstest.Options{
		Clients: []kstest.Client{
			{ID: "gateway", Ops: []string{wire.OpInspect, wire.OpRewrap}},
			{ID: "backoffice", Ops: []string{wire.OpReveal, wire.OpAudit}},
			{ID: "backoffice-2", Ops: []string{wire.OpReveal}},
		},
		Nonces: nonce.NewMemory(z.clock.now, 0),
	})
	z.backoffic, z.gateway, z.other = z.Signer(t, "backoffice"), z.Signer(t, "gateway"), z.Signer(t, "backoffice-2")
	z.jwe = z.cardJWE(t, testPAN, "cs_1", time.Now())
	z.rita = z.EnrolPasskey(t, "backoffice", "op_rita")
	z.otto = z.EnrolPasskey(t, "backoffice", "op_otto")
	z.pending = kstest.NewAuthenticator(t, passkey.RP{})
	z.RegisterPasskey(t, "backoffice", "op_rita", z.pending)
	z.revoked = z.EnrolPasskey(t, "backoffice", "op_rita")
	if _, err := z.Registry.Revoke(z.revoked.ID(), "admin", time.Now()); err != nil {
		t.Fatal(err)
	}
	return z
}

// nonceFor asks the key service for a reveal nonce as signer.
func (z *approvalZone) nonceFor(t *testing.T, s *client.Signer, actor, token string) string {
	t.Helper()
	resp, m := z.call(t, s, http.MethodPost, wire.PathRevealChallenge, wire.RevealChallengeRequest{Actor: actor, Token: token})
	if resp.StatusCode != 200 {
		t.Fatalf("reveal challenge: %d %v", resp.StatusCode, m)
	}
	n, _ := m["nonce"].(string)
	return n
}

// lastDenial is the newest reveal.denied record.
func (z *approvalZone) lastDenial(t *testing.T) audit.Event {
	t.Helper()
	evs := z.Events(t, audit.Filter{Event: audit.EventRevealDenied, Limit: 1})
	if len(evs) == 0 {
		t.Fatal("no reveal.denied record")
	}
	return evs[0]
}

// revealCase builds one reveal request; the zero request is an approved
// reveal of tok_1 by op_rita with her passkey.
type revealCase struct {
	name string
	// build makes the request and picks its signer.
	build  func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer)
	status int
	code   string
	// named: the assertion names a credential, which the denial records
	// (also an unknown one: it is evidence).
	named bool
}

// approved builds the request an honest page makes; opts shape what its
// passkey signs.
func approved(t *testing.T, z *approvalZone, a *passkeytest.Authenticator, signed func(r *wire.RevealRequest)) wire.RevealRequest {
	t.Helper()
	key, _ := kstest.BrowserKey(t)
	r := wire.RevealRequest{JWE: z.jwe, Actor: "op_rita", Reason: "chargeback 1234", Token: "tok_1", BrowserKey: key,
		Nonce: z.nonceFor(t, z.backoffic, "op_rita", "tok_1")}
	s := r
	if signed != nil {
		signed(&s)
	}
	r.Assertion = kstest.Assertion(t, a, s.Nonce, s.Token, s.Reason, s.BrowserKey)
	return r
}

// TestRevealRefusals: every way a reveal's approval can fail, each with
// its stable code and a reveal.denied record carrying that code (and the
// credential when the assertion named one); none answers a ciphertext.
func TestRevealRefusals(t *testing.T) {
	cases := []revealCase{
		{"403/passkey_invalid/assertion-for-another-token", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			return approved(t, z, z.rita, func(s *wire.RevealRequest) { s.Token = "tok_2" }), z.backoffic
		}, 403, "passkey_invalid", true},
		{"403/passkey_invalid/assertion-for-another-reason", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			return approved(t, z, z.rita, func(s *wire.RevealRequest) { s.Reason = "curiosity" }), z.backoffic
		}, 403, "passkey_invalid", true},
		{"403/passkey_invalid/assertion-for-another-browser-key", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			// What a compromised gateway would do: swap in a key it holds.
			return approved(t, z, z.rita, func(s *wire.RevealRequest) { s.BrowserKey, _ = kstest.BrowserKey(t) }), z.backoffic
		}, 403, "passkey_invalid", true},
		{"403/passkey_invalid/assertion-for-another-nonce", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			other := z.nonceFor(t, z.backoffic, "op_rita", "tok_1")
			return approved(t, z, z.rita, func(s *wire.RevealRequest) { s.Nonce = other }), z.backoffic
		}, 403, "passkey_invalid", true},
		{"403/passkey_invalid/credential-of-another-operator", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			return approved(t, z, z.otto, nil), z.backoffic
		}, 403, "passkey_invalid", true},
		{"403/passkey_invalid/no-user-verification", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			z.rita.UserVerified = false
			defer func() { z.rita.UserVerified = true }()
			return approved(t, z, z.rita, nil), z.backoffic
		}, 403, "passkey_invalid", true},
		{"403/passkey_invalid/wrong-origin", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			z.rita.Origin = "https://evil.example"
			defer func() { z.rita.Origin = kstest.RPOrigin }()
			return approved(t, z, z.rita, nil), z.backoffic
		}, 403, "passkey_invalid", true},
		{"403/passkey_invalid/wrong-rp-id", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			z.rita.RPID = "evil.example"
			defer func() { z.rita.RPID = kstest.RPID }()
			return approved(t, z, z.rita, nil), z.backoffic
		}, 403, "passkey_invalid", true},
		{"403/passkey_invalid/counter-went-back", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			if resp, m := z.sendApproved(t); resp.StatusCode != 200 {
				t.Fatalf("first reveal: %d %v", resp.StatusCode, m)
			}
			z.rita.Counter = 0 // a clone that has not seen the last use
			return approved(t, z, z.rita, nil), z.backoffic
		}, 403, "passkey_invalid", true},
		{"403/passkey_unknown/unknown-credential", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			return approved(t, z, kstest.NewAuthenticator(t, passkey.RP{}), nil), z.backoffic
		}, 403, "passkey_unknown", true},
		{"403/passkey_unknown/pending-credential", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			return approved(t, z, z.pending, nil), z.backoffic
		}, 403, "passkey_unknown", true},
		{"403/passkey_unknown/revoked-credential", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			return approved(t, z, z.revoked, nil), z.backoffic
		}, 403, "passkey_unknown", true},
		{"403/passkey_required/missing-assertion", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			r := approved(t, z, z.rita, nil)
			r.Assertion = nil
			return r, z.backoffic
		}, 403, "passkey_required", false},
		{"403/passkey_required/gateway-forged-request-without-assertion", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			// The gateway holds the back office's signing key: it can get a
			// nonce and sign a reveal, but not make the operator's passkey
			// sign it.
			key, _ := kstest.BrowserKey(t)
			return wire.RevealRequest{JWE: z.jwe, Actor: "op_rita", Reason: "routine check", Token: "tok_1", BrowserKey: key,
				Nonce: z.nonceFor(t, z.backoffic, "op_rita", "tok_1")}, z.backoffic
		}, 403, "passkey_required", false},
		{"403/passkey_unknown/gateway-forged-assertion-with-its-own-key", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			forger := kstest.NewAuthenticator(t, passkey.RP{})
			forger.UserHandle = wire.UserHandle("op_rita")
			return approved(t, z, forger, nil), z.backoffic
		}, 403, "passkey_unknown", true},
		{"403/reveal_nonce_invalid/replayed-assertion", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			r := approved(t, z, z.rita, nil)
			if resp, m := z.call(t, z.backoffic, http.MethodPost, wire.PathReveal, r); resp.StatusCode != 200 {
				t.Fatalf("first use: %d %v", resp.StatusCode, m)
			}
			return r, z.backoffic // the same body, signed again
		}, 403, "reveal_nonce_invalid", false},
		{"403/reveal_nonce_invalid/nonce-of-another-operator", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			otto := z.nonceFor(t, z.backoffic, "op_otto", "tok_1")
			r := approved(t, z, z.rita, func(s *wire.RevealRequest) { s.Nonce = otto })
			r.Nonce = otto
			return r, z.backoffic
		}, 403, "reveal_nonce_invalid", false},
		{"403/reveal_nonce_invalid/nonce-of-another-token", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			n := z.nonceFor(t, z.backoffic, "op_rita", "tok_2")
			r := approved(t, z, z.rita, func(s *wire.RevealRequest) { s.Nonce = n })
			r.Nonce = n
			return r, z.backoffic
		}, 403, "reveal_nonce_invalid", false},
		{"403/reveal_nonce_invalid/nonce-of-another-client", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			n := z.nonceFor(t, z.other, "op_rita", "tok_1")
			r := approved(t, z, z.rita, func(s *wire.RevealRequest) { s.Nonce = n })
			r.Nonce = n
			return r, z.backoffic
		}, 403, "reveal_nonce_invalid", false},
		{"403/reveal_nonce_invalid/expired-nonce", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			r := approved(t, z, z.rita, nil)
			z.clock.add(2*time.Minute + time.Second)
			return r, z.backoffic
		}, 403, "reveal_nonce_invalid", false},
		{"403/reveal_nonce_invalid/never-issued", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			r := approved(t, z, z.rita, func(s *wire.RevealRequest) { s.Nonce = "rvn_" + strings.Repeat("A", 43) })
			r.Nonce = "rvn_" + strings.Repeat("A", 43)
			return r, z.backoffic
		}, 403, "reveal_nonce_invalid", false},
		{"400/browser_key_invalid/off-curve", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			r := approved(t, z, z.rita, nil)
			r.BrowserKey.Y = r.BrowserKey.X
			return r, z.backoffic
		}, 400, "browser_key_invalid", false},
		// The key is checked where it always was, before the nonce's shape.
		{"400/browser_key_invalid/p-384-before-a-bad-nonce", func(t *testing.T, z *approvalZone) (wire.RevealRequest, *client.Signer) {
			r := approved(t, z, z.rita, nil)
			r.BrowserKey.Crv, r.Nonce = "P-384", "rvn_short"
			return r, z.backoffic
		}, 400, "browser_key_invalid", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			z := newApprovalZone(t)
			req, signer := tc.build(t, z)
			resp, m := z.call(t, signer, http.MethodPost, wire.PathReveal, req)
			if resp.StatusCode != tc.status || errCode(m) != tc.code {
				t.Fatalf("status %d code %q, want %d %q (%v)", resp.StatusCode, errCode(m), tc.status, tc.code, m)
			}
			if _, has := m["jwe"]; has {
				t.Fatal("a refused reveal answered a ciphertext")
			}
			ev := z.lastDenial(t)
			want := ""
			if tc.named {
				id, err := passkey.AssertionCredentialID(req.Assertion)
				if err != nil {
					t.Fatal(err)
				}
				want = b64(id)
			}
			if ev.Code != tc.code || ev.Credential != want || ev.Actor != "op_rita" || ev.Resource != "tok_1" || ev.Client != "backoffice" || ev.Outcome != audit.OutcomeDenied {
				t.Fatalf("denial record %+v, want code %s credential %q", ev, tc.code, want)
			}
			// Nothing was decrypted: no reveal was recorded as authorised
			// beyond those the case made on purpose first.
			for _, e := range z.Events(t, audit.Filter{Event: audit.EventReveal}) {
				if e.Outcome == audit.OutcomeSuccess && e.Credential != z.rita.ID() {
					t.Fatalf("a reveal went ahead: %+v", e)
				}
			}
		})
	}
}

// sendApproved makes one approved reveal of tok_1 by op_rita.
func (z *approvalZone) sendApproved(t *testing.T) (*http.Response, map[string]any) {
	t.Helper()
	return z.call(t, z.backoffic, http.MethodPost, wire.PathReveal, approved(t, z, z.rita, nil))
}

// TestRevealApproved: the answer is a JWE to the browser key bound to the
// token and nonce, and the audit record names the approving credential.
func TestRevealApproved(t *testing.T) {
	z := newApprovalZone(t)
	key, priv := kstest.BrowserKey(t)
	n := z.nonceFor(t, z.backoffic, "op_rita", "tok_1")
	resp, m := z.call(t, z.backoffic, http.MethodPost, wire.PathReveal, wire.RevealRequest{
		JWE: z.jwe, Actor: "op_rita", Reason: "chargeback 1234", Token: "tok_1", Nonce: n, BrowserKey: key,
		Assertion: kstest.Assertion(t, z.rita, n, "tok_1", "chargeback 1234", key),
	})
	if resp.StatusCode != 200 || m["credential"] != z.rita.ID() {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if b, _ := json.Marshal(m); strings.Contains(string(b), testPAN) || len(m) != 2 {
		t.Fatalf("the answer holds more than the JWE and the credential: %s", b)
	}
	c := kstest.OpenReveal(t, m["jwe"].(string), priv, "tok_1", n)
	if c.PAN != testPAN || c.ExpMonth != 1 || c.ExpYear != 2031 || c.Name != "N" {
		t.Fatalf("card %+v", c)
	}
	evs := z.Events(t, audit.Filter{Event: audit.EventReveal})
	if len(evs) != 1 || evs[0].Credential != z.rita.ID() || evs[0].Outcome != audit.OutcomeSuccess || evs[0].Resource != "tok_1" || evs[0].Reason != "chargeback 1234" {
		t.Fatalf("reveal record %+v", evs)
	}
	if strings.Contains(z.logs.String(), testPAN) {
		t.Fatal("a card number reached the logs")
	}
}

// TestRevealChallengeNeedsAnApprovedPasskey: an operator without one is
// refused at the challenge already, audited; one with one gets the RP id
// and only the approved credentials.
func TestRevealChallengeNeedsAnApprovedPasskey(t *testing.T) {
	z := newApprovalZone(t)
	resp, m := z.call(t, z.backoffic, http.MethodPost, wire.PathRevealChallenge, wire.RevealChallengeRequest{Actor: "op_nobody", Token: "tok_1"})
	if resp.StatusCode != 403 || errCode(m) != "passkey_required" {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if ev := z.lastDenial(t); ev.Code != "passkey_required" || ev.Actor != "op_nobody" || ev.Resource != "tok_1" {
		t.Fatalf("denial %+v", ev)
	}
	resp, m = z.call(t, z.backoffic, http.MethodPost, wire.PathRevealChallenge, wire.RevealChallengeRequest{Actor: "op_rita", Token: "tok_1"})
	creds, _ := m["credentials"].([]any)
	if resp.StatusCode != 200 || m["rp_id"] != kstest.RPID || m["passkey_required"] != true || len(creds) != 1 || creds[0] != z.rita.ID() {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if n, _ := m["nonce"].(string); wire.CheckNonce(wire.RevealNoncePrefix, n) != nil {
		t.Fatalf("nonce %q", n)
	}
	if resp, m := z.call(t, z.gateway, http.MethodPost, wire.PathRevealChallenge, wire.RevealChallengeRequest{Actor: "op_rita", Token: "tok_1"}); resp.StatusCode != 403 || errCode(m) != "forbidden" {
		t.Fatalf("checkout identity asked for a reveal nonce: %d %v", resp.StatusCode, m)
	}
}

// TestRevealAuditBeforeDecrypt: with the audit log failing, an approved
// reveal answers 503 audit_unavailable and no ciphertext.
func TestRevealAuditBeforeDecrypt(t *testing.T) {
	z := newApprovalZone(t)
	r := approved(t, z, z.rita, nil)
	if err := z.Audit.Close(); err != nil {
		t.Fatal(err)
	}
	resp, m := z.call(t, z.backoffic, http.MethodPost, wire.PathReveal, r)
	if resp.StatusCode != 503 || errCode(m) != "audit_unavailable" || m["jwe"] != nil {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
}

// TestRevealApprovalNone: with -reveal-approval none a nonce is still
// needed and single use, no assertion is, and the card still leaves only
// encrypted to the browser key.
func TestRevealApprovalNone(t *testing.T) {
	ts := &testServer{passkeys: map[string]*passkeytest.Authenticator{}}
	ts.Zone = kstest.NewZone(t, kstest.Options{
		Clients:        []kstest.Client{{ID: "backoffice", Ops: []string{wire.OpReveal}}},
		RevealApproval: "none",
	})
	ts.backoffic = ts.Signer(t, "backoffice")
	resp, m := ts.call(t, ts.backoffic, http.MethodPost, wire.PathRevealChallenge, wire.RevealChallengeRequest{Actor: "op_1", Token: "tok_1"})
	if resp.StatusCode != 200 || m["passkey_required"] != false {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	n := m["nonce"].(string)
	key, priv := kstest.BrowserKey(t)
	req := wire.RevealRequest{JWE: ts.cardJWE(t, testPAN, "cs_1", time.Now()), Actor: "op_1", Reason: "dispute", Token: "tok_1", Nonce: n, BrowserKey: key}
	resp, m = ts.call(t, ts.backoffic, http.MethodPost, wire.PathReveal, req)
	if resp.StatusCode != 200 || m["credential"] != nil {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if c := kstest.OpenReveal(t, m["jwe"].(string), priv, "tok_1", n); c.PAN != testPAN {
		t.Fatalf("card %+v", c)
	}
	if resp, m := ts.call(t, ts.backoffic, http.MethodPost, wire.PathReveal, req); resp.StatusCode != 403 || errCode(m) != "reveal_nonce_invalid" {
		t.Fatalf("replay without approval: %d %v", resp.StatusCode, m)
	}
}

// TestRefusedRevealBodyIsAudited: a reveal the HTTP layer refuses (a field
// out of shape) is audited as well, without the refused text.
func TestRefusedRevealBodyIsAudited(t *testing.T) {
	z := newApprovalZone(t)
	r := approved(t, z, z.rita, nil)
	r.Nonce = "not-a-nonce"
	resp, m := z.call(t, z.backoffic, http.MethodPost, wire.PathReveal, r)
	if resp.StatusCode != 400 || errCode(m) != "invalid_field" {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if ev := z.lastDenial(t); ev.Code != "invalid_field" || ev.Actor != "op_rita" || ev.Resource != "tok_1" {
		t.Fatalf("denial %+v", ev)
	}
	r = approved(t, z, z.rita, nil)
	r.Reason = "card 4242 4242 4242 4242"
	resp, m = z.call(t, z.backoffic, http.MethodPost, wire.PathReveal, r)
	if resp.StatusCode != 400 || errCode(m) != "pan_in_text" {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if ev := z.lastDenial(t); ev.Code != "pan_in_text" || ev.Reason != "" {
		t.Fatalf("denial %+v", ev)
	}
}

// TestPasskeyRegistration: the gateway (the back-office identity) can
// register passkeys, but only as pending, which approve nothing until a
// key-zone admin approves them; every registration is audited.
func TestPasskeyRegistration(t *testing.T) {
	z := newApprovalZone(t)
	a := kstest.NewAuthenticator(t, passkey.RP{})
	challenge := func(s *client.Signer, actor string) wire.PasskeyChallengeResponse {
		t.Helper()
		resp, m := z.call(t, s, http.MethodPost, wire.PathPasskeyChallenge, wire.PasskeyChallengeRequest{Actor: actor})
		if resp.StatusCode != 200 {
			t.Fatalf("passkey challenge: %d %v", resp.StatusCode, m)
		}
		b, _ := json.Marshal(m)
		var out wire.PasskeyChallengeResponse
		_ = json.Unmarshal(b, &out)
		return out
	}
	ch := challenge(z.backoffic, "op_new")
	if ch.RPID != kstest.RPID || ch.UserHandle != b64(wire.UserHandle("op_new")) {
		t.Fatalf("challenge %+v", ch)
	}
	att, err := a.Create(wire.EnrolChallenge(ch.Nonce, "op_new"), wire.UserHandle("op_new"))
	if err != nil {
		t.Fatal(err)
	}
	resp, m := z.call(t, z.backoffic, http.MethodPost, wire.PathPasskeys, wire.PasskeyRegisterRequest{Actor: "op_new", Username: "Nina New", Nonce: ch.Nonce, Attestation: att})
	if resp.StatusCode != 202 || m["status"] != wire.PasskeyPending || m["credential"] != a.ID() || m["fingerprint"] == "" {
		t.Fatalf("register: %d %v", resp.StatusCode, m)
	}
	fp := m["fingerprint"].(string)
	evs := z.Events(t, audit.Filter{Event: audit.EventPasskeyRegister, Limit: 1})
	if len(evs) != 1 || evs[0].Outcome != audit.OutcomeSuccess || evs[0].Credential != a.ID() || evs[0].Actor != "op_new" || !strings.Contains(evs[0].Reason, "fingerprint="+fp) {
		t.Fatalf("registration record %+v", evs)
	}
	resp, m = z.call(t, z.backoffic, http.MethodPost, wire.PathPasskeyList, wire.PasskeyListRequest{Actor: "op_new"})
	list, _ := m["credentials"].([]any)
	if resp.StatusCode != 200 || len(list) != 1 || list[0].(map[string]any)["status"] != wire.PasskeyPending {
		t.Fatalf("list: %d %v", resp.StatusCode, m)
	}
	// Pending: the operator cannot even get a reveal nonce, and a nonce got
	// otherwise would not help (passkey_unknown, in TestRevealRefusals).
	if resp, m := z.call(t, z.backoffic, http.MethodPost, wire.PathRevealChallenge, wire.RevealChallengeRequest{Actor: "op_new", Token: "tok_1"}); resp.StatusCode != 403 || errCode(m) != "passkey_required" {
		t.Fatalf("pending passkey got a reveal nonce: %d %v", resp.StatusCode, m)
	}
	// The admin's approval, and then it works.
	z.ApprovePasskey(t, fp)
	n := z.nonceFor(t, z.backoffic, "op_new", "tok_1")
	key, _ := kstest.BrowserKey(t)
	resp, m = z.call(t, z.backoffic, http.MethodPost, wire.PathReveal, wire.RevealRequest{JWE: z.jwe, Actor: "op_new", Reason: "ticket 7", Token: "tok_1", Nonce: n, BrowserKey: key,
		Assertion: kstest.Assertion(t, a, n, "tok_1", "ticket 7", key)})
	if resp.StatusCode != 200 || m["credential"] != a.ID() {
		t.Fatalf("reveal after approval: %d %v", resp.StatusCode, m)
	}
}

func TestPasskeyRegistrationRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		build  func(t *testing.T, z *approvalZone) (wire.PasskeyRegisterRequest, *client.Signer)
		status int
		code   string
	}{
		{"403/passkey_invalid/signed-another-challenge", func(t *testing.T, z *approvalZone) (wire.PasskeyRegisterRequest, *client.Signer) {
			n := z.enrolNonce(t, z.backoffic, "op_new")
			att, _ := kstest.NewAuthenticator(t, passkey.RP{}).Create(wire.EnrolChallenge(n, "op_other"), wire.UserHandle("op_new"))
			return wire.PasskeyRegisterRequest{Actor: "op_new", Username: "n", Nonce: n, Attestation: att}, z.backoffic
		}, 403, "passkey_invalid"},
		{"403/passkey_invalid/no-user-verification", func(t *testing.T, z *approvalZone) (wire.PasskeyRegisterRequest, *client.Signer) {
			n := z.enrolNonce(t, z.backoffic, "op_new")
			a := kstest.NewAuthenticator(t, passkey.RP{})
			a.UserVerified = false
			att, _ := a.Create(wire.EnrolChallenge(n, "op_new"), wire.UserHandle("op_new"))
			return wire.PasskeyRegisterRequest{Actor: "op_new", Username: "n", Nonce: n, Attestation: att}, z.backoffic
		}, 403, "passkey_invalid"},
		{"403/passkey_invalid/already-registered", func(t *testing.T, z *approvalZone) (wire.PasskeyRegisterRequest, *client.Signer) {
			n := z.enrolNonce(t, z.backoffic, "op_rita")
			att, _ := z.rita.Create(wire.EnrolChallenge(n, "op_rita"), wire.UserHandle("op_rita"))
			return wire.PasskeyRegisterRequest{Actor: "op_rita", Username: "n", Nonce: n, Attestation: att}, z.backoffic
		}, 403, "passkey_invalid"},
		{"403/reveal_nonce_invalid/nonce-of-another-client", func(t *testing.T, z *approvalZone) (wire.PasskeyRegisterRequest, *client.Signer) {
			n := z.enrolNonce(t, z.other, "op_new")
			att, _ := kstest.NewAuthenticator(t, passkey.RP{}).Create(wire.EnrolChallenge(n, "op_new"), wire.UserHandle("op_new"))
			return wire.PasskeyRegisterRequest{Actor: "op_new", Username: "n", Nonce: n, Attestation: att}, z.backoffic
		}, 403, "reveal_nonce_invalid"},
		{"400/pan_in_text/username", func(t *testing.T, z *approvalZone) (wire.PasskeyRegisterRequest, *client.Signer) {
			n := z.enrolNonce(t, z.backoffic, "op_new")
			return wire.PasskeyRegisterRequest{Actor: "op_new", Username: "4242 4242 4242 4242", Nonce: n, Attestation: json.RawMessage(`{}`)}, z.backoffic
		}, 400, "pan_in_text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := newApprovalZone(t)
			before := len(z.Registry.All())
			req, s := tc.build(t, z)
			resp, m := z.call(t, s, http.MethodPost, wire.PathPasskeys, req)
			if resp.StatusCode != tc.status || errCode(m) != tc.code {
				t.Fatalf("%d %v, want %d %s", resp.StatusCode, m, tc.status, tc.code)
			}
			if len(z.Registry.All()) != before {
				t.Fatal("a refused registration reached the registry")
			}
			evs := z.Events(t, audit.Filter{Event: audit.EventPasskeyRegister, Outcome: audit.OutcomeDenied, Limit: 1})
			if len(evs) != 1 || evs[0].Code != tc.code || strings.Contains(evs[0].Reason, "4242") {
				t.Fatalf("refusal record %+v", evs)
			}
		})
	}
}

func (z *approvalZone) enrolNonce(t *testing.T, s *client.Signer, actor string) string {
	t.Helper()
	resp, m := z.call(t, s, http.MethodPost, wire.PathPasskeyChallenge, wire.PasskeyChallengeRequest{Actor: actor})
	if resp.StatusCode != 200 {
		t.Fatalf("passkey challenge: %d %v", resp.StatusCode, m)
	}
	return m["nonce"].(string)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestRevealLimiterDownIs503: an approved reveal whose limits cannot be
// counted (their Redis down) is answered 503 unavailable, audited as
// reveal.denied, and nothing is decrypted.
func TestRevealLimiterDownIs503(t *testing.T) {
	rdb := testenv.Redis(t)
	ts := newTestServerWith(t, backends{replay: replay.NewMemory(), limiter: ratelimit.NewRedis(rdb, "bg:ks:rl:")}, nil)
	jwe := ts.cardJWE(t, testPAN, "cs_1", time.Now())
	if resp, m := ts.reveal(t, "op_rita", "chargeback 1234", "tok_1", jwe); resp.StatusCode != 200 {
		t.Fatalf("with Redis up: %d %v", resp.StatusCode, m)
	}
	_ = rdb.Close()
	resp, m := ts.reveal(t, "op_rita", "chargeback 1234", "tok_1", jwe)
	if resp.StatusCode != 503 || errCode(m) != "unavailable" || m["jwe"] != nil {
		t.Fatalf("with the limits' Redis down: %d %v", resp.StatusCode, m)
	}
	if evs := ts.Events(t, audit.Filter{Event: audit.EventRevealDenied, Limit: 1}); len(evs) != 1 || evs[0].Code != "unavailable" || evs[0].Actor != "op_rita" {
		t.Fatalf("denial %+v", evs)
	}
	if evs := ts.Events(t, audit.Filter{Event: audit.EventReveal}); len(evs) != 1 {
		t.Fatalf("%d reveals authorised, want only the one before Redis went down", len(evs))
	}
}

// TestRevealReplayIs409WhateverItsBody: a reveal claims its jti in the
// domain (with its nonce's take, one round trip on Redis), and every
// refusal before that claims it alone first: the second use of a signed
// reveal is 409 replay whatever became of the first (Contract 2), audited
// as a denied request (op:reveal, replay) and not as a reveal.denied, on
// memory and on Redis.
func TestRevealReplayIs409WhateverItsBody(t *testing.T) {
	type sent struct {
		body []byte
		want int
	}
	for _, backend := range []string{"memory", "redis"} {
		for _, tc := range []struct {
			name string
			make func(t *testing.T, ts *testServer, a *passkeytest.Authenticator) sent
		}{
			{"409/replay-of-approved-reveal", func(t *testing.T, ts *testServer, a *passkeytest.Authenticator) sent {
				return sent{revealBody(t, ts, a, nil), 200}
			}},
			{"409/replay-of-unreadable-body", func(*testing.T, *testServer, *passkeytest.Authenticator) sent {
				return sent{[]byte(`{"jwe":`), 400}
			}},
			{"409/replay-of-reason-not-normalised", func(t *testing.T, ts *testServer, a *passkeytest.Authenticator) sent {
				return sent{revealBody(t, ts, a, func(r *wire.RevealRequest) { r.Reason = "chargeback  1234" }), 400}
			}},
			{"409/replay-of-nonce-never-issued", func(t *testing.T, ts *testServer, a *passkeytest.Authenticator) sent {
				return sent{revealBody(t, ts, a, func(r *wire.RevealRequest) { r.Nonce = "rvn_" + strings.Repeat("A", 43) }), 403}
			}},
			{"409/replay-of-refused-assertion", func(t *testing.T, ts *testServer, a *passkeytest.Authenticator) sent {
				return sent{revealBody(t, ts, a, func(r *wire.RevealRequest) { r.Assertion = nil }), 403}
			}},
		} {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				ts := revealServer(t, backend)
				a := ts.EnrolPasskey(t, "backoffice", "op_rita")
				s := tc.make(t, ts, a)
				h, err := ts.backoffic.Authorization(http.MethodPost, kstest.PublicURL+wire.PathReveal, s.body)
				if err != nil {
					t.Fatal(err)
				}
				send := func() (*http.Response, map[string]any) {
					req := httptest.NewRequest(http.MethodPost, wire.PathReveal, bytes.NewReader(s.body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", h)
					return ts.do(t, req)
				}
				if resp, m := send(); resp.StatusCode != s.want {
					t.Fatalf("first use: %d %v, want %d", resp.StatusCode, m, s.want)
				}
				denials := len(ts.Events(t, audit.Filter{Event: audit.EventRevealDenied}))
				if resp, m := send(); resp.StatusCode != 409 || errCode(m) != "replay" || m["jwe"] != nil {
					t.Fatalf("replay: %d %v", resp.StatusCode, m)
				}
				if evs := ts.Events(t, audit.Filter{Event: audit.EventDenied, Limit: 1}); len(evs) != 1 || evs[0].Code != "replay" || evs[0].Resource != "op:"+wire.OpReveal || evs[0].Client != "backoffice" {
					t.Fatalf("the replay's record %+v", evs)
				}
				if n := len(ts.Events(t, audit.Filter{Event: audit.EventRevealDenied})); n != denials {
					t.Fatalf("the replay was recorded as a refused reveal (%d reveal.denied, %d before)", n, denials)
				}
			})
		}
	}
	t.Run("503/redis-down-nothing-decrypted", func(t *testing.T) {
		rdb := testenv.Redis(t)
		ts := revealServerOn(t, rdb)
		a := ts.EnrolPasskey(t, "backoffice", "op_rita")
		body := revealBody(t, ts, a, nil)
		_ = rdb.Close()
		h, _ := ts.backoffic.Authorization(http.MethodPost, kstest.PublicURL+wire.PathReveal, body)
		req := httptest.NewRequest(http.MethodPost, wire.PathReveal, bytes.NewReader(body))
		req.Header.Set("Authorization", h)
		if resp, m := ts.do(t, req); resp.StatusCode != 503 || errCode(m) != "unavailable" || m["jwe"] != nil {
			t.Fatalf("with Redis down: %d %v", resp.StatusCode, m)
		}
		if evs := ts.Events(t, audit.Filter{Event: audit.EventDenied, Limit: 1}); len(evs) != 1 || evs[0].Code != "unavailable" || evs[0].Resource != "op:"+wire.OpReveal {
			t.Fatalf("the refusal's record %+v", evs)
		}
		if evs := ts.Events(t, audit.Filter{Event: audit.EventReveal}); len(evs) != 0 {
			t.Fatalf("a reveal was authorised with Redis down: %+v", evs)
		}
	})
}

// revealServer is a key service for reveals on memory, or on one Redis
// client for its replay cache, limits and nonces, as keyservice/app wires
// them.
func revealServer(t *testing.T, backend string) *testServer {
	t.Helper()
	if backend == "redis" {
		return revealServerOn(t, testenv.Redis(t))
	}
	return newTestServer(t, memoryBackends())
}

func revealServerOn(t *testing.T, rdb *redis.Client) *testServer {
	t.Helper()
	return newTestServerWith(t, backends{replay: replay.NewRedis(rdb, "bg:ks:jti:"), limiter: ratelimit.NewRedis(rdb, "bg:ks:rl:")}, func(o *kstest.Options) {
		o.Nonces = nonce.NewRedis(rdb, "bg:ks:nonce:")
	})
}

// revealBody is op_rita's approved reveal of tok_1 with a fresh nonce,
// then edit applied to it (after the assertion was made).
func revealBody(t *testing.T, ts *testServer, a *passkeytest.Authenticator, edit func(*wire.RevealRequest)) []byte {
	t.Helper()
	resp, m := ts.call(t, ts.backoffic, http.MethodPost, wire.PathRevealChallenge, wire.RevealChallengeRequest{Actor: "op_rita", Token: "tok_1"})
	if resp.StatusCode != 200 {
		t.Fatalf("challenge: %d %v", resp.StatusCode, m)
	}
	n, _ := m["nonce"].(string)
	key, _ := kstest.BrowserKey(t)
	r := wire.RevealRequest{JWE: ts.cardJWE(t, testPAN, "cs_1", time.Now()), Actor: "op_rita", Reason: "chargeback 1234", Token: "tok_1", Nonce: n, BrowserKey: key,
		Assertion: kstest.Assertion(t, a, n, "tok_1", "chargeback 1234", key)}
	if edit != nil {
		edit(&r)
	}
	b, _ := json.Marshal(r)
	return b
}
