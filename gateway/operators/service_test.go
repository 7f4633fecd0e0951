package operators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// clock is an injectable time source for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// revokes records DeleteForOperator calls.
type revokes struct {
	mu  sync.Mutex
	ids []string
}

func (r *revokes) DeleteForOperator(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
	return nil
}

func (r *revokes) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, x := range r.ids {
		if x == id {
			n++
		}
	}
	return n
}

type fixture struct {
	svc   *Service
	store Store
	clock *clock
	rev   *revokes
}

func newTestService(t *testing.T, s Store) fixture {
	t.Helper()
	f := fixture{store: s, clock: &clock{t: t0}, rev: &revokes{}}
	svc, err := NewService(s, Config{Params: fastParams, Now: f.clock.Now, Revoker: f.rev})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

const goodPW = "correct horse battery staple 42"

func (f fixture) mustCreate(t *testing.T, username string, role Role, merchant string) Operator {
	t.Helper()
	op, err := f.svc.Create(context.Background(), username, role, merchant, goodPW)
	if err != nil {
		t.Fatalf("create %s: %v", username, err)
	}
	return op
}

// code returns the TOTP code of secret at time at.
func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrol turns on TOTP for op, confirming at the fixture's clock; it returns the secret.
func (f fixture) enrol(t *testing.T, op Operator) string {
	t.Helper()
	ctx := context.Background()
	secret, _, _, err := f.svc.EnrollTOTP(ctx, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.ConfirmTOTP(ctx, op.ID, code(t, secret, f.clock.Now())); err != nil {
		t.Fatal(err)
	}
	return secret
}

func TestCreate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		f := newTestService(t, s)
		ctx := context.Background()
		op := f.mustCreate(t, "  Alice@Example.com ", RoleRevealer, "m_1")
		if !strings.HasPrefix(op.ID, "op_") || len(op.ID) != 3+26 || op.Username != "alice@example.com" ||
			op.Role != RoleRevealer || op.MerchantID != "m_1" || !op.CreatedAt.Equal(t0) || op.TOTPEnabled {
			t.Fatalf("created %+v", op)
		}
		if strings.Contains(op.PasswordHash, goodPW) || !strings.HasPrefix(op.PasswordHash, "$argon2id$") {
			t.Fatal("password not hashed")
		}
		for _, tc := range []struct {
			name, user, merchant, pw string
			role                     Role
			want                     error
		}{
			{"409/same-username-other-case", "ALICE@example.com", "", goodPW, RoleViewer, ErrExists},
			{"400/weak-password", "bob", "", "short", RoleViewer, ErrWeakPassword},
			{"400/password-is-username", "bob.the.operator", "", "Bob.The.Operator", RoleViewer, ErrWeakPassword},
			{"400/unknown-role", "bob", "", goodPW, "superuser", ErrInvalid},
			{"400/bad-merchant-id", "bob", "merchant-1", goodPW, RoleViewer, ErrInvalid},
			{"400/bad-username", "bob smith", "", goodPW, RoleViewer, ErrInvalid},
			{"400/empty-username", " ", "", goodPW, RoleViewer, ErrInvalid},
			{"201/platform-admin", "root", "", goodPW, RoleAdmin, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := f.svc.Create(ctx, tc.user, tc.role, tc.merchant, tc.pw)
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			})
		}
	})
}

