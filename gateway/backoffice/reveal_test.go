package backoffice_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// TestRevealOrderOfChecks: role, then scope, then reason, then the
// request's shape, then fresh authentication, then lockout, then the
// gateway's audit record, then the key service. Each case fails one check
// (and passes all before it) and shows exactly which collaborators were
// called, in order: a refused check never reaches the key service, and the
// audit record precedes the key service's reveal.
func TestRevealOrderOfChecks(t *testing.T) {
	fresh, stale := time.Minute, backoffice.ReauthWindow+time.Second
	locked := rita
	locked.LockedUntil = testNow.Add(time.Hour)
	key := testBrowserKey(t)
	offCurve := key
	offCurve.Y = offCurve.X
	req := func(tok, reason string, extra ...string) backoffice.RevealRequest {
		r := backoffice.RevealRequest{TokenID: tok, Reason: reason, BrowserKey: key, Nonce: testNonce, Assertion: json.RawMessage(testAssertion)}
		for i := 0; i+1 < len(extra); i += 2 {
			switch extra[i] {
			case "password":
				r.Password = extra[i+1]
			case "code":
				r.Code = extra[i+1]
			case "nonce":
				r.Nonce = extra[i+1]
			case "assertion":
				r.Assertion = json.RawMessage(extra[i+1])
			}
		}
		return r
	}
	withKey := func(r backoffice.RevealRequest, k wire.BrowserKey) backoffice.RevealRequest {
		r.BrowserKey = k
		return r
	}
	ksRefusal := &client.Error{Status: 403, Code: "passkey_invalid"}
	tests := []struct {
		name       string
		actor      backoffice.Actor
		req        backoffice.RevealRequest
		authErr    error // operators.Authenticate's answer
		confirmErr error // operators.ConfirmPasskey's answer
		ksErr      error // the key service's reveal answer
		auditFail  string
		want       error
		wantCalls  []string
	}{
		{"forbidden/admin-separation-of-duties", actor(adam, fresh), req(tokAID, goodCause),
			nil, nil, nil, "", backoffice.ErrForbidden, []string{"audit:reveal.denied"}},
		{"forbidden/viewer", actor(vera, stale), req("not-a-token", "x"),
			nil, nil, nil, "", backoffice.ErrForbidden, []string{"audit:reveal.denied"}},
		{"forbidden/even-if-the-denial-cannot-be-audited", actor(adam, fresh), req(tokAID, goodCause),
			nil, nil, nil, audit.EventRevealDenied, backoffice.ErrForbidden, []string{"audit:reveal.denied"}},
		{"not-found/other-merchants-token", actor(anna, stale), req(tokBID, "x"),
			nil, nil, nil, "", backoffice.ErrNotFound, []string{"tokens.get"}},
		{"not-found/malformed-id", actor(rita, stale), req("tok_../x", "x"),
			nil, nil, nil, "", backoffice.ErrNotFound, nil},
		{"invalid/reason-too-short-before-reauth", actor(anna, stale), req(tokAID, "  x "),
			nil, nil, nil, "", backoffice.ErrInvalid, []string{"tokens.get"}},
		{"invalid/reason-holds-a-card-number", actor(rita, fresh), req(tokBID, "card "+testPAN),
			nil, nil, nil, "", wire.ErrPANInText, []string{"tokens.lookup"}},
		{"invalid/browser-key-off-the-curve", actor(rita, stale), withKey(req(tokAID, goodCause), offCurve),
			nil, nil, nil, "", wire.ErrBrowserKey, []string{"tokens.lookup"}},
		{"invalid/nonce-malformed", actor(rita, fresh), req(tokAID, goodCause, "nonce", "rvn_short"),
			nil, nil, nil, "", backoffice.ErrInvalid, []string{"tokens.lookup"}},
		{"invalid/assertion-unreadable", actor(rita, fresh), req(tokAID, goodCause, "assertion", `{"id":"x"}`),
			nil, nil, nil, "", backoffice.ErrInvalid, []string{"tokens.lookup"}},
		{"reauth-required/stale-session-no-password-no-gateway-passkey", actor(rita, stale), req(tokAID, goodCause),
			nil, nil, nil, "", backoffice.ErrReauthRequired, []string{"tokens.lookup"}},
		{"reauth-failed/wrong-password", actor(rita, stale), req(tokAID, goodCause, "password", "wrong", "code", goodCode),
			nil, nil, nil, "", backoffice.ErrReauthFailed, []string{"tokens.lookup", "operators.authenticate", "audit:login"}},
		{"locked/reauth-locks-and-ends-session", actor(rita, stale), req(tokAID, goodCause, "password", "wrong", "code", goodCode),
			&operators.LockedError{Until: testNow.Add(time.Hour)}, nil, nil, "", backoffice.ErrLocked,
			[]string{"tokens.lookup", "operators.authenticate", "audit:login", "sessions.delete"}},
		{"reauth-failed/passkey-does-not-verify-at-the-gateway", actor(pia, stale), req(tokAID, goodCause),
			nil, operators.ErrBadCredentials, nil, "", backoffice.ErrReauthFailed,
			[]string{"tokens.lookup", "operators.confirm-passkey", "audit:login"}},
		{"locked/account-locked-under-fresh-session", actor(locked, fresh), req(tokAID, goodCause),
			nil, nil, nil, "", backoffice.ErrLocked, []string{"tokens.lookup"}},
		{"audit-failed/no-audit-no-reveal", actor(rita, fresh), req(tokAID, goodCause),
			nil, nil, nil, audit.EventReveal, backoffice.ErrAuditFailed, []string{"tokens.lookup", "audit:reveal"}},
		{"approval-refused/recorded-at-the-gateway-too", actor(rita, fresh), req(tokAID, goodCause),
			nil, nil, ksRefusal, "", backoffice.ErrApprovalRefused, []string{"tokens.lookup", "audit:reveal", "keyservice.reveal", "audit:reveal.denied"}},
		{"revealed/fresh-session", actor(anna, fresh), req(tokAID, goodCause),
			nil, nil, nil, "", nil, []string{"tokens.get", "audit:reveal", "keyservice.reveal"}},
		{"revealed/after-reauth", actor(rita, stale), req(tokBID, goodCause, "password", password, "code", goodCode),
			nil, nil, nil, "", nil, []string{"tokens.lookup", "operators.authenticate", "sessions.reauth", "audit:login", "audit:reveal", "keyservice.reveal"}},
		// The reveal's own assertion re-authenticates it, and only it: the
		// session is not made fresh (no sessions.reauth).
		{"revealed/passkey-stands-for-the-reauth", actor(pia, stale), req(tokAID, goodCause),
			nil, nil, nil, "", nil, []string{"tokens.lookup", "operators.confirm-passkey", "audit:login", "audit:reveal", "keyservice.reveal"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.ops.authErr = tc.authErr
			f.ops.confirmErr = tc.confirmErr
			f.ks.revealErr = tc.ksErr
			f.audit.failOn = tc.auditFail
			res, err := f.svc.Reveal(context.Background(), tc.actor, tc.req)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got := f.calls.list(); !slices.Equal(got, tc.wantCalls) {
				t.Fatalf("calls %q, want %q", got, tc.wantCalls)
			}
			if tc.want != nil && res.JWE != "" {
				t.Fatal("a refused reveal returned a ciphertext")
			}
			if tc.want == nil {
				if res.JWE == "" || res.Credential != testCredID {
					t.Fatalf("revealed %+v", res)
				}
				// What the key service was asked: every field of this reveal.
				got := f.ks.reveals[0]
				if got.Actor != tc.actor.Op.ID || got.Token != tc.req.TokenID || got.Reason != goodCause || got.Nonce != testNonce ||
					got.BrowserKey != key || string(got.Assertion) != testAssertion || got.JWE != "a.b.c.d.e" {
					t.Fatalf("key service request %+v", got)
				}
			}
		})
	}
}

