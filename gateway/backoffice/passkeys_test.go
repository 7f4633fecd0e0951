package backoffice_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/passkey/passkeytest"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// attest is what the passkeys page posts: a software authenticator's
// registration over the enrolment challenge of nonce for op.
func attest(t *testing.T, op operators.Operator, nonce string) json.RawMessage {
	t.Helper()
	a, err := passkeytest.New(testRPID, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	att, err := a.Create(wire.EnrolChallenge(nonce, op.ID), wire.UserHandle(op.ID))
	if err != nil {
		t.Fatal(err)
	}
	return att
}

// TestEnrolPasskeyOrder: re-authentication, the gateway's own verification,
// the key service's pending record, agreement on the credential, the audit
// record, then the gateway's copy and a fresh session.
func TestEnrolPasskeyOrder(t *testing.T) {
	good := func(t *testing.T, op operators.Operator) backoffice.EnrolRequest {
		return backoffice.EnrolRequest{Nonce: testEnrolNonce, Attestation: attest(t, op, testEnrolNonce), Password: password, Code: goodCode}
	}
	tests := []struct {
		name      string
		req       func(t *testing.T) backoffice.EnrolRequest
		authErr   error
		ksErr     error
		ksFP      string
		auditFail string
		want      error
		wantCalls []string
	}{
		{"reauth-required/no-password", func(t *testing.T) backoffice.EnrolRequest {
			r := good(t, rita)
			r.Password = ""
			return r
		}, nil, nil, "", "", backoffice.ErrReauthRequired, nil},
		{"reauth-failed/wrong-code", func(t *testing.T) backoffice.EnrolRequest {
			r := good(t, rita)
			r.Code = "000000"
			return r
		}, nil, nil, "", "", backoffice.ErrReauthFailed, []string{"operators.reconfirm", "audit:login"}},
		{"locked/ends-the-session", func(t *testing.T) backoffice.EnrolRequest { return good(t, rita) },
			&operators.LockedError{Until: testNow.Add(time.Hour)}, nil, "", "", backoffice.ErrLocked,
			[]string{"operators.reconfirm", "audit:login", "sessions.delete"}},
		{"rejected/registration-for-another-nonce", func(t *testing.T) backoffice.EnrolRequest {
			r := good(t, rita)
			r.Attestation = attest(t, rita, "pkn_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCA")
			return r
		}, nil, nil, "", "", backoffice.ErrPasskeyRejected, []string{"operators.reconfirm", "audit:login"}},
		{"rejected/registration-for-another-operator", func(t *testing.T) backoffice.EnrolRequest {
			r := good(t, rita)
			r.Attestation = attest(t, anna, testEnrolNonce)
			return r
		}, nil, nil, "", "", backoffice.ErrPasskeyRejected, []string{"operators.reconfirm", "audit:login"}},
		{"keyservice-refused/nonce-spent", func(t *testing.T) backoffice.EnrolRequest { return good(t, rita) },
			nil, &client.Error{Status: 403, Code: "reveal_nonce_invalid"}, "", "", backoffice.ErrApprovalRefused,
			[]string{"operators.reconfirm", "audit:login", "keyservice.register"}},
		{"rejected/keyservice-registered-another-key", func(t *testing.T) backoffice.EnrolRequest { return good(t, rita) },
			nil, nil, "AAAA-BBBB-CCCC", "", backoffice.ErrPasskeyRejected,
			[]string{"operators.reconfirm", "audit:login", "keyservice.register"}},
		{"audit-failed/no-record-no-passkey", func(t *testing.T) backoffice.EnrolRequest { return good(t, rita) },
			nil, nil, "", audit.EventPasskeyEnrolled, backoffice.ErrAuditFailed,
			[]string{"operators.reconfirm", "audit:login", "keyservice.register", "audit:passkey.enrolled"}},
		{"enrolled", func(t *testing.T) backoffice.EnrolRequest { return good(t, rita) },
			nil, nil, "", "", nil,
			[]string{"operators.reconfirm", "audit:login", "keyservice.register", "audit:passkey.enrolled", "operators.add-passkey", "sessions.reauth"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.ops.authErr = tc.authErr
			f.ks.registerErr = tc.ksErr
			f.ks.fingerprint = tc.ksFP
			f.audit.failOn = tc.auditFail
			req := tc.req(t)
			f.calls = &calls{}
			f.ops.c, f.ks.c, f.audit.c, f.sess.c = f.calls, f.calls, f.calls, f.calls
			res, err := f.svc.EnrolPasskey(context.Background(), actor(rita, time.Hour), req)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got := f.calls.list(); !slices.Equal(got, tc.wantCalls) {
				t.Fatalf("calls %q, want %q", got, tc.wantCalls)
			}
			if tc.want != nil {
				if len(f.ops.added) != 0 {
					t.Fatal("a refused enrolment kept a passkey")
				}
				return
			}
			if len(f.ops.added) != 1 || res.Credential != f.ops.added[0].IDString() || res.Fingerprint != passkey.Fingerprint(f.ops.added[0]) ||
				res.Status != wire.PasskeyPending {
				t.Fatalf("enrolled %+v, kept %d", res, len(f.ops.added))
			}
			var ev audit.Event
			for _, e := range f.audit.events {
				if e.Event == audit.EventPasskeyEnrolled {
					ev = e
				}
			}
			if ev.Actor != rita.ID || ev.Credential != res.Credential || ev.Outcome != audit.OutcomeSuccess || ev.Origin != "192.0.2.1" {
				t.Fatalf("passkey.enrolled record %+v", ev)
			}
		})
	}
}

// TestPasskeyChallenge: the key service's nonce and the challenge that
// commits to it and the operator, and what the registering request must
// prove besides the password.
func TestPasskeyChallenge(t *testing.T) {
	f := newFixture(t)
	newbie := op("op_new", "newbie", operators.RoleViewer, "")
	newbie.TOTPEnabled = false
	for _, tc := range []struct {
		name       string
		op         operators.Operator
		wantFactor string
		wantCalls  []string
	}{
		{"totp-operator-gives-a-code", rita, backoffice.FactorTOTP, []string{"keyservice.passkey-challenge"}},
		{"passkey-operator-gives-an-assertion", pia, backoffice.FactorPasskey, []string{"keyservice.passkey-challenge", "operators.login-challenge"}},
		{"first-factor-password-alone", newbie, backoffice.FactorNone, []string{"keyservice.passkey-challenge"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.calls.log = nil
			ch, err := f.svc.PasskeyChallenge(context.Background(), actor(tc.op, 0))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.calls.list(); !slices.Equal(got, tc.wantCalls) {
				t.Fatalf("calls %q, want %q", got, tc.wantCalls)
			}
			if ch.Factor != tc.wantFactor || ch.Nonce != testEnrolNonce || string(ch.Challenge) != string(wire.EnrolChallenge(testEnrolNonce, tc.op.ID)) ||
				ch.RPID != testRPID || base64.RawURLEncoding.EncodeToString(ch.UserHandle) != base64.RawURLEncoding.EncodeToString(wire.UserHandle(tc.op.ID)) {
				t.Fatalf("challenge %+v", ch)
			}
			if (tc.wantFactor == backoffice.FactorPasskey) != (len(ch.Assert) > 0) {
				t.Errorf("assert challenge %x for factor %s", ch.Assert, ch.Factor)
			}
		})
	}
	t.Run("off/relying-party-differs-from-the-key-services", func(t *testing.T) {
		f := newFixture(t)
		f.ks.rpID = "other.example"
		if _, err := f.svc.PasskeyChallenge(context.Background(), actor(rita, 0)); !errors.Is(err, backoffice.ErrPasskeysOff) {
			t.Fatalf("err = %v", err)
		}
	})
}
