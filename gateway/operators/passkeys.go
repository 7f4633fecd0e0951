package operators

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/blindgate/blindgate/internal/passkey"
)

// MFAMode is the deployment's choice of second factor for the back-office
// login (-operator-mfa).
type MFAMode string

// MFA modes.
const (
	// MFATOTP: a TOTP code; passkeys are enrolled for reveal approval only.
	MFATOTP MFAMode = "totp"
	// MFAPasskey: a passkey assertion. An operator with TOTP and no passkey
	// yet logs in with the code, and only to enrol a passkey.
	MFAPasskey MFAMode = "passkey"
	// MFAAny: whichever of the two the operator has (the default).
	MFAAny MFAMode = "any"
)

// ParseMFAMode reads the -operator-mfa flag.
func ParseMFAMode(s string) (MFAMode, error) {
	switch m := MFAMode(strings.ToLower(strings.TrimSpace(s))); m {
	case MFATOTP, MFAPasskey, MFAAny:
		return m, nil
	}
	return "", fmt.Errorf("%w: operator MFA must be totp, passkey or any", ErrInvalid)
}

// MaxPasskeys bounds an operator's passkeys: enough for a phone, a laptop and
// spare security keys, few enough that a stolen session cannot pile them up.
const MaxPasskeys = 10

// ChallengeTTL is how long a passkey login challenge may be answered.
const ChallengeTTL = 2 * time.Minute

// Passkey is one of an operator's passkeys as the gateway keeps it, for the
// back-office login and re-authentication. It never authorises a reveal:
// the key service checks each reveal against its own registry, where only
// a key-zone administrator makes a passkey usable.
type Passkey struct {
	Credential passkey.Credential `json:"credential"`
	LastUsed   time.Time          `json:"last_used,omitzero"`
}

// ID is the credential id in unpadded base64url.
func (p Passkey) ID() string { return p.Credential.IDString() }

// Fingerprint is the short code an administrator compares before approving
// the passkey at the key service.
func (p Passkey) Fingerprint() string { return passkey.Fingerprint(p.Credential) }

func (o Operator) passkey(id []byte) (int, bool) {
	for i, p := range o.Passkeys {
		if bytes.Equal(p.Credential.ID, id) {
			return i, true
		}
	}
	return -1, false
}

// Factor is the second factor given with a login: a TOTP code or a passkey
// assertion (the JSON of navigator.credentials.get), not both.
type Factor struct {
	Code      string
	Assertion []byte
}

func (f Factor) empty() bool { return strings.TrimSpace(f.Code) == "" && len(f.Assertion) == 0 }

// MFA is the deployment's login second-factor mode.
func (s *Service) MFA() MFAMode { return s.cfg.MFA }

// PasskeysEnabled reports whether passkeys can be enrolled and verified
// (a relying party is configured).
func (s *Service) PasskeysEnabled() bool { return s.cfg.Passkeys != nil }

// Passkeys is the relying party's verifier, nil when passkeys are off.
func (s *Service) Passkeys() *passkey.Verifier { return s.cfg.Passkeys }

// LoginFactors says which second factors op's login accepts under the
// mode: only factors op has, TOTP not when the mode wants a passkey op
// already has. Neither: op has no usable factor yet, and a login with the
// password alone opens a session good for enrolment only.
func (s *Service) LoginFactors(op Operator) (totp, pk bool) {
	hasPK := len(op.Passkeys) > 0 && s.cfg.Passkeys != nil
	switch s.cfg.MFA {
	case MFATOTP:
		return op.TOTPEnabled, false
	case MFAPasskey:
		if hasPK {
			return false, true
		}
		return op.TOTPEnabled, false
	}
	return op.TOTPEnabled, hasPK
}

// SecondFactorDone reports whether op has enrolled the second factor the
// mode requires; until then a session is good for enrolment and logout.
func (s *Service) SecondFactorDone(op Operator) bool {
	hasPK := len(op.Passkeys) > 0 && s.cfg.Passkeys != nil
	switch s.cfg.MFA {
	case MFATOTP:
		return op.TOTPEnabled
	case MFAPasskey:
		return hasPK
	}
	return op.TOTPEnabled || hasPK
}

// loginChallengeKey is the store key of an issued login challenge.
func loginChallengeKey(ch []byte) string { return "login:" + base64.RawURLEncoding.EncodeToString(ch) }

// LoginChallenge issues a single-use challenge (32 random bytes) for a
// passkey login or confirmation, answerable for ChallengeTTL. The caller
// passes it to navigator.credentials.get; Login takes it back from the
// assertion's client data and spends it.
func (s *Service) LoginChallenge(ctx context.Context) ([]byte, error) {
	if s.cfg.Passkeys == nil {
		return nil, fmt.Errorf("%w: passkeys are not configured", ErrInvalid)
	}
	ch := make([]byte, 32)
	_, _ = rand.Read(ch) // never fails (crypto/rand since Go 1.24)
	if err := s.store.PutChallenge(ctx, loginChallengeKey(ch), s.cfg.Now(), ChallengeTTL); err != nil {
		return nil, err
	}
	return ch, nil
}

