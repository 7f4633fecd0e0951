package operators

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/passkey/passkeytest"
)

const (
	testRPID   = "backoffice.example"
	testOrigin = "https://backoffice.example"
)

func testVerifier(t *testing.T) *passkey.Verifier {
	t.Helper()
	v, err := passkey.New(passkey.RP{ID: testRPID, Origins: []string{testOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newPasskeyService(t *testing.T, s Store, mode MFAMode) fixture {
	t.Helper()
	f := fixture{store: s, clock: &clock{t: t0}, rev: &revokes{}}
	svc, err := NewService(s, Config{Params: fastParams, Now: f.clock.Now, Revoker: f.rev, MFA: mode, Passkeys: testVerifier(t)})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

// enrolPasskey registers a software passkey for op the way the back office
// does (verified registration, then AddPasskey) and returns it.
func (f fixture) enrolPasskey(t *testing.T, op Operator) *passkeytest.Authenticator {
	t.Helper()
	a, err := passkeytest.New(testRPID, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	challenge := make([]byte, 32)
	challenge[0] = byte(len(op.ID))
	handle := []byte("handle-" + op.ID)
	att, err := a.Create(challenge, handle)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := f.svc.Passkeys().Register(challenge, handle, att)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if _, err := f.svc.AddPasskey(context.Background(), op.ID, cred); err != nil {
		t.Fatalf("add passkey: %v", err)
	}
	return a
}

// assert answers a fresh login challenge with a.
func (f fixture) assert(t *testing.T, a *passkeytest.Authenticator) []byte {
	t.Helper()
	ch, err := f.svc.LoginChallenge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	as, err := a.Get(ch)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func TestPasskeyLogin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		f := newPasskeyService(t, s, MFAAny)
		n := 0
		newOp := func(t *testing.T) Operator {
			n++
			return f.mustCreate(t, fmt.Sprintf("pk%d", n), RoleRevealer, "")
		}
		now := func() time.Time { return f.clock.Now() }

		t.Run("200/assertion-over-issued-challenge", func(t *testing.T) {
			op := newOp(t)
			a := f.enrolPasskey(t, op)
			got, err := f.svc.Login(ctx, op.Username, goodPW, Factor{Assertion: f.assert(t, a)}, now())
			if err != nil || got.ID != op.ID {
				t.Fatalf("login: %v", err)
			}
			if got.Passkeys[0].Credential.SignCount != a.Counter || got.Passkeys[0].LastUsed.IsZero() {
				t.Errorf("sign count %d (authenticator %d), last used %v", got.Passkeys[0].Credential.SignCount, a.Counter, got.Passkeys[0].LastUsed)
			}
		})
		t.Run("401/replayed-assertion-challenge-spent", func(t *testing.T) {
			op := newOp(t)
			a := f.enrolPasskey(t, op)
			as := f.assert(t, a)
			if _, err := f.svc.Login(ctx, op.Username, goodPW, Factor{Assertion: as}, now()); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Login(ctx, op.Username, goodPW, Factor{Assertion: as}, now()); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("replay: %v", err)
			}
			if l, _ := s.Lockout(ctx, op.Username); l.Failures != 1 {
				t.Errorf("replay counted %d failures, want 1", l.Failures)
			}
		})
		t.Run("401/challenge-not-issued", func(t *testing.T) {
			op := newOp(t)
			a := f.enrolPasskey(t, op)
			as, err := a.Get(make([]byte, 32))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Login(ctx, op.Username, goodPW, Factor{Assertion: as}, now()); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("unissued challenge: %v", err)
			}
		})
		t.Run("401/challenge-expired", func(t *testing.T) {
			op := newOp(t)
			a := f.enrolPasskey(t, op)
			as := f.assert(t, a)
			if _, err := f.svc.Login(ctx, op.Username, goodPW, Factor{Assertion: as}, now().Add(ChallengeTTL+time.Second)); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("expired challenge: %v", err)
			}
		})
		t.Run("401/another-operators-passkey", func(t *testing.T) {
			op, other := newOp(t), newOp(t)
			f.enrolPasskey(t, op)
			b := f.enrolPasskey(t, other)
			if _, err := f.svc.Login(ctx, op.Username, goodPW, Factor{Assertion: f.assert(t, b)}, now()); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("other's passkey: %v", err)
			}
		})
		t.Run("401/no-user-verification", func(t *testing.T) {
			op := newOp(t)
			a := f.enrolPasskey(t, op)
			a.UserVerified = false
			if _, err := f.svc.Login(ctx, op.Username, goodPW, Factor{Assertion: f.assert(t, a)}, now()); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("no UV: %v", err)
			}
		})
		t.Run("401/counter-went-back", func(t *testing.T) {
			op := newOp(t)
			a := f.enrolPasskey(t, op)
			if _, err := f.svc.Login(ctx, op.Username, goodPW, Factor{Assertion: f.assert(t, a)}, now()); err != nil {
				t.Fatal(err)
			}
			a.Counter -= 2 // a clone answering with an older counter
			if _, err := f.svc.Login(ctx, op.Username, goodPW, Factor{Assertion: f.assert(t, a)}, now()); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("counter regression: %v", err)
			}
		})
		t.Run("401/wrong-password-with-good-passkey", func(t *testing.T) {
			op := newOp(t)
			a := f.enrolPasskey(t, op)
			if _, err := f.svc.Login(ctx, op.Username, "wrong password here", Factor{Assertion: f.assert(t, a)}, now()); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("wrong password: %v", err)
			}
		})
		t.Run("401/missing-factor-is-a-counted-failure", func(t *testing.T) {
			op := newOp(t)
			f.enrolPasskey(t, op)
			if _, err := f.svc.Login(ctx, op.Username, goodPW, Factor{}, now()); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("no factor: %v", err)
			}
			if l, _ := s.Lockout(ctx, op.Username); l.Failures != 1 {
				t.Errorf("failures %d, want 1", l.Failures)
			}
		})
	})
}

