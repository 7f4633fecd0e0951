package operators

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/blindgate/blindgate/internal/passkey"
)

// SessionRevoker ends every session of an operator. websession's stores
// implement it; the Service calls it when an operator is locked out,
// disabled, or has its password or role changed.
type SessionRevoker interface {
	DeleteForOperator(ctx context.Context, operatorID string) error
}

// Config configures a Service. Zero fields take the defaults in Validate.
type Config struct {
	Params        Params        // argon2id cost; zero: DefaultParams()
	MaxFailures   int           // consecutive failures that lock; 10 (PCI DSS 8.3.4)
	LockFor       time.Duration // lockout duration; 30 min (PCI DSS 8.3.4 minimum)
	FailureWindow time.Duration // failures are forgotten this long after the last; 24 h
	Issuer        string        // TOTP issuer shown in authenticator apps; "Blindgate"
	// HashConcurrency bounds concurrent argon2id computations (each takes
	// Params.Memory), so a flood of logins cannot exhaust memory. Default:
	// the processors the runtime runs (GOMAXPROCS), which follow a
	// container's CPU limit; the host's CPU count does not, and on a large
	// host would let a small container hash its memory limit away.
	HashConcurrency int
	Now             func() time.Time // for Create and ConfirmTOTP; time.Now
	Revoker         SessionRevoker   // optional
	Logger          *slog.Logger     // slog.Default()
	// NameKey keys the hash that stands for a login name no operator has, in
	// the lockout store and the audit trail: a name typed wrong may be a
	// password or a card number, so it is never stored as typed. Replicas
	// must share it for one lockout counter per unknown name; nil: a random
	// key for this process.
	NameKey []byte
	// MFA is the login's second factor (-operator-mfa): totp, passkey or
	// any (the default).
	MFA MFAMode
	// Passkeys verifies passkey ceremonies for the back office's relying
	// party; nil: passkeys cannot be enrolled or used (MFA must not be
	// passkey).
	Passkeys *passkey.Verifier
}

// Validate fills defaults and names the first bad field.
func (c *Config) Validate() error {
	if c.Params == (Params{}) {
		c.Params = DefaultParams()
	}
	if err := c.Params.validate(); err != nil {
		return fmt.Errorf("operators: config Params: %w", err)
	}
	if c.MaxFailures == 0 {
		c.MaxFailures = 10
	}
	if c.MaxFailures < 1 || c.MaxFailures > 10 {
		return errors.New("operators: config MaxFailures must be 1-10 (PCI DSS 8.3.4)")
	}
	if c.LockFor == 0 {
		c.LockFor = 30 * time.Minute
	}
	if c.LockFor < 0 {
		return errors.New("operators: config LockFor must be positive")
	}
	if c.FailureWindow == 0 {
		c.FailureWindow = 24 * time.Hour
	}
	if c.FailureWindow < 0 {
		return errors.New("operators: config FailureWindow must be positive")
	}
	if c.Issuer == "" {
		c.Issuer = "Blindgate"
	}
	if c.HashConcurrency == 0 {
		c.HashConcurrency = runtime.GOMAXPROCS(0)
	}
	if c.HashConcurrency < 1 {
		return errors.New("operators: config HashConcurrency must be >= 1")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.NameKey == nil {
		c.NameKey = make([]byte, 32)
		_, _ = rand.Read(c.NameKey) // never fails (crypto/rand since Go 1.24)
	}
	if len(c.NameKey) < 32 {
		return errors.New("operators: config NameKey must be at least 32 bytes")
	}
	if c.MFA == "" {
		c.MFA = MFAAny
	}
	if _, err := ParseMFAMode(string(c.MFA)); err != nil || string(c.MFA) != strings.ToLower(string(c.MFA)) {
		return errors.New("operators: config MFA must be totp, passkey or any")
	}
	if c.MFA == MFAPasskey && c.Passkeys == nil {
		return errors.New("operators: config MFA passkey needs a passkey relying party (Passkeys)")
	}
	return nil
}

// Service is the operator domain logic over a Store.
type Service struct {
	store     Store
	cfg       Config
	policy    LockoutPolicy
	hashSlots chan struct{}
	// dummyHash is verified against for unknown usernames, so a login with a
	// name that does not exist costs the same argon2id work as one that does.
	dummyHash string
	// verifications counts argon2id verifications; tests use it to prove an
	// unknown username costs one, without timing anything.
	verifications atomic.Int64
}

// NewService returns a Service; it computes one hash (the dummy) up front.
func NewService(store Store, cfg Config) (*Service, error) {
	if store == nil {
		return nil, errors.New("operators: nil store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{
		store:     store,
		cfg:       cfg,
		policy:    LockoutPolicy{MaxFailures: cfg.MaxFailures, LockFor: cfg.LockFor, Window: cfg.FailureWindow},
		hashSlots: make(chan struct{}, cfg.HashConcurrency),
		dummyHash: dummyPHC(cfg.Params),
	}, nil
}

func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.hashSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("operators: waiting to hash: %w", ctx.Err())
	}
}