func TestAuthenticate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		f := newTestService(t, s)
		ctx := context.Background()
		alice := f.mustCreate(t, "alice", RoleViewer, "m_1")
		dave := f.mustCreate(t, "dave", RoleViewer, "")
		if err := f.svc.Disable(ctx, dave.ID); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, user, pw string
			want           error
		}{
			{"200/right-password", "alice", goodPW, nil},
			{"200/username-any-case", "ALICE", goodPW, nil},
			{"401/wrong-password", "alice", goodPW + "x", ErrBadCredentials},
			{"401/empty-password", "alice", "", ErrBadCredentials},
			{"401/unknown-user", "mallory", goodPW, ErrBadCredentials},
			{"401/malformed-username", "a b", goodPW, ErrBadCredentials},
			{"401/huge-password", "alice", strings.Repeat("x", 10000), ErrBadCredentials},
			{"401/disabled-wrong-password", "dave", "nope nope nope", ErrBadCredentials},
			{"403/disabled-right-password", "dave", goodPW, ErrDisabled},
		} {
			t.Run(tc.name, func(t *testing.T) {
				op, err := f.svc.Authenticate(ctx, tc.user, tc.pw, "", t0)
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if tc.want == nil && op.ID != alice.ID {
					t.Fatalf("got operator %s", op.ID)
				}
				if err != nil && op.ID != "" {
					t.Fatal("an operator came back with an error")
				}
			})
		}
		t.Run("401/unknown-user-same-error-as-wrong-password", func(t *testing.T) {
			_, e1 := f.svc.Authenticate(ctx, "alice", "wrong password!", "", t0)
			_, e2 := f.svc.Authenticate(ctx, "nobody", "wrong password!", "", t0)
			if e1 != e2 || e1 != ErrBadCredentials {
				t.Fatalf("wrong password: %v; unknown user: %v", e1, e2)
			}
		})
	})
}

func TestLockout(t *testing.T) {
	wrong := "definitely wrong"
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		t.Run("locked/after-exactly-10-failures-until-30m", func(t *testing.T) {
			f := newTestService(t, s)
			op := f.mustCreate(t, "lock1", RoleViewer, "")
			for i := 1; i <= 9; i++ {
				if _, err := f.svc.Authenticate(ctx, "lock1", wrong, "", t0); err != ErrBadCredentials {
					t.Fatalf("failure %d: %v", i, err)
				}
			}
			if f.rev.count(op.ID) != 0 {
				t.Fatal("sessions ended before the lockout")
			}
			_, err := f.svc.Authenticate(ctx, "lock1", wrong, "", t0)
			var le *LockedError
			if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || !le.Until.Equal(t0.Add(30*time.Minute)) {
				t.Fatalf("10th failure: %v", err)
			}
			if f.rev.count(op.ID) != 1 {
				t.Fatal("lockout did not end the operator's sessions")
			}
			if got, _ := f.svc.Get(ctx, op.ID); got.FailedLogins != 10 || !got.Locked(t0) {
				t.Fatalf("stored lockout: %d %v", got.FailedLogins, got.LockedUntil)
			}
			for _, tc := range []struct {
				name string
				at   time.Time
				want error
			}{
				{"locked/right-password-at-0", t0, ErrLocked},
				{"locked/right-password-at-29m59s", t0.Add(30*time.Minute - time.Second), ErrLocked},
				{"200/right-password-at-30m", t0.Add(30 * time.Minute), nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if _, err := f.svc.Authenticate(ctx, "lock1", goodPW, "", tc.at); !errors.Is(err, tc.want) {
						t.Fatalf("got %v, want %v", err, tc.want)
					}
				})
			}
			if got, _ := f.svc.Get(ctx, op.ID); got.FailedLogins != 0 || !got.LockedUntil.IsZero() {
				t.Fatalf("success did not reset the counter: %d %v", got.FailedLogins, got.LockedUntil)
			}
		})
		t.Run("200/success-after-9-resets-the-count", func(t *testing.T) {
			f := newTestService(t, s)
			f.mustCreate(t, "lock2", RoleViewer, "")
			for range 9 {
				_, _ = f.svc.Authenticate(ctx, "lock2", wrong, "", t0)
			}
			if _, err := f.svc.Authenticate(ctx, "lock2", goodPW, "", t0); err != nil {
				t.Fatalf("9 failures locked: %v", err)
			}
			for i := 1; i <= 9; i++ {
				if _, err := f.svc.Authenticate(ctx, "lock2", wrong, "", t0); err != ErrBadCredentials {
					t.Fatalf("failure %d after reset: %v", i, err)
				}
			}
		})
		t.Run("locked/unknown-username-locks-alike", func(t *testing.T) {
			f := newTestService(t, s)
			for i := 1; i <= 10; i++ {
				_, err := f.svc.Authenticate(ctx, "ghost", wrong, "", t0)
				if want := i == 10; errors.Is(err, ErrLocked) != want {
					t.Fatalf("attempt %d: %v", i, err)
				}
			}
		})
		t.Run("locked/unknown-name-stored-only-as-keyed-hash", func(t *testing.T) {
			f := newTestService(t, s)
			typed := "hunter2-my-password"
			if _, err := f.svc.Authenticate(ctx, typed, wrong, "", t0); err != ErrBadCredentials {
				t.Fatal(err)
			}
			if l, err := s.Lockout(ctx, typed); err != nil || l.Failures != 0 {
				t.Fatalf("lockout kept under the typed name: %+v %v", l, err)
			}
			tag := f.svc.NameTag(typed)
			if l, err := s.Lockout(ctx, tag); err != nil || l.Failures != 1 {
				t.Fatalf("lockout under %s: %+v %v", tag, l, err)
			}
			if strings.Contains(tag, typed) {
				t.Fatal("tag holds the name")
			}
			if actor, err := f.svc.LoginActor(ctx, typed); err != nil || actor != tag {
				t.Fatalf("LoginActor = %q, %v; want %q", actor, err, tag)
			}
		})
		t.Run("locked/right-password-without-code-counts", func(t *testing.T) {
			f := newTestService(t, s)
			op := f.mustCreate(t, "lock5", RoleViewer, "")
			f.enrol(t, op)
			if actor, err := f.svc.LoginActor(ctx, "LOCK5"); err != nil || actor != op.ID {
				t.Fatalf("LoginActor of a known name = %q, %v", actor, err)
			}
			for i := 1; i <= 10; i++ {
				// A right password with no code answers like a wrong one and
				// counts, so it cannot be used to test passwords.
				_, errRight := f.svc.Authenticate(ctx, "lock5", goodPW, "", t0.Add(time.Minute))
				if want := i == 10; errors.Is(errRight, ErrLocked) != want || (!want && errRight != ErrBadCredentials) {
					t.Fatalf("attempt %d: %v", i, errRight)
				}
			}
		})
		t.Run("200/unlock-by-admin", func(t *testing.T) {
			f := newTestService(t, s)
			op := f.mustCreate(t, "lock3", RoleViewer, "")
			for range 10 {
				_, _ = f.svc.Authenticate(ctx, "lock3", wrong, "", t0)
			}
			if err := f.svc.Unlock(ctx, op.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Authenticate(ctx, "lock3", goodPW, "", t0); err != nil {
				t.Fatalf("after unlock: %v", err)
			}
		})
		t.Run("locked/wrong-totp-codes-count", func(t *testing.T) {
			f := newTestService(t, s)
			op := f.mustCreate(t, "lock4", RoleViewer, "")
			f.enrol(t, op)
			var err error
			for range 10 {
				_, err = f.svc.Authenticate(ctx, "lock4", goodPW, "12345x", t0.Add(time.Hour))
			}
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("10 wrong codes: %v", err)
			}
		})
	})
}