// TestRevealChallenge: the same role, scope, reason and lockout checks as
// the reveal, the browser key, then the key service's nonce; and whether the
// page must ask for the password because the session is stale.
func TestRevealChallenge(t *testing.T) {
	fresh, stale := time.Minute, backoffice.ReauthWindow+time.Second
	key := testBrowserKey(t)
	bad := key
	bad.Crv = "P-384"
	tests := []struct {
		name       string
		actor      backoffice.Actor
		req        backoffice.ChallengeRequest
		mfa        operators.MFAMode
		approved   []string
		want       error
		wantReauth bool
		wantCalls  []string
	}{
		{"forbidden/admin", actor(adam, fresh), backoffice.ChallengeRequest{TokenID: tokAID, Reason: goodCause, BrowserKey: key},
			"", nil, backoffice.ErrForbidden, false, []string{"audit:reveal.denied"}},
		{"not-found/other-merchant", actor(anna, fresh), backoffice.ChallengeRequest{TokenID: tokBID, Reason: goodCause, BrowserKey: key},
			"", nil, backoffice.ErrNotFound, false, []string{"tokens.get"}},
		{"invalid/reason", actor(rita, fresh), backoffice.ChallengeRequest{TokenID: tokAID, Reason: "x", BrowserKey: key},
			"", nil, backoffice.ErrInvalid, false, []string{"tokens.lookup"}},
		{"invalid/browser-key", actor(rita, fresh), backoffice.ChallengeRequest{TokenID: tokAID, Reason: goodCause, BrowserKey: bad},
			"", nil, wire.ErrBrowserKey, false, []string{"tokens.lookup"}},
		{"challenge/fresh-session", actor(rita, fresh), backoffice.ChallengeRequest{TokenID: tokAID, Reason: goodCause, BrowserKey: key},
			"", nil, nil, false, []string{"tokens.lookup", "keyservice.reveal-challenge"}},
		{"challenge/stale-without-gateway-passkey-needs-password", actor(rita, stale), backoffice.ChallengeRequest{TokenID: tokAID, Reason: goodCause, BrowserKey: key},
			"", []string{testCredID}, nil, true, []string{"tokens.lookup", "keyservice.reveal-challenge"}},
		{"challenge/stale-with-approved-gateway-passkey", actor(pia, stale), backoffice.ChallengeRequest{TokenID: tokAID, Reason: goodCause, BrowserKey: key},
			"", []string{testCredID}, nil, false, []string{"tokens.lookup", "keyservice.reveal-challenge"}},
		{"challenge/stale-passkey-not-approved-at-the-key-service", actor(pia, stale), backoffice.ChallengeRequest{TokenID: tokAID, Reason: goodCause, BrowserKey: key},
			"", []string{"b3RoZXI"}, nil, true, []string{"tokens.lookup", "keyservice.reveal-challenge"}},
		{"challenge/stale-mfa-totp-passkey-is-no-login-factor", actor(pia, stale), backoffice.ChallengeRequest{TokenID: tokAID, Reason: goodCause, BrowserKey: key},
			operators.MFATOTP, []string{testCredID}, nil, true, []string{"tokens.lookup", "keyservice.reveal-challenge"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.mfa != "" {
				f.ops.mfa = tc.mfa
			}
			f.ks.approved = tc.approved
			ch, err := f.svc.RevealChallenge(context.Background(), tc.actor, tc.req)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got := f.calls.list(); !slices.Equal(got, tc.wantCalls) {
				t.Fatalf("calls %q, want %q", got, tc.wantCalls)
			}
			if tc.want == nil && (ch.KS.Nonce != testNonce || ch.ReauthRequired != tc.wantReauth) {
				t.Fatalf("challenge %+v, want reauth %v", ch, tc.wantReauth)
			}
		})
	}
}