func (s *Service) release() { <-s.hashSlots }

func (s *Service) hash(ctx context.Context, password string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	return hashPassword(password, s.cfg.Params), nil
}

// verify checks password against phc. A malformed stored hash counts as a
// mismatch (logged), never as success.
func (s *Service) verify(ctx context.Context, password, phc string) (ok, rehash bool, err error) {
	if err := s.acquire(ctx); err != nil {
		return false, false, err
	}
	defer s.release()
	s.verifications.Add(1)
	ok, rehash, err = verifyPassword(password, phc, s.cfg.Params)
	if err != nil {
		s.cfg.Logger.Error("operators: stored password hash does not parse; login refused")
		// Spend the same work as a real verification.
		_, _, _ = verifyPassword(password, s.dummyHash, s.cfg.Params)
		return false, false, nil
	}
	return ok, rehash, nil
}

// Create adds an operator. username is normalised (NormalizeUsername);
// merchantID is "" for a platform operator or an "m_" id. The password must
// pass CheckPassword (ErrWeakPassword says why). The returned Operator holds
// the hash: do not render it.
func (s *Service) Create(ctx context.Context, username string, role Role, merchantID, password string) (Operator, error) {
	u, err := NormalizeUsername(username)
	if err != nil {
		return Operator{}, err
	}
	if !role.Valid() {
		return Operator{}, fmt.Errorf("%w: role must be one of viewer, revealer, admin", ErrInvalid)
	}
	if !validMerchantID(merchantID) {
		return Operator{}, fmt.Errorf("%w: merchant id must be empty (platform) or an m_ id", ErrInvalid)
	}
	if err := CheckPassword(u, password); err != nil {
		return Operator{}, err
	}
	h, err := s.hash(ctx, password)
	if err != nil {
		return Operator{}, err
	}
	op := Operator{
		ID:           newID("op_"),
		Username:     u,
		Role:         role,
		MerchantID:   merchantID,
		PasswordHash: h,
		CreatedAt:    s.cfg.Now().UTC().Truncate(time.Second),
	}
	if err := s.store.Create(ctx, op); err != nil {
		return Operator{}, err
	}
	return op, nil
}

// maxPasswordBytes: longer input is refused without being hashed as given
// (it still costs a dummy verification and counts as a failure).
const maxPasswordBytes = 4 * MaxPasswordLen

// Authenticate checks a login with a TOTP code at now (Login with a code).
func (s *Service) Authenticate(ctx context.Context, username, password, totpCode string, now time.Time) (Operator, error) {
	return s.Login(ctx, username, password, Factor{Code: totpCode}, now)
}

// Login checks a login at now: the password and the second factor that
// LoginFactors accepts for the operator under the MFA mode.
//
// Order matters:
//  1. A locked username is refused (*LockedError) before any hashing. The
//     lockout record of a name no operator has is kept under NameTag, never
//     under the name as typed (it may be a password).
//  2. The password is verified in constant time; an unknown username is
//     verified against a dummy hash, so both cost the same and both answer
//     ErrBadCredentials.
//  3. A failure is counted atomically in the store; the one that reaches
//     MaxFailures returns *LockedError and ends the operator's sessions.
//  4. With a second factor enrolled, a missing factor is a counted failure
//     whatever the password, with the same answer as a wrong password:
//     otherwise a password could be tested without the factor and without
//     limit.
//  5. Only after a correct password and a factor present: ErrDisabled, then
//     a wrong or already used code, or a passkey assertion that does not
//     verify (unknown credential, spent or foreign challenge, signature,
//     origin, user verification, a counter that did not move) is
//     ErrBadCredentials (counted).
//  6. Success resets the failure counter and records the TOTP step or the
//     passkey's counter used, atomically, so one code or assertion logs in
//     once.
func (s *Service) Login(ctx context.Context, username, password string, f Factor, now time.Time) (Operator, error) {
	return s.login(ctx, username, password, f, now, false)
}