func TestTOTPEnrolment(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		f := newTestService(t, s)
		ctx := context.Background()
		op := f.mustCreate(t, "tina", RoleRevealer, "")
		secret, u, pngBytes, err := f.svc.EnrollTOTP(ctx, op.ID)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("200/png-decodes", func(t *testing.T) {
			img, err := png.Decode(bytes.NewReader(pngBytes))
			if err != nil {
				t.Fatalf("QR code is not a PNG: %v", err)
			}
			if b := img.Bounds(); b.Dx() != qrSize || b.Dy() != qrSize {
				t.Fatalf("QR size %v", b)
			}
		})
		t.Run("200/otpauth-url", func(t *testing.T) {
			pu, err := url.Parse(u)
			if err != nil || pu.Scheme != "otpauth" || pu.Host != "totp" {
				t.Fatalf("url %q: %v", u, err)
			}
			q := pu.Query()
			if q.Get("secret") != secret || q.Get("issuer") != "Blindgate" || !strings.Contains(pu.Path, "tina") {
				t.Fatalf("url %q", u)
			}
			if len(secret) != 32 { // 20 bytes base32
				t.Fatalf("secret length %d", len(secret))
			}
		})
		t.Run("200/not-enabled-before-confirm", func(t *testing.T) {
			if _, err := f.svc.Authenticate(ctx, "tina", goodPW, "", t0); err != nil {
				t.Fatalf("pending enrolment changed login: %v", err)
			}
		})
		t.Run("401/confirm-wrong-code", func(t *testing.T) {
			if err := f.svc.ConfirmTOTP(ctx, op.ID, code(t, secret, t0.Add(-10*time.Minute))); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("got %v", err)
			}
		})
		t.Run("200/confirm-right-code", func(t *testing.T) {
			if err := f.svc.ConfirmTOTP(ctx, op.ID, code(t, secret, t0)); err != nil {
				t.Fatal(err)
			}
			got, _ := f.svc.Get(ctx, op.ID)
			if !got.TOTPEnabled || got.TOTPSecret != secret || got.TOTPPending != "" {
				t.Fatalf("after confirm: enabled=%v", got.TOTPEnabled)
			}
		})
		t.Run("400/confirm-without-enrolment", func(t *testing.T) {
			if err := f.svc.ConfirmTOTP(ctx, op.ID, code(t, secret, t0)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v", err)
			}
		})
		t.Run("200/re-enrol-keeps-old-secret-until-confirmed", func(t *testing.T) {
			newSecret, _, _, err := f.svc.EnrollTOTP(ctx, op.ID)
			if err != nil {
				t.Fatal(err)
			}
			at := t0.Add(time.Hour)
			if _, err := f.svc.Authenticate(ctx, "tina", goodPW, code(t, secret, at), at); err != nil {
				t.Fatalf("old secret stopped working: %v", err)
			}
			f.clock.Set(at.Add(time.Minute))
			if err := f.svc.ConfirmTOTP(ctx, op.ID, code(t, newSecret, at.Add(time.Minute))); err != nil {
				t.Fatal(err)
			}
			at = at.Add(2 * time.Minute)
			if _, err := f.svc.Authenticate(ctx, "tina", goodPW, code(t, secret, at), at); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("old secret still works: %v", err)
			}
			if _, err := f.svc.Authenticate(ctx, "tina", goodPW, code(t, newSecret, at), at); err != nil {
				t.Fatalf("new secret: %v", err)
			}
		})
		t.Run("200/reset-turns-mfa-off", func(t *testing.T) {
			if err := f.svc.ResetTOTP(ctx, op.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Authenticate(ctx, "tina", goodPW, "", t0.Add(3*time.Hour)); err != nil {
				t.Fatalf("after reset: %v", err)
			}
		})
	})
}