// clientChallenge reads the challenge an assertion's client data claims.
// It proves nothing by itself: Verify checks the signature over the client
// data and that the challenge is the one given to it.
func clientChallenge(assertion []byte) ([]byte, error) {
	var a struct {
		Response struct {
			ClientDataJSON string `json:"clientDataJSON"`
		} `json:"response"`
	}
	if err := json.Unmarshal(assertion, &a); err != nil {
		return nil, errors.New("operators: assertion is not JSON")
	}
	cd, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(a.Response.ClientDataJSON, "="))
	if err != nil {
		return nil, errors.New("operators: client data is not base64url")
	}
	var c struct {
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(cd, &c); err != nil {
		return nil, errors.New("operators: client data is not JSON")
	}
	ch, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(c.Challenge, "="))
	if err != nil || len(ch) != 32 {
		return nil, errors.New("operators: client data challenge")
	}
	return ch, nil
}

// errBadAssertion marks an assertion that does not verify (counted as a
// failed login), as opposed to a store failure (answered as is).
var errBadAssertion = errors.New("operators: passkey assertion refused")

// checkAssertion verifies assertion by one of op's passkeys over challenge;
// a nil challenge means a login challenge, which is read from the client
// data and spent. It returns the credential id and the new sign count.
func (s *Service) checkAssertion(ctx context.Context, op Operator, challenge, assertion []byte, now time.Time) ([]byte, uint32, error) {
	if s.cfg.Passkeys == nil {
		return nil, 0, errBadAssertion
	}
	id, err := passkey.AssertionCredentialID(assertion)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errBadAssertion, err)
	}
	i, ok := op.passkey(id)
	if !ok {
		return nil, 0, fmt.Errorf("%w: not one of this operator's passkeys", errBadAssertion)
	}
	if challenge == nil {
		ch, err := clientChallenge(assertion)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %w", errBadAssertion, err)
		}
		fresh, err := s.store.TakeChallenge(ctx, loginChallengeKey(ch), now)
		if err != nil {
			return nil, 0, err
		}
		if !fresh {
			return nil, 0, fmt.Errorf("%w: challenge unknown, expired or spent", errBadAssertion)
		}
		challenge = ch
	}
	count, err := s.cfg.Passkeys.Verify(challenge, op.Passkeys[i].Credential, assertion)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errBadAssertion, err)
	}
	return id, count, nil
}

// recordUse stores a passkey's new sign count inside an atomic update. A
// counter that did not move past the stored one (unless the authenticator
// keeps none, 0 and 0) is a replayed or cloned assertion: errReplayed.
var errReplayed = errors.New("operators: passkey counter did not move forward")

func recordUse(o *Operator, id []byte, count uint32, now time.Time) error {
	i, ok := o.passkey(id)
	if !ok {
		return errReplayed // removed meanwhile
	}
	p := &o.Passkeys[i]
	if (count != 0 || p.Credential.SignCount != 0) && count <= p.Credential.SignCount {
		return errReplayed
	}
	p.Credential.SignCount = count
	p.LastUsed = now.UTC().Truncate(time.Second)
	return nil
}

// ConfirmPasskey checks an assertion by one of operator id's passkeys over
// a challenge the caller computed (a reveal's, which commits to what it
// approves), as the re-authentication of that one request. Like a login:
// a locked account is refused first (*LockedError), a failure is counted,
// a success resets the count. Whether the mode lets a passkey stand for a
// login is the caller's check (LoginFactors).
func (s *Service) ConfirmPasskey(ctx context.Context, id string, challenge, assertion []byte, now time.Time) error {
	if len(challenge) == 0 {
		return fmt.Errorf("%w: no challenge", ErrInvalid)
	}
	op, err := s.store.Get(ctx, id)
	if err != nil {
		return err
	}
	l, err := s.store.Lockout(ctx, op.Username)
	if err != nil {
		return err
	}
	if l.Locked(now) {
		return &LockedError{Until: l.LockedUntil}
	}
	if op.Disabled {
		return ErrDisabled
	}
	credID, count, err := s.checkAssertion(ctx, op, challenge, assertion, now)
	if errors.Is(err, errBadAssertion) {
		_, ferr := s.fail(ctx, op.Username, op, true, now)
		return ferr
	}
	if err != nil {
		return err
	}
	if _, err := s.store.Update(ctx, op.ID, func(o *Operator) error { return recordUse(o, credID, count, now) }); err != nil {
		if errors.Is(err, errReplayed) {
			_, ferr := s.fail(ctx, op.Username, op, true, now)
			return ferr
		}
		return err
	}
	return s.store.ResetFailures(ctx, op.Username)
}

// AddPasskey records a verified passkey registration (internal/passkey
// Register) for operator id. ErrExists when the credential is already
// enrolled, ErrInvalid past MaxPasskeys, ErrDisabled for a disabled account.
func (s *Service) AddPasskey(ctx context.Context, id string, cred passkey.Credential) (Operator, error) {
	if len(cred.ID) == 0 || len(cred.PublicKey) == 0 {
		return Operator{}, fmt.Errorf("%w: empty credential", ErrInvalid)
	}
	return s.store.Update(ctx, id, func(o *Operator) error {
		if o.Disabled {
			return ErrDisabled
		}
		if _, dup := o.passkey(cred.ID); dup {
			return ErrExists
		}
		if len(o.Passkeys) >= MaxPasskeys {
			return fmt.Errorf("%w: at most %d passkeys per operator", ErrInvalid, MaxPasskeys)
		}
		o.Passkeys = append(o.Passkeys, Passkey{Credential: cred})
		return nil
	})
}

// ResetPasskeys removes an operator's passkeys from the gateway (a lost
// device). The key service's registry is the key-zone administrator's to
// revoke (`keyservice passkeys revoke`).
func (s *Service) ResetPasskeys(ctx context.Context, id string) error {
	_, err := s.store.Update(ctx, id, func(o *Operator) error {
		o.Passkeys = nil
		return nil
	})
	return err
}