// TestMFAModes: which factor logs in, and when enrolment is done, per mode.
func TestMFAModes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		mode                   MFAMode
		totpOnlyLogsIn         bool // an operator with TOTP and no passkey, with a code
		passkeyLogsIn          bool // an operator with both, with a passkey
		codeLogsInWithPasskey  bool // an operator with both, with a code
		doneTOTPOnly, donePKOn bool // SecondFactorDone for TOTP only, passkey only
	}{
		{MFATOTP, true, false, true, true, false},
		{MFAAny, true, true, true, true, true},
		{MFAPasskey, true, true, false, false, true},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			f := newPasskeyService(t, newMemStoreForTest(t), tc.mode)
			totpOnly := f.mustCreate(t, "totponly", RoleRevealer, "")
			secret1 := f.enrol(t, totpOnly)
			pkOnly := f.mustCreate(t, "pkonly", RoleRevealer, "")
			f.enrolPasskey(t, pkOnly)
			both := f.mustCreate(t, "both", RoleRevealer, "")
			secret2 := f.enrol(t, both)
			a := f.enrolPasskey(t, both)
			f.clock.Set(t0.Add(5 * time.Minute))
			now := f.clock.Now()

			_, err := f.svc.Login(ctx, "totponly", goodPW, Factor{Code: code(t, secret1, now)}, now)
			if (err == nil) != tc.totpOnlyLogsIn {
				t.Errorf("TOTP-only login with code: %v", err)
			}
			_, err = f.svc.Login(ctx, "both", goodPW, Factor{Assertion: f.assert(t, a)}, now)
			if (err == nil) != tc.passkeyLogsIn {
				t.Errorf("passkey login: %v", err)
			}
			f.clock.Set(now.Add(time.Minute))
			now = f.clock.Now()
			_, err = f.svc.Login(ctx, "both", goodPW, Factor{Code: code(t, secret2, now)}, now)
			if (err == nil) != tc.codeLogsInWithPasskey {
				t.Errorf("code login of an operator with a passkey: %v", err)
			}
			for _, c := range []struct {
				op   Operator
				want bool
			}{{totpOnly, tc.doneTOTPOnly}, {pkOnly, tc.donePKOn}} {
				op, _ := f.svc.Get(ctx, c.op.ID)
				if got := f.svc.SecondFactorDone(op); got != c.want {
					t.Errorf("SecondFactorDone(%s) = %v, want %v", op.Username, got, c.want)
				}
			}
			// Re-confirmation (before enrolling another factor) takes any
			// factor the operator has, whatever the mode.
			f.clock.Set(now.Add(time.Minute))
			if _, err := f.svc.Reconfirm(ctx, "pkonly", goodPW, Factor{Assertion: f.assert(t, a)}, f.clock.Now()); !errors.Is(err, ErrBadCredentials) {
				t.Errorf("reconfirm with another operator's passkey: %v", err)
			}
		})
	}
}

