package backoffice_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/websession"
)

// TestResume: a session stands for its operator only while the operator
// may still sign in; a disabled, locked or deleted account ends it at once.
func TestResume(t *testing.T) {
	disabled, locked, gone := vera, vera, vera
	disabled.ID, disabled.Disabled = "op_disabled", true
	locked.ID, locked.LockedUntil = "op_locked", testNow.Add(time.Minute)
	gone.ID = "op_gone"
	tests := []struct {
		name     string
		id       string // session id sent; "" for none
		op       string // the live session's operator, "" for no session
		getErr   error
		want     error
		wantGone bool // the session was ended
	}{
		{name: "ok/live-session", id: "s1", op: rita.ID},
		{name: "login/no-cookie", id: "", want: backoffice.ErrLoginRequired},
		{name: "login/unknown-session", id: "s1", want: backoffice.ErrLoginRequired},
		{name: "login/expired", id: "s1", getErr: websession.ErrExpired, want: backoffice.ErrSessionExpired},
		{name: "login/operator-disabled", id: "s1", op: disabled.ID, want: backoffice.ErrLoginRequired, wantGone: true},
		{name: "login/operator-locked", id: "s1", op: locked.ID, want: backoffice.ErrLoginRequired, wantGone: true},
		{name: "login/operator-deleted", id: "s1", op: gone.ID, want: backoffice.ErrLoginRequired, wantGone: true},
		{name: "unavailable/store-down", id: "s1", getErr: errors.New("redis down"), want: backoffice.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.ops.ops = append(f.ops.ops, disabled, locked)
			if tt.op != "" {
				f.sess.live["s1"] = websession.Session{ID: "s1", OperatorID: tt.op}
			}
			f.sess.getErr = tt.getErr
			a, err := f.svc.Resume(context.Background(), tt.id, "192.0.2.1")
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Resume: %v, want %v", err, tt.want)
			}
			if tt.want == nil && (a.Op.ID != tt.op || a.Sess.ID != "s1" || a.Origin != "192.0.2.1") {
				t.Fatalf("actor %+v", a)
			}
			if _, live := f.sess.live["s1"]; tt.wantGone && live {
				t.Error("the session of an operator who may not sign in was not ended")
			}
		})
	}
}

// TestExpiredSessionIsALoginRequired: the pages send both to the login page.
func TestExpiredSessionIsALoginRequired(t *testing.T) {
	if !errors.Is(backoffice.ErrSessionExpired, backoffice.ErrLoginRequired) {
		t.Fatal("ErrSessionExpired does not match ErrLoginRequired")
	}
}

func TestRequireSecondFactor(t *testing.T) {
	pending := rita
	pending.TOTPEnabled = false
	for _, tt := range []struct {
		name string
		op   operators.Operator
		want error
	}{
		{"ok/totp-enabled", rita, nil},
		{"ok/passkey-enrolled", pia, nil},
		{"refused/enrolment-pending", pending, backoffice.ErrEnrolmentRequired},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := newFixture(t).svc.RequireSecondFactor(actor(tt.op, 0)); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("RequireSecondFactor: %v, want %v", err, tt.want)
			}
		})
	}
}