// TestRevealAuditHoldsNoCardNumber: the gateway's own record of a reveal
// (and every other event the reveal writes) names the token and the
// passkey, never the card.
func TestRevealAuditHoldsNoCardNumber(t *testing.T) {
	f := newFixture(t)
	res, err := f.svc.Reveal(context.Background(), actor(rita, time.Hour), backoffice.RevealRequest{TokenID: tokAID,
		Reason: "chargeback   ticket\n#1234", BrowserKey: testBrowserKey(t), Nonce: testNonce, Assertion: json.RawMessage(testAssertion),
		Password: password, Code: goodCode})
	if err != nil || res.JWE == "" {
		t.Fatalf("reveal: %v", err)
	}
	var reveal *audit.Event
	for i, e := range f.audit.events {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), testPAN) || strings.Contains(string(b), testPAN[6:]) {
			t.Fatalf("audit event holds card digits: %s", b)
		}
		if e.Event == audit.EventReveal {
			reveal = &f.audit.events[i]
		}
	}
	if reveal == nil || reveal.Actor != rita.ID || reveal.Resource != tokAID || reveal.Reason != "chargeback ticket #1234" ||
		reveal.Credential != testCredID || reveal.Outcome != audit.OutcomeSuccess || reveal.Origin != "192.0.2.1" {
		t.Fatalf("gateway reveal record: %+v", reveal)
	}
}