// Reconfirm checks the password and the operator's current second factor,
// whichever it has (a TOTP code or an enrolled passkey, whatever the MFA
// mode), as a login does, counted and locked alike: the fresh
// authentication of a change to the account's factors, such as enrolling a
// passkey. An operator with no factor yet gives the password alone.
func (s *Service) Reconfirm(ctx context.Context, username, password string, f Factor, now time.Time) (Operator, error) {
	return s.login(ctx, username, password, f, now, true)
}

func (s *Service) login(ctx context.Context, username, password string, f Factor, now time.Time, anyFactor bool) (Operator, error) {
	u, err := NormalizeUsername(username)
	if err != nil {
		// No such account can exist; spend the same work and say the same thing.
		if _, _, err := s.verify(ctx, password, s.dummyHash); err != nil {
			return Operator{}, err
		}
		return Operator{}, ErrBadCredentials
	}
	op, err := s.store.GetByUsername(ctx, u)
	found := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Operator{}, err
	}
	key := u
	if !found {
		key = s.NameTag(u)
	}
	l, err := s.store.Lockout(ctx, key)
	if err != nil {
		return Operator{}, err
	}
	if l.Locked(now) {
		return Operator{}, &LockedError{Until: l.LockedUntil}
	}

	phc := s.dummyHash
	if found && len(password) <= maxPasswordBytes {
		phc = op.PasswordHash
	}
	ok, rehash, err := s.verify(ctx, password, phc)
	if err != nil {
		return Operator{}, err
	}
	if !found || !ok || len(password) > maxPasswordBytes {
		return s.fail(ctx, key, op, found, now)
	}
	allowTOTP, allowPK := s.LoginFactors(op)
	if anyFactor {
		allowTOTP, allowPK = op.TOTPEnabled, len(op.Passkeys) > 0 && s.cfg.Passkeys != nil
	}
	if (allowTOTP || allowPK) && f.empty() {
		return s.fail(ctx, key, op, found, now)
	}
	if op.Disabled {
		return Operator{}, ErrDisabled
	}

	var newHash string
	if rehash {
		// Parameters changed since this hash was made: upgrade it now that
		// we hold the password. Failure to do so does not block the login.
		if h, err := s.hash(ctx, password); err == nil {
			newHash = h
		}
	}
	var step int64
	var usedTOTP bool
	var credID []byte
	var count uint32
	switch {
	case !allowTOTP && !allowPK:
		// No factor to check yet: a session good for enrolment only.
	case len(f.Assertion) > 0:
		if !allowPK {
			return s.fail(ctx, key, op, found, now)
		}
		credID, count, err = s.checkAssertion(ctx, op, nil, f.Assertion, now)
		if errors.Is(err, errBadAssertion) {
			return s.fail(ctx, key, op, found, now)
		}
		if err != nil {
			return Operator{}, err
		}
	default:
		var good bool
		if step, good = matchTOTP(op.TOTPSecret, f.Code, now); !allowTOTP || !good {
			return s.fail(ctx, key, op, found, now)
		}
		usedTOTP = true
	}
	if usedTOTP || credID != nil || newHash != "" {
		errReused := errors.New("totp code reused")
		updated, err := s.store.Update(ctx, op.ID, func(o *Operator) error {
			if usedTOTP {
				// Checked inside the atomic update, so two logins racing with
				// one code cannot both pass.
				if !o.TOTPEnabled || o.TOTPSecret != op.TOTPSecret || step <= o.TOTPLastStep {
					return errReused
				}
				o.TOTPLastStep = step
			}
			if credID != nil {
				if err := recordUse(o, credID, count, now); err != nil {
					return err
				}
			}
			if newHash != "" {
				o.PasswordHash = newHash
			}
			return nil
		})
		if errors.Is(err, errReused) || errors.Is(err, errReplayed) {
			return s.fail(ctx, key, op, found, now)
		}
		if err != nil {
			return Operator{}, err
		}
		op = updated
	}
	// Always reset (not only when l showed failures): failures may have been
	// counted by concurrent attempts since l was read.
	if err := s.store.ResetFailures(ctx, u); err != nil {
		return Operator{}, err
	}
	op.FailedLogins, op.LockedUntil = 0, time.Time{}
	return op, nil
}

// NameTag stands for a login name in the lockout store and the audit trail
// when no operator has it: a keyed hash, enough to see repeated attempts on
// one name, useless for reading back what was typed. The "h:" prefix cannot
// occur in a username, so a tag never meets a real name's record.
func (s *Service) NameTag(name string) string {
	m := hmac.New(sha256.New, s.cfg.NameKey)
	m.Write([]byte(name))
	return "h:" + hex.EncodeToString(m.Sum(nil)[:16])
}