func TestTOTPLogin(t *testing.T) {
	now := t0.Add(10 * time.Minute)
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		f := newTestService(t, s)
		for i, tc := range []struct {
			name     string
			codeAt   time.Duration // offset from now; ignored when raw is set
			raw      string
			want     error
			loginNow time.Time
		}{
			{name: "200/current-step", codeAt: 0},
			{name: "200/skew-minus-1-step", codeAt: -30 * time.Second},
			{name: "200/skew-plus-1-step", codeAt: 30 * time.Second},
			{name: "401/skew-minus-2-steps", codeAt: -60 * time.Second, want: ErrBadCredentials},
			{name: "401/skew-plus-2-steps", codeAt: 60 * time.Second, want: ErrBadCredentials},
			{name: "401/not-digits", raw: "abcdef", want: ErrBadCredentials},
			{name: "401/too-short", raw: "12345", want: ErrBadCredentials},
			// Same answer as a wrong password, and counted (next test).
			{name: "401/missing-code", raw: " ", want: ErrBadCredentials},
			{name: "401/code-used-to-confirm", codeAt: -10 * time.Minute, want: ErrBadCredentials, loginNow: t0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				op := f.mustCreate(t, fmt.Sprintf("totp%d", i), RoleViewer, "")
				secret := f.enrol(t, op) // confirmed at t0
				c := tc.raw
				if c == "" {
					c = code(t, secret, now.Add(tc.codeAt))
				}
				at := now
				if !tc.loginNow.IsZero() {
					at = tc.loginNow
				}
				got, err := f.svc.Authenticate(ctx, op.Username, goodPW, c, at)
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if tc.want == nil && got.ID != op.ID {
					t.Fatal("wrong operator")
				}
			})
		}
		t.Run("401/wrong-password-right-code", func(t *testing.T) {
			op := f.mustCreate(t, "totpw", RoleViewer, "")
			secret := f.enrol(t, op)
			if _, err := f.svc.Authenticate(ctx, op.Username, "not the password", code(t, secret, now), now); err != ErrBadCredentials {
				t.Fatalf("got %v", err)
			}
		})
		t.Run("401/same-code-twice", func(t *testing.T) {
			op := f.mustCreate(t, "totpr", RoleViewer, "")
			secret := f.enrol(t, op)
			c := code(t, secret, now)
			if _, err := f.svc.Authenticate(ctx, op.Username, goodPW, c, now); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Authenticate(ctx, op.Username, goodPW, c, now.Add(10*time.Second)); err != ErrBadCredentials {
				t.Fatalf("reuse: %v", err)
			}
			// An older step is refused too once a newer one was used.
			if _, err := f.svc.Authenticate(ctx, op.Username, goodPW, code(t, secret, now.Add(-30*time.Second)), now); err != ErrBadCredentials {
				t.Fatalf("older step: %v", err)
			}
			next := now.Add(30 * time.Second)
			if _, err := f.svc.Authenticate(ctx, op.Username, goodPW, code(t, secret, next), next); err != nil {
				t.Fatalf("next step: %v", err)
			}
		})
		t.Run("401/concurrent-reuse-only-one-wins", func(t *testing.T) {
			op := f.mustCreate(t, "totpc", RoleViewer, "")
			secret := f.enrol(t, op)
			c := code(t, secret, now)
			var mu sync.Mutex
			wins := 0
			var wg sync.WaitGroup
			for range 6 {
				wg.Go(func() {
					_, err := f.svc.Authenticate(ctx, op.Username, goodPW, c, now)
					if err == nil {
						mu.Lock()
						wins++
						mu.Unlock()
					} else if err != ErrBadCredentials {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if wins != 1 {
				t.Fatalf("%d logins with one code, want 1", wins)
			}
		})
	})
}

func TestAdminChanges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		f := newTestService(t, s)
		op := f.mustCreate(t, "ann", RoleViewer, "m_1")
		t.Run("400/set-weak-password", func(t *testing.T) {
			if err := f.svc.SetPassword(ctx, op.ID, "ann"); !errors.Is(err, ErrWeakPassword) {
				t.Fatalf("got %v", err)
			}
		})
		t.Run("400/set-password-without-digits", func(t *testing.T) {
			// PCI DSS 8.3.6: long enough, but letters only.
			if err := f.svc.SetPassword(ctx, op.ID, "a brand new passphrase"); !errors.Is(err, ErrWeakPassword) {
				t.Fatalf("got %v", err)
			}
		})
		t.Run("200/set-password", func(t *testing.T) {
			for range 10 {
				_, _ = f.svc.Authenticate(ctx, "ann", "wrong wrong wrong", "", t0)
			}
			before := f.rev.count(op.ID)
			const newPW = "a brand new passphrase 2026"
			if err := f.svc.SetPassword(ctx, op.ID, newPW); err != nil {
				t.Fatal(err)
			}
			if f.rev.count(op.ID) != before+1 {
				t.Fatal("password change did not end sessions")
			}
			if _, err := f.svc.Authenticate(ctx, "ann", goodPW, "", t0); err != ErrBadCredentials {
				t.Fatalf("old password: %v", err)
			}
			if _, err := f.svc.Authenticate(ctx, "ann", newPW, "", t0); err != nil {
				t.Fatalf("new password (the reset also unlocks): %v", err)
			}
		})
		t.Run("200/set-role-ends-sessions", func(t *testing.T) {
			before := f.rev.count(op.ID)
			if err := f.svc.SetRole(ctx, op.ID, RoleRevealer); err != nil {
				t.Fatal(err)
			}
			got, _ := f.svc.Get(ctx, op.ID)
			if got.Role != RoleRevealer || f.rev.count(op.ID) != before+1 {
				t.Fatalf("role %s, revokes %d", got.Role, f.rev.count(op.ID))
			}
			if err := f.svc.SetRole(ctx, op.ID, "god"); !errors.Is(err, ErrInvalid) {
				t.Fatalf("bad role: %v", err)
			}
		})
		t.Run("200/disable-and-enable", func(t *testing.T) {
			before := f.rev.count(op.ID)
			if err := f.svc.Disable(ctx, op.ID); err != nil {
				t.Fatal(err)
			}
			if f.rev.count(op.ID) != before+1 {
				t.Fatal("disable did not end sessions")
			}
			got, _ := f.svc.Get(ctx, op.ID)
			if !got.Disabled || got.MaySee("m_1") {
				t.Fatal("not disabled")
			}
			if _, _, _, err := f.svc.EnrollTOTP(ctx, op.ID); !errors.Is(err, ErrDisabled) {
				t.Fatalf("enrol while disabled: %v", err)
			}
			if err := f.svc.Enable(ctx, op.ID); err != nil {
				t.Fatal(err)
			}
			if got, _ := f.svc.Get(ctx, op.ID); got.Disabled {
				t.Fatal("still disabled")
			}
		})
		t.Run("404/unknown-id", func(t *testing.T) {
			for name, err := range map[string]error{
				"get":      func() error { _, err := f.svc.Get(ctx, "op_none"); return err }(),
				"password": f.svc.SetPassword(ctx, "op_none", goodPW),
				"role":     f.svc.SetRole(ctx, "op_none", RoleViewer),
				"disable":  f.svc.Disable(ctx, "op_none"),
				"unlock":   f.svc.Unlock(ctx, "op_none"),
			} {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
		t.Run("200/list-by-merchant", func(t *testing.T) {
			f.mustCreate(t, "plat", RoleAdmin, "")
			f.mustCreate(t, "other", RoleViewer, "m_2")
			for merchant, want := range map[string]int{"": 3, "m_1": 1, "m_2": 1, "m_9": 0} {
				ops, err := f.svc.List(ctx, merchant)
				if err != nil || len(ops) != want {
					t.Errorf("list %q: %d %v, want %d", merchant, len(ops), err, want)
				}
			}
			if _, err := f.svc.List(ctx, "bogus"); !errors.Is(err, ErrInvalid) {
				t.Errorf("bad merchant: %v", err)
			}
		})
	})
}

// A hash made with older parameters is upgraded at the next successful login.
func TestRehashOnLogin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		old := newTestService(t, s)
		op := old.mustCreate(t, "rehash", RoleViewer, "")
		stronger := fastParams
		stronger.Time = 2
		svc, err := NewService(s, Config{Params: stronger})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Authenticate(ctx, "rehash", goodPW, "", t0); err != nil {
			t.Fatal(err)
		}
		got, _ := svc.Get(ctx, op.ID)
		if !strings.Contains(got.PasswordHash, "t=2") || got.PasswordHash == op.PasswordHash {
			t.Fatalf("hash not upgraded: %s", got.PasswordHash[:30])
		}
		if _, err := svc.Authenticate(ctx, "rehash", goodPW, "", t0); err != nil {
			t.Fatalf("login after rehash: %v", err)
		}
	})
}