// TestRevealDeniedAuditDropsBadReason: a refused role's attempt is recorded
// with its reason only when the reason rule accepts it (a card number typed
// as a reason must not reach the log).
func TestRevealDeniedAuditDropsBadReason(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Reveal(context.Background(), actor(vera, 0), backoffice.RevealRequest{TokenID: tokAID, Reason: testPAN})
	if !errors.Is(err, backoffice.ErrForbidden) {
		t.Fatal(err)
	}
	if len(f.audit.events) != 1 || f.audit.events[0].Reason != "" || f.audit.events[0].Outcome != audit.OutcomeDenied {
		t.Fatalf("denied record: %+v", f.audit.events)
	}
}

// TestKeyServiceErrorsByCode: a key-service failure is classified by its
// stable code, never its HTTP status. The first case failed before: a 400
// invalid_field was read by status and shown as a 502.
func TestKeyServiceErrorsByCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"invalid/400-invalid-field", &client.Error{Status: 400, Code: "invalid_field"}, backoffice.ErrKeyServiceInvalid},
		{"invalid/400-pan-in-text", &client.Error{Status: 400, Code: "pan_in_text"}, backoffice.ErrKeyServiceInvalid},
		{"invalid/client-refused-to-sign", wire.ErrReasonLength, backoffice.ErrKeyServiceInvalid},
		{"undecryptable/400-key-unknown", &client.Error{Status: 400, Code: "key_unknown"}, backoffice.ErrUndecryptable},
		{"undecryptable/422", &client.Error{Status: 422, Code: "card_undecryptable"}, backoffice.ErrUndecryptable},
		{"limited/429", &client.Error{Status: 429, Code: "rate_limited", RetryAfter: time.Minute}, backoffice.ErrKeyServiceLimited},
		{"limited/code-wins-over-a-proxys-status", &client.Error{Status: 503, Code: "rate_limited"}, backoffice.ErrKeyServiceLimited},
		{"down/sealed", &client.Error{Status: 503, Code: "sealed"}, backoffice.ErrKeyServiceDown},
		{"down/audit-unavailable", &client.Error{Status: 503, Code: "audit_unavailable"}, backoffice.ErrKeyServiceDown},
		{"down/unreachable", errors.New("dial tcp 127.0.0.1:1: connection refused"), backoffice.ErrKeyServiceDown},
		{"down/clock-skew", &client.Error{Status: 401, Code: "clock_skew"}, backoffice.ErrKeyServiceDown},
		{"forbidden/allow-list", &client.Error{Status: 403, Code: "forbidden"}, backoffice.ErrKeyServiceForbidden},
		{"rejected/signature", &client.Error{Status: 401, Code: "unauthenticated"}, backoffice.ErrKeyServiceRejected},
		{"rejected/unknown-code", &client.Error{Status: 400, Code: "something_new"}, backoffice.ErrKeyServiceRejected},
		{"approval/passkey-required", &client.Error{Status: 403, Code: "passkey_required"}, backoffice.ErrApprovalRefused},
		{"approval/passkey-invalid", &client.Error{Status: 403, Code: "passkey_invalid"}, backoffice.ErrApprovalRefused},
		{"approval/passkey-unknown", &client.Error{Status: 403, Code: "passkey_unknown"}, backoffice.ErrApprovalRefused},
		{"approval/nonce-spent", &client.Error{Status: 403, Code: "reveal_nonce_invalid"}, backoffice.ErrApprovalRefused},
		{"approval/browser-key", &client.Error{Status: 400, Code: "browser_key_invalid"}, backoffice.ErrApprovalRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.ks.revealErr = tc.err
			_, err := f.svc.Reveal(context.Background(), actor(rita, 0), backoffice.RevealRequest{TokenID: tokAID, Reason: goodCause,
				BrowserKey: testBrowserKey(t), Nonce: testNonce, Assertion: json.RawMessage(testAssertion)})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var ke *backoffice.KeyServiceError
			if !errors.As(err, &ke) {
				t.Fatalf("not a KeyServiceError: %v", err)
			}
			if ce, ok := tc.err.(*client.Error); ok && ke.RetryAfter != ce.RetryAfter {
				t.Errorf("RetryAfter %s, want %s", ke.RetryAfter, ce.RetryAfter)
			}
		})
	}
}
