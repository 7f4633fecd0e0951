package backoffice

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Passkey enrolment, with the care of TOTP enrolment and one more party:
// the operator proves the password and the current second factor in the
// request that registers the passkey (rate limited and counted like a
// login, CSRF-checked by the pages), the gateway verifies the registration
// for its own login use, the key service records it as PENDING, and the
// gateway records passkey.enrolled before it keeps its copy. Only a
// key-zone administrator makes the passkey approve reveals
// (`keyservice passkeys approve <fingerprint>`), after comparing the
// fingerprint the page shows the operator.

// Errors of passkey enrolment.
var (
	// ErrPasskeysOff: no relying party is configured (-operator-mfa totp
	// without a back-office host name, or no key service).
	ErrPasskeysOff = errors.New("backoffice: passkeys are not configured")
	// ErrPasskeyRejected: the registration does not verify (challenge,
	// origin, RP id, no user verification, not ES256) or the key service
	// disagrees about it.
	ErrPasskeyRejected = errors.New("backoffice: passkey registration rejected")
	// ErrPasskeyExists: this credential is already enrolled.
	ErrPasskeyExists = errors.New("backoffice: passkey already enrolled")
	// ErrPasskeyLimit: the operator has MaxPasskeys already.
	ErrPasskeyLimit = errors.New("backoffice: too many passkeys")
)

// Factors an enrolment's re-authentication asks for (EnrolChallenge.Factor).
const (
	FactorNone    = "none"    // no second factor yet: the password alone
	FactorTOTP    = "totp"    // the password and a TOTP code
	FactorPasskey = "passkey" // the password and an enrolled passkey
)

// EnrolChallenge is what the passkeys page needs for
// navigator.credentials.create, and for the re-authentication before it.
type EnrolChallenge struct {
	Nonce      string // the key service's registration nonce (pkn_...)
	Challenge  []byte // wire.EnrolChallenge(Nonce, actor)
	RPID       string
	UserHandle []byte   // wire.UserHandle(actor)
	Username   string   // shown by the authenticator
	Exclude    []string // the operator's passkeys at the gateway (base64url ids)
	ExpiresAt  time.Time
	// Factor is what the registering request must carry besides the
	// password; with FactorPasskey, Assert is a single-use login challenge
	// for one of Exclude.
	Factor string
	Assert []byte
}

// EnrolRequest registers a passkey.
type EnrolRequest struct {
	Nonce       string
	Attestation json.RawMessage // navigator.credentials.create's credential as JSON
	Password    string
	Code        string          // with FactorTOTP
	Assertion   json.RawMessage // with FactorPasskey
}

// Enrolled is a registered passkey, pending at the key service.
type Enrolled struct {
	Credential  string // base64url id
	Fingerprint string // what the key-zone administrator compares
	Status      string // the key service's: "pending"
}

// PasskeyView is one of the operator's passkeys for the passkeys page: the
// gateway's copy, with its status at the key service ("" when unknown).
type PasskeyView struct {
	ID, Fingerprint string
	Created         time.Time
	LastUsed        time.Time
	Status          string
}

const enrolAudit = "re-authentication for passkey enrolment"

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (s *Service) verifier() (*passkey.Verifier, error) {
	if s.d.Operators == nil || s.d.Operators.Passkeys() == nil || s.d.KeyService == nil {
		return nil, ErrPasskeysOff
	}
	return s.d.Operators.Passkeys(), nil
}

// PasskeyChallenge starts an enrolment for the signed-in operator: the key
// service's registration nonce (bound to this operator), the challenge that
// commits to it and to the operator, and what the registering request must
// prove.
func (s *Service) PasskeyChallenge(ctx context.Context, a Actor) (EnrolChallenge, error) {
	v, err := s.verifier()
	if err != nil {
		return EnrolChallenge{}, err
	}
	if a.Op.Disabled || a.Op.Locked(s.d.Now()) {
		return EnrolChallenge{}, ErrLocked
	}
	ch, err := s.d.KeyService.PasskeyChallenge(ctx, wire.PasskeyChallengeRequest{Actor: a.Op.ID})
	if err != nil {
		return EnrolChallenge{}, keyServiceError(err)
	}
	handle := wire.UserHandle(a.Op.ID)
	if ch.RPID != v.RP().ID || ch.UserHandle != base64URL(handle) {
		// The key service would refuse what the gateway accepts (or the
		// other way round): a configuration to fix, not to paper over.
		s.d.Log.Error("backoffice: key service and gateway disagree on the passkey relying party",
			"keyservice_rp_id", ch.RPID, "gateway_rp_id", v.RP().ID)
		return EnrolChallenge{}, fmt.Errorf("%w: relying party id differs between gateway and key service", ErrPasskeysOff)
	}
	out := EnrolChallenge{
		Nonce: ch.Nonce, Challenge: wire.EnrolChallenge(ch.Nonce, a.Op.ID), RPID: ch.RPID,
		UserHandle: handle, Username: a.Op.Username, ExpiresAt: time.Unix(ch.ExpiresAt, 0), Factor: FactorNone,
	}
	for _, p := range a.Op.Passkeys {
		out.Exclude = append(out.Exclude, p.ID())
	}
	switch {
	case a.Op.TOTPEnabled:
		out.Factor = FactorTOTP
	case len(a.Op.Passkeys) > 0:
		out.Factor = FactorPasskey
		if out.Assert, err = s.d.Operators.LoginChallenge(ctx); err != nil {
			return EnrolChallenge{}, unavailable(err)
		}
	}
	return out, nil
}