// LoginActor names who attempted a failed login, for the audit trail: the
// operator id when the name is an operator's, else the name's NameTag.
func (s *Service) LoginActor(ctx context.Context, username string) (string, error) {
	u, err := NormalizeUsername(username)
	if err != nil {
		return s.NameTag(strings.TrimSpace(username)), nil
	}
	op, err := s.store.GetByUsername(ctx, u)
	switch {
	case err == nil:
		return op.ID, nil
	case errors.Is(err, ErrNotFound):
		return s.NameTag(u), nil
	}
	return "", err
}

// fail counts a failed login under the lockout key and answers
// ErrBadCredentials, or *LockedError when this failure locks it.
func (s *Service) fail(ctx context.Context, key string, op Operator, found bool, now time.Time) (Operator, error) {
	l, err := s.store.RecordFailure(ctx, key, now, s.policy)
	if err != nil {
		return Operator{}, err // fail closed: no counter, no login
	}
	if !l.Locked(now) {
		return Operator{}, ErrBadCredentials
	}
	if found {
		if err := s.revoke(ctx, op.ID); err != nil {
			return Operator{}, err
		}
	}
	return Operator{}, &LockedError{Until: l.LockedUntil}
}

func (s *Service) revoke(ctx context.Context, id string) error {
	if s.cfg.Revoker == nil {
		return nil
	}
	if err := s.cfg.Revoker.DeleteForOperator(ctx, id); err != nil {
		return fmt.Errorf("operators: end sessions: %w", err)
	}
	return nil
}

// SetPassword replaces the operator's password (policy as in Create),
// clears any lockout (an admin reset confirms identity, PCI DSS 8.3.4) and
// ends the operator's sessions.
func (s *Service) SetPassword(ctx context.Context, id, password string) error {
	op, err := s.store.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := CheckPassword(op.Username, password); err != nil {
		return err
	}
	h, err := s.hash(ctx, password)
	if err != nil {
		return err
	}
	if _, err := s.store.Update(ctx, id, func(o *Operator) error {
		o.PasswordHash = h
		return nil
	}); err != nil {
		return err
	}
	if err := s.store.ResetFailures(ctx, op.Username); err != nil {
		return err
	}
	return s.revoke(ctx, id)
}

// SetRole changes the operator's role and ends its sessions, so the new
// privileges apply from the next login. Whether the actor may do this (not
// on itself, within its scope: Operator.MayManage) is the caller's check.
func (s *Service) SetRole(ctx context.Context, id string, role Role) error {
	if !role.Valid() {
		return fmt.Errorf("%w: role must be one of viewer, revealer, admin", ErrInvalid)
	}
	if _, err := s.store.Update(ctx, id, func(o *Operator) error {
		o.Role = role
		return nil
	}); err != nil {
		return err
	}
	return s.revoke(ctx, id)
}

// Disable blocks the operator from logging in and ends its sessions.
// Accounts are disabled rather than deleted, so the audit trail's actor ids
// keep pointing at a record.
func (s *Service) Disable(ctx context.Context, id string) error {
	if _, err := s.store.Update(ctx, id, func(o *Operator) error {
		o.Disabled = true
		return nil
	}); err != nil {
		return err
	}
	return s.revoke(ctx, id)
}

// Enable lets a disabled operator log in again.
func (s *Service) Enable(ctx context.Context, id string) error {
	_, err := s.store.Update(ctx, id, func(o *Operator) error {
		o.Disabled = false
		return nil
	})
	return err
}

// Unlock clears the operator's failure counter and lockout before it runs out.
func (s *Service) Unlock(ctx context.Context, id string) error {
	op, err := s.store.Get(ctx, id)
	if err != nil {
		return err
	}
	return s.store.ResetFailures(ctx, op.Username)
}

// List returns the operators of merchantID, or every operator when
// merchantID is "" (the platform view). Callers scope it with MaySee.
func (s *Service) List(ctx context.Context, merchantID string) ([]Operator, error) {
	if !validMerchantID(merchantID) {
		return nil, fmt.Errorf("%w: bad merchant id", ErrInvalid)
	}
	return s.store.List(ctx, merchantID)
}

// Get returns one operator (ErrNotFound).
func (s *Service) Get(ctx context.Context, id string) (Operator, error) {
	return s.store.Get(ctx, id)
}

// GetByUsername returns the operator of a login name, compared as
// NormalizeUsername makes it (ErrNotFound, also for a name no operator
// could have). Callers scope it with MaySee.
func (s *Service) GetByUsername(ctx context.Context, username string) (Operator, error) {
	u, err := NormalizeUsername(username)
	if err != nil {
		return Operator{}, ErrNotFound
	}
	return s.store.GetByUsername(ctx, u)
}