func TestRoleCan(t *testing.T) {
	actions := []Action{ActionSearch, ActionReveal, ActionAudit, ActionManage}
	for _, tc := range []struct {
		role Role
		may  []Action
	}{
		{RoleViewer, []Action{ActionSearch}},
		{RoleRevealer, []Action{ActionSearch, ActionReveal}},
		// Separation of duties: admin manages and audits but never reveals.
		{RoleAdmin, []Action{ActionSearch, ActionAudit, ActionManage}},
		{"", nil},
		{"root", nil},
	} {
		for _, a := range actions {
			want := false
			for _, m := range tc.may {
				want = want || m == a
			}
			name := fmt.Sprintf("%s/%s/%v", tc.role, a, want)
			t.Run(name, func(t *testing.T) {
				if got := tc.role.Can(a); got != want {
					t.Fatalf("Can = %v", got)
				}
			})
		}
	}
	if RoleAdmin.Can("delete-everything") {
		t.Fatal("unknown action allowed")
	}
}

func TestMaySee(t *testing.T) {
	platform := Operator{ID: "op_p", Role: RoleAdmin}
	m1 := Operator{ID: "op_1", Role: RoleViewer, MerchantID: "m_1"}
	m1Admin := Operator{ID: "op_1a", Role: RoleAdmin, MerchantID: "m_1"}
	disabled := Operator{ID: "op_d", Role: RoleAdmin, Disabled: true}
	for _, tc := range []struct {
		name     string
		op       Operator
		merchant string
		want     bool
	}{
		{"allow/platform-any-merchant", platform, "m_1", true},
		{"allow/platform-platform-data", platform, "", true},
		{"allow/merchant-own", m1, "m_1", true},
		{"deny/merchant-other", m1, "m_2", false},
		{"deny/merchant-platform-data", m1, "", false},
		{"deny/disabled-platform", disabled, "m_1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.op.MaySee(tc.merchant); got != tc.want {
				t.Fatalf("MaySee(%q) = %v", tc.merchant, got)
			}
		})
	}
	for _, tc := range []struct {
		name          string
		actor, target Operator
		want          bool
	}{
		{"allow/platform-admin-manages-merchant-op", platform, m1, true},
		{"allow/merchant-admin-manages-own", m1Admin, m1, true},
		{"deny/merchant-admin-platform-op", m1Admin, platform, false},
		{"deny/merchant-admin-other-merchant", m1Admin, Operator{MerchantID: "m_2"}, false},
		{"deny/viewer-manages", m1, m1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.actor.MayManage(tc.target); got != tc.want {
				t.Fatalf("MayManage = %v", got)
			}
		})
	}
}