func newMemStoreForTest(t *testing.T) Store { return backends()[0].open(t) }

func TestConfirmPasskey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		f := newPasskeyService(t, s, MFAAny)
		op := f.mustCreate(t, "confirm", RoleRevealer, "")
		a := f.enrolPasskey(t, op)
		challenge := []byte("a reveal's challenge, 32 bytes..")
		as, err := a.Get(challenge)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("401/other-challenge", func(t *testing.T) {
			if err := f.svc.ConfirmPasskey(ctx, op.ID, []byte("another reveal's challenge, 32 b"), as, f.clock.Now()); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("other challenge: %v", err)
			}
		})
		t.Run("200/its-challenge", func(t *testing.T) {
			if err := f.svc.ConfirmPasskey(ctx, op.ID, challenge, as, f.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if l, _ := s.Lockout(ctx, op.Username); l.Failures != 0 {
				t.Errorf("success left %d failures", l.Failures)
			}
		})
		t.Run("401/replayed", func(t *testing.T) {
			if err := f.svc.ConfirmPasskey(ctx, op.ID, challenge, as, f.clock.Now()); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("replay: %v", err)
			}
		})
		t.Run("403/locked", func(t *testing.T) {
			for range 10 {
				_, _ = f.svc.Login(ctx, op.Username, "wrong password here", Factor{}, f.clock.Now())
			}
			as, _ := a.Get(challenge)
			var le *LockedError
			if err := f.svc.ConfirmPasskey(ctx, op.ID, challenge, as, f.clock.Now()); !errors.As(err, &le) {
				t.Fatalf("locked: %v", err)
			}
		})
	})
}

func TestAddPasskey(t *testing.T) {
	f := newPasskeyService(t, newMemStoreForTest(t), MFAAny)
	ctx := context.Background()
	op := f.mustCreate(t, "adder", RoleViewer, "")
	a := f.enrolPasskey(t, op)
	got, _ := f.svc.Get(ctx, op.ID)
	if _, err := f.svc.AddPasskey(ctx, op.ID, got.Passkeys[0].Credential); !errors.Is(err, ErrExists) {
		t.Errorf("same credential twice: %v", err)
	}
	for i := 1; i < MaxPasskeys; i++ {
		f.enrolPasskey(t, op)
	}
	extra := got.Passkeys[0].Credential
	extra.ID = []byte("one too many")
	if _, err := f.svc.AddPasskey(ctx, op.ID, extra); !errors.Is(err, ErrInvalid) {
		t.Errorf("past MaxPasskeys: %v", err)
	}
	_ = a
	if err := f.svc.ResetPasskeys(ctx, op.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.svc.Get(ctx, op.ID); len(got.Passkeys) != 0 || f.svc.SecondFactorDone(got) {
		t.Errorf("after reset: %d passkeys", len(got.Passkeys))
	}
}

func TestStoreChallenges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		if err := s.PutChallenge(ctx, "login:x", t0, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.PutChallenge(ctx, "login:x", t0, time.Minute); !errors.Is(err, ErrExists) {
			t.Errorf("put twice: %v", err)
		}
		if ok, err := s.TakeChallenge(ctx, "login:x", t0.Add(59*time.Second)); !ok || err != nil {
			t.Errorf("take: %v %v", ok, err)
		}
		if ok, _ := s.TakeChallenge(ctx, "login:x", t0.Add(59*time.Second)); ok {
			t.Error("taken twice")
		}
		if ok, _ := s.TakeChallenge(ctx, "login:never", t0); ok {
			t.Error("unknown challenge taken")
		}
		_ = s.PutChallenge(ctx, "login:y", t0, time.Minute)
		if ok, _ := s.TakeChallenge(ctx, "login:y", t0.Add(time.Minute)); ok {
			t.Error("expired challenge taken")
		}
	})
}
