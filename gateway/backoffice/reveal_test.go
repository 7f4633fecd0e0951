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

// TestRevealOrderOfChecks: role, then scope, then reason, then fresh
// authentication, then lockout, then the gateway's audit record, then the
// key service. Each case fails one check (and passes all before it) and
// shows exactly which collaborators were called, in order: a refused check
// never reaches the key service, and the audit record precedes the key
// service's reveal.
func TestRevealOrderOfChecks(t *testing.T) {
	fresh, stale := time.Minute, backoffice.ReauthWindow+time.Second
	locked := rita
	locked.LockedUntil = testNow.Add(time.Hour)
	tests := []struct {
		name      string
		actor     backoffice.Actor
		req       backoffice.RevealRequest
		authErr   error  // operators.Authenticate's answer
		auditFail string // event whose audit append fails
		want      error
		wantCalls []string
	}{
		{"forbidden/admin-separation-of-duties", actor(adam, fresh), backoffice.RevealRequest{TokenID: tokAID, Reason: goodCause},
			nil, "", backoffice.ErrForbidden, []string{"audit:reveal.denied"}},
		{"forbidden/viewer", actor(vera, stale), backoffice.RevealRequest{TokenID: "not-a-token", Reason: "x"},
			nil, "", backoffice.ErrForbidden, []string{"audit:reveal.denied"}},
		{"forbidden/even-if-the-denial-cannot-be-audited", actor(adam, fresh), backoffice.RevealRequest{TokenID: tokAID, Reason: goodCause},
			nil, audit.EventRevealDenied, backoffice.ErrForbidden, []string{"audit:reveal.denied"}},
		{"not-found/other-merchants-token", actor(anna, stale), backoffice.RevealRequest{TokenID: tokBID, Reason: "x"},
			nil, "", backoffice.ErrNotFound, []string{"tokens.get"}},
		{"not-found/malformed-id", actor(rita, stale), backoffice.RevealRequest{TokenID: "tok_../x", Reason: "x"},
			nil, "", backoffice.ErrNotFound, nil},
		{"invalid/reason-too-short-before-reauth", actor(anna, stale), backoffice.RevealRequest{TokenID: tokAID, Reason: "  x "},
			nil, "", backoffice.ErrInvalid, []string{"tokens.get"}},
		{"invalid/reason-holds-a-card-number", actor(rita, fresh), backoffice.RevealRequest{TokenID: tokBID, Reason: "card " + testPAN},
			nil, "", wire.ErrPANInText, []string{"tokens.lookup"}},
		{"reauth-required/stale-session-no-password", actor(rita, stale), backoffice.RevealRequest{TokenID: tokAID, Reason: goodCause},
			nil, "", backoffice.ErrReauthRequired, []string{"tokens.lookup"}},
		{"reauth-failed/wrong-password", actor(rita, stale), backoffice.RevealRequest{TokenID: tokAID, Reason: goodCause, Password: "wrong", Code: goodCode},
			nil, "", backoffice.ErrReauthFailed, []string{"tokens.lookup", "operators.authenticate", "audit:login"}},
		{"locked/reauth-locks-and-ends-session", actor(rita, stale), backoffice.RevealRequest{TokenID: tokAID, Reason: goodCause, Password: "wrong", Code: goodCode},
			&operators.LockedError{Until: testNow.Add(time.Hour)}, "", backoffice.ErrLocked,
			[]string{"tokens.lookup", "operators.authenticate", "audit:login", "sessions.delete"}},
		{"locked/account-locked-under-fresh-session", actor(locked, fresh), backoffice.RevealRequest{TokenID: tokAID, Reason: goodCause},
			nil, "", backoffice.ErrLocked, []string{"tokens.lookup"}},
		{"audit-failed/no-audit-no-reveal", actor(rita, fresh), backoffice.RevealRequest{TokenID: tokAID, Reason: goodCause},
			nil, audit.EventReveal, backoffice.ErrAuditFailed, []string{"tokens.lookup", "audit:reveal"}},
		{"revealed/fresh-session", actor(anna, fresh), backoffice.RevealRequest{TokenID: tokAID, Reason: goodCause},
			nil, "", nil, []string{"tokens.get", "audit:reveal", "keyservice.reveal"}},
		{"revealed/after-reauth", actor(rita, stale), backoffice.RevealRequest{TokenID: tokBID, Reason: goodCause, Password: password, Code: goodCode},
			nil, "", nil, []string{"tokens.lookup", "operators.authenticate", "sessions.reauth", "audit:login", "audit:reveal", "keyservice.reveal"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.ops.authErr = tc.authErr
			f.audit.failOn = tc.auditFail
			res, err := f.svc.Reveal(context.Background(), tc.actor, tc.req)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got := f.calls.list(); !slices.Equal(got, tc.wantCalls) {
				t.Fatalf("calls %q, want %q", got, tc.wantCalls)
			}
			if tc.want != nil && res.Card.JWE != "" {
				t.Fatal("a refused reveal returned a card")
			}
			if tc.want == nil && res.Card.JWE == "" {
				t.Fatalf("card %+v", res.Card)
			}
		})
	}
}

// TestRevealAuditHoldsNoCardNumber: the gateway's own record of a reveal
// (and every other event the reveal writes) names the token, never the card.
func TestRevealAuditHoldsNoCardNumber(t *testing.T) {
	f := newFixture(t)
	res, err := f.svc.Reveal(context.Background(), actor(rita, time.Hour),
		backoffice.RevealRequest{TokenID: tokAID, Reason: "chargeback   ticket\n#1234", Password: password, Code: goodCode})
	if err != nil || res.Card.JWE == "" {
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
		reveal.Outcome != audit.OutcomeSuccess || reveal.Origin != "192.0.2.1" {
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
		{"forbidden/allow-list", &client.Error{Status: 403, Code: "forbidden"}, backoffice.ErrKeyServiceForbidden},
		{"rejected/signature", &client.Error{Status: 401, Code: "unauthenticated"}, backoffice.ErrKeyServiceRejected},
		{"rejected/unknown-code", &client.Error{Status: 400, Code: "something_new"}, backoffice.ErrKeyServiceRejected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.ks.revealErr = tc.err
			_, err := f.svc.Reveal(context.Background(), actor(rita, 0), backoffice.RevealRequest{TokenID: tokAID, Reason: goodCause})
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