// EnrolPasskey registers a passkey for the signed-in operator, in this
// order: re-authentication (password and current factor, counted like a
// login), the registration verified by the gateway, the key service's
// pending record (its nonce single use), the two sides' agreement on the
// credential, the audit record (no record, no passkey), then the gateway's
// copy. The session is fresh afterwards: password and factor were just
// checked.
func (s *Service) EnrolPasskey(ctx context.Context, a Actor, r EnrolRequest) (Enrolled, error) {
	v, err := s.verifier()
	if err != nil {
		return Enrolled{}, err
	}
	now := s.d.Now()
	if r.Password == "" {
		return Enrolled{}, ErrReauthRequired
	}
	op, err := s.d.Operators.Reconfirm(ctx, a.Op.Username, r.Password, operators.Factor{Code: r.Code, Assertion: r.Assertion}, now)
	var locked *operators.LockedError
	switch {
	case errors.As(err, &locked):
		s.recordBestEffort(ctx, a, audit.Event{Event: audit.EventLogin, Actor: a.Op.ID, Outcome: audit.OutcomeDenied, Code: "locked", Reason: enrolAudit})
		_ = s.d.Sessions.Delete(ctx, a.Sess.ID)
		return Enrolled{}, fmt.Errorf("%w: %w", ErrLocked, err)
	case errors.Is(err, operators.ErrBadCredentials), errors.Is(err, operators.ErrDisabled), errors.Is(err, operators.ErrInvalid):
		s.recordBestEffort(ctx, a, audit.Event{Event: audit.EventLogin, Actor: a.Op.ID, Outcome: audit.OutcomeFailure, Code: LoginCode(err), Reason: enrolAudit})
		return Enrolled{}, fmt.Errorf("%w: %w", ErrReauthFailed, err)
	case err != nil:
		return Enrolled{}, unavailable(err)
	case op.ID != a.Op.ID:
		return Enrolled{}, ErrForbidden
	}
	s.recordBestEffort(ctx, a, audit.Event{Event: audit.EventLogin, Actor: a.Op.ID, Outcome: audit.OutcomeSuccess, Reason: enrolAudit})

	if err := wire.CheckNonce(wire.PasskeyNoncePrefix, r.Nonce); err != nil {
		return Enrolled{}, &InvalidError{Field: "nonce", Msg: "The registration challenge is missing or malformed; start again.", Err: err}
	}
	cred, err := v.Register(wire.EnrolChallenge(r.Nonce, op.ID), wire.UserHandle(op.ID), r.Attestation)
	if err != nil {
		return Enrolled{}, fmt.Errorf("%w: %w", ErrPasskeyRejected, err)
	}
	if _, dup := findPasskey(op, cred.ID); dup {
		return Enrolled{}, ErrPasskeyExists
	}
	if len(op.Passkeys) >= operators.MaxPasskeys {
		return Enrolled{}, ErrPasskeyLimit
	}
	res, err := s.d.KeyService.RegisterPasskey(ctx, wire.PasskeyRegisterRequest{
		Actor: op.ID, Username: op.Username, Nonce: r.Nonce, Attestation: r.Attestation,
	})
	if err != nil {
		return Enrolled{}, keyServiceError(err)
	}
	fp := passkey.Fingerprint(cred)
	if res.Credential != cred.IDString() || res.Fingerprint != fp {
		s.d.Log.Error("backoffice: the key service registered another credential than the gateway verified",
			"gateway_credential", cred.IDString(), "keyservice_credential", res.Credential)
		return Enrolled{}, fmt.Errorf("%w: the key service and the gateway disagree about the credential", ErrPasskeyRejected)
	}
	if err := s.record(ctx, a, audit.Event{Event: audit.EventPasskeyEnrolled, Actor: op.ID, Resource: op.ID,
		Credential: cred.IDString(), Reason: "fingerprint=" + fp + " status=" + res.Status, Outcome: audit.OutcomeSuccess}); err != nil {
		return Enrolled{}, err
	}
	if _, err := s.d.Operators.AddPasskey(ctx, op.ID, cred); err != nil {
		switch {
		case errors.Is(err, operators.ErrExists):
			return Enrolled{}, ErrPasskeyExists
		case errors.Is(err, operators.ErrInvalid):
			return Enrolled{}, ErrPasskeyLimit
		}
		return Enrolled{}, unavailable(err)
	}
	if _, err := s.d.Sessions.Reauth(ctx, a.Sess.ID, now); err != nil {
		return Enrolled{}, unavailable(err)
	}
	return Enrolled{Credential: res.Credential, Fingerprint: fp, Status: res.Status}, nil
}

func findPasskey(op operators.Operator, id []byte) (int, bool) {
	for i, p := range op.Passkeys {
		if bytes.Equal(p.Credential.ID, id) {
			return i, true
		}
	}
	return -1, false
}

// PasskeyList is the operator's passkeys as the gateway keeps them, each
// with its status at the key service. KSErr is set when the key service
// could not be asked (the statuses are then empty).
func (s *Service) PasskeyList(ctx context.Context, a Actor) (views []PasskeyView, ksErr error) {
	for _, p := range a.Op.Passkeys {
		views = append(views, PasskeyView{ID: p.ID(), Fingerprint: p.Fingerprint(), Created: p.Credential.CreatedAt, LastUsed: p.LastUsed})
	}
	if len(views) == 0 || s.d.KeyService == nil {
		return views, nil
	}
	res, err := s.d.KeyService.ListPasskeys(ctx, wire.PasskeyListRequest{Actor: a.Op.ID})
	if err != nil {
		return views, keyServiceError(err)
	}
	status := map[string]string{}
	for _, c := range res.Credentials {
		status[c.ID] = c.Status
	}
	for i := range views {
		views[i].Status = status[views[i].ID]
	}
	return views, nil
}