func TestOperatorPrintingHidesSecrets(t *testing.T) {
	op := Operator{ID: "op_x", Username: "x", Role: RoleViewer, PasswordHash: "$argon2id$SECRETHASH", TOTPSecret: "TOTPSECRETBASE32", TOTPPending: "PENDINGSECRET"}
	for _, s := range []string{fmt.Sprint(op), fmt.Sprintf("%v %+v %#v %s", op, op, op, op)} {
		if strings.Contains(s, "SECRETHASH") || strings.Contains(s, "TOTPSECRET") || strings.Contains(s, "PENDINGSECRET") {
			t.Fatalf("printed a secret: %s", s)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok/defaults", Config{}, true},
		{"bad/max-failures-over-10", Config{MaxFailures: 11}, false},
		{"bad/negative-lock", Config{LockFor: -time.Minute}, false},
		{"bad/params", Config{Params: Params{Memory: 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("got %v", err)
			}
			if tc.ok && (tc.cfg.MaxFailures != 10 || tc.cfg.LockFor != 30*time.Minute || tc.cfg.Params != DefaultParams()) {
				t.Fatalf("defaults not filled: %+v", tc.cfg)
			}
		})
	}
}

// TestHashConcurrencyFollowsTheProcessors: by default as many argon2id
// hashes run at once as the runtime runs processors, which follow a
// container's CPU limit (GOMAXPROCS), not the host's CPU count: a small
// container on a large host would otherwise let a flood of logins hash
// far more memory than it has. Set here above the CPU count, so that the
// two differ on any machine.
func TestHashConcurrencyFollowsTheProcessors(t *testing.T) {
	procs := runtime.NumCPU() + 1
	prev := runtime.GOMAXPROCS(procs)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.HashConcurrency != procs {
		t.Fatalf("HashConcurrency %d by default, want GOMAXPROCS %d (NumCPU %d)", c.HashConcurrency, procs, runtime.NumCPU())
	}
}

// An unknown username costs an argon2id verification like a known one, so
// response time does not tell which usernames exist. Counted, not timed: a
// timing bound would flake on a busy machine.
func TestUnknownUserCostsAHash(t *testing.T) {
	s := backends()[0].open(t)
	p := Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	svc, err := NewService(s, Config{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.Create(ctx, "known", RoleViewer, "", goodPW); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"known", "unknown", "not a valid username!"} {
		before := svc.verifications.Load()
		if _, err := svc.Authenticate(ctx, user, "wrong password 1", "", t0); err != ErrBadCredentials {
			t.Fatalf("%s: %v", user, err)
		}
		if n := svc.verifications.Load() - before; n != 1 {
			t.Fatalf("%q cost %d argon2id verifications, want exactly 1", user, n)
		}
	}
}
