package backoffice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// ChallengeRequest asks for a reveal challenge: the page sends the reason
// and its fresh browser key, so both are checked before the operator is
// asked to touch the passkey.
type ChallengeRequest struct {
	TokenID    string
	Reason     string // as typed; whitespace is folded
	BrowserKey wire.BrowserKey
}

// Challenge is what the page needs for navigator.credentials.get: the key
// service's single-use nonce, RP id and the operator's approved passkeys.
// ReauthRequired: the session is not fresh and the reveal's passkey cannot
// stand for the re-authentication, so the page must send the password and
// code with the reveal.
type Challenge struct {
	Token          tokens.Token
	Reason         string
	KS             wire.RevealChallengeResponse
	ReauthRequired bool
}

// RevealRequest is an operator's reveal as the page sent it.
type RevealRequest struct {
	TokenID    string
	Reason     string // as typed; whitespace is folded (wire.NormReason)
	BrowserKey wire.BrowserKey
	Nonce      string
	// Assertion is the operator's passkey assertion over
	// wire.RevealChallenge(Nonce, TokenID, Reason, JWKThumbprint(BrowserKey)).
	Assertion json.RawMessage
	// Password and Code re-authenticate a session older than ReauthWindow
	// (or the Assertion does, when the MFA mode accepts passkeys).
	Password, Code string
}

// Revealed is what a reveal returns: the card only as the key service
// encrypted it to the browser's key, which the gateway cannot open. Token
// and Reason are set as soon as the scope and reason checks passed, also
// with an error.
type Revealed struct {
	Token      tokens.Token
	Reason     string
	JWE        string // compact JWE to the browser key
	Credential string // the passkey that approved it, "" when approval is off
}

// reauthAudit is the reason of the login events a reveal's re-authentication
// writes.
const reauthAudit = "re-authentication for reveal"

// NormReason folds whitespace: a reason is one line in the audit trail and
// the text the passkey signs (the key service's rule).
func NormReason(s string) string { return wire.NormReason(s) }

// denyRole records and refuses a reveal (or its challenge) by a role that
// may not reveal, before the token is even looked up.
func (s *Service) denyRole(ctx context.Context, a Actor, tokenID, reason string) error {
	resource := tokenID
	if !tokens.ValidID(resource) {
		resource = "invalid-token-id"
	}
	if wire.ValidateReason(reason) != nil {
		reason = "" // never record text the reason rule refuses
	}
	s.recordBestEffort(ctx, a, audit.Event{Event: audit.EventRevealDenied, Actor: a.Op.ID, Resource: resource,
		Reason: reason, Outcome: audit.OutcomeDenied, Code: "forbidden"})
	return ErrForbidden
}

// common runs checks 1-3 of both reveal steps: role, scope, reason.
func (s *Service) revealScope(ctx context.Context, a Actor, tokenID, reason string) (tokens.Token, error) {
	if !a.Op.Role.Can(operators.ActionReveal) {
		return tokens.Token{}, s.denyRole(ctx, a, tokenID, reason)
	}
	t, err := s.Token(ctx, a, tokenID)
	if err != nil {
		return tokens.Token{}, err
	}
	if err := wire.ValidateReason(reason); err != nil {
		return t, &InvalidError{Field: "reason", Msg: reasonMessage(err), Err: err}
	}
	return t, nil
}

// browserKey checks the page's key: EC P-256, on the curve.
func browserKey(k wire.BrowserKey) (string, error) {
	jkt, err := wire.JWKThumbprint(k)
	if err != nil {
		return "", &InvalidError{Field: "browser_key", Msg: "The browser's key for this reveal is not valid; reload the page.", Err: err}
	}
	return jkt, nil
}

// RevealChallenge is the first step of a reveal: the same role, scope,
// reason and lockout checks as Reveal, the browser key's shape, then the
// key service's nonce for this operator and token. Nothing is decrypted
// and nothing is recorded but a refused role.
func (s *Service) RevealChallenge(ctx context.Context, a Actor, r ChallengeRequest) (Challenge, error) {
	out := Challenge{Reason: NormReason(r.Reason)}
	t, err := s.revealScope(ctx, a, r.TokenID, out.Reason)
	out.Token = t
	if err != nil {
		return out, err
	}
	if _, err := browserKey(r.BrowserKey); err != nil {
		return out, err
	}
	if a.Op.Disabled || a.Op.Locked(s.d.Now()) {
		return out, ErrLocked
	}
	if s.d.KeyService == nil {
		return out, &KeyServiceError{Kind: ErrKeyServiceDown, Err: errors.New("backoffice: no key service configured")}
	}
	ch, err := s.d.KeyService.RevealChallenge(ctx, wire.RevealChallengeRequest{Actor: a.Op.ID, Token: t.ID})
	if err != nil {
		return out, s.keyServiceRefusal(ctx, a, t.ID, out.Reason, "", err)
	}
	out.KS = ch
	if !a.Sess.FreshFor(ReauthWindow, s.d.Now()) {
		out.ReauthRequired = !s.passkeyReauth(a, ch.Credentials)
	}
	return out, nil
}

// passkeyReauth reports whether a reveal's assertion may stand for the
// re-authentication of a stale session: the MFA mode lets a passkey log
// this operator in, and one of the passkeys the key service will accept
// is also enrolled at the gateway (whose copy verifies it).
func (s *Service) passkeyReauth(a Actor, approved []string) bool {
	if s.d.Operators == nil {
		return false
	}
	if _, pk := s.d.Operators.LoginFactors(a.Op); !pk {
		return false
	}
	for _, id := range approved {
		for _, p := range a.Op.Passkeys {
			if p.ID() == id {
				return true
			}
		}
	}
	return false
}

// Reveal asks the key service for a token's card encrypted to the browser's
// key, after the checks listed in the package comment, in that order.
func (s *Service) Reveal(ctx context.Context, a Actor, r RevealRequest) (Revealed, error) {
	now := s.d.Now()
	out := Revealed{Reason: NormReason(r.Reason)}

	// 1-3. Role (before the token is even looked up: a role that may not
	// reveal learns nothing about the token, and the attempt is recorded),
	// scope, reason with the key service's own rule.
	t, err := s.revealScope(ctx, a, r.TokenID, out.Reason)
	out.Token = t
	if err != nil {
		return out, err
	}

	// 4. The request as the key service will see it, checked here so that
	// a malformed one is neither re-authenticated nor recorded.
	jkt, err := browserKey(r.BrowserKey)
	if err != nil {
		return out, err
	}
	req := wire.RevealRequest{JWE: t.JWE, Actor: a.Op.ID, Reason: out.Reason, Token: t.ID,
		BrowserKey: r.BrowserKey, Nonce: r.Nonce, Assertion: r.Assertion}
	if err := req.Validate(); err != nil {
		return out, &InvalidError{Field: "request", Msg: "The reveal request is incomplete; reload the page and try again.", Err: err}
	}
	credential := ""
	if len(r.Assertion) > 0 {
		id, err := passkey.AssertionCredentialID(r.Assertion)
		if err != nil {
			return out, &InvalidError{Field: "assertion", Msg: "The passkey answer is not readable; try again.", Err: err}
		}
		credential = base64URL(id)
	}

	// 5. Fresh authentication: the password and code, or (MFA mode
	// permitting) this reveal's own passkey assertion, verified with the
	// gateway's copy of the credential. The assertion re-authenticates this
	// request only: the session does not become fresh by it.
	if !a.Sess.FreshFor(ReauthWindow, now) {
		if err := s.reauthForReveal(ctx, a, r, credential, wire.RevealChallenge(r.Nonce, t.ID, out.Reason, jkt)); err != nil {
			return out, err
		}
	}

	// 6. Lockout: the account record as it is now, not as the session began.
	if a.Op.Disabled || a.Op.Locked(now) {
		return out, ErrLocked
	}

	// 7. No audit, no reveal: the gateway's record is written before the
	// key service is asked; it names the passkey and never holds the card.
	if err := s.record(ctx, a, audit.Event{Event: audit.EventReveal, Actor: a.Op.ID, Resource: t.ID,
		Kid: t.Kid, Reason: out.Reason, Credential: credential, Outcome: audit.OutcomeSuccess}); err != nil {
		return out, err
	}

	// 8. The key service: the nonce, the passkey, its limits, its audit,
	// its decryption and the encryption to the browser's key.
	if s.d.KeyService == nil {
		return out, &KeyServiceError{Kind: ErrKeyServiceDown, Err: errors.New("backoffice: no key service configured")}
	}
	res, err := s.d.KeyService.Reveal(ctx, req)
	if err != nil {
		return out, s.keyServiceRefusal(ctx, a, t.ID, out.Reason, credential, err)
	}
	out.JWE, out.Credential = res.JWE, res.Credential
	return out, nil
}

// keyServiceRefusal classifies a key-service failure of either reveal step;
// a refusal (an answer with a code: the key service recorded why) is
// recorded in the gateway's trail too, best effort.
func (s *Service) keyServiceRefusal(ctx context.Context, a Actor, token, reason, credential string, err error) error {
	kerr := keyServiceError(err)
	var ke *KeyServiceError
	if errors.As(kerr, &ke) && ke.Code != "" {
		s.recordBestEffort(ctx, a, audit.Event{Event: audit.EventRevealDenied, Actor: a.Op.ID, Resource: token,
			Reason: reason, Credential: credential, Outcome: audit.OutcomeDenied, Code: ke.Code})
	}
	return kerr
}

// reauthForReveal re-authenticates a stale session for one reveal.
func (s *Service) reauthForReveal(ctx context.Context, a Actor, r RevealRequest, credential string, challenge []byte) error {
	if r.Password != "" {
		return s.reauth(ctx, a, r.Password, r.Code)
	}
	if credential == "" || !s.passkeyReauth(a, []string{credential}) {
		return ErrReauthRequired
	}
	err := s.d.Operators.ConfirmPasskey(ctx, a.Op.ID, challenge, r.Assertion, s.d.Now())
	var locked *operators.LockedError
	switch {
	case errors.As(err, &locked):
		s.recordBestEffort(ctx, a, audit.Event{Event: audit.EventLogin, Actor: a.Op.ID, Outcome: audit.OutcomeDenied, Code: "locked", Reason: reauthAudit + " (passkey)"})
		_ = s.d.Sessions.Delete(ctx, a.Sess.ID)
		return fmt.Errorf("%w: %w", ErrLocked, err)
	case errors.Is(err, operators.ErrBadCredentials), errors.Is(err, operators.ErrDisabled):
		s.recordBestEffort(ctx, a, audit.Event{Event: audit.EventLogin, Actor: a.Op.ID, Outcome: audit.OutcomeFailure, Code: LoginCode(err), Reason: reauthAudit + " (passkey)"})
		return fmt.Errorf("%w: %w", ErrReauthFailed, err)
	case err != nil:
		return unavailable(err)
	}
	s.recordBestEffort(ctx, a, audit.Event{Event: audit.EventLogin, Actor: a.Op.ID, Outcome: audit.OutcomeSuccess, Reason: reauthAudit + " (passkey)"})
	return nil
}

// reauth checks a password and TOTP code given with the reveal and marks the
// session fresh. A lockout it triggers ends the session.
func (s *Service) reauth(ctx context.Context, a Actor, password, code string) error {
	now := s.d.Now()
	op, err := s.d.Operators.Authenticate(ctx, a.Op.Username, password, code, now)
	var locked *operators.LockedError
	switch {
	case errors.As(err, &locked):
		s.recordBestEffort(ctx, a, audit.Event{Event: audit.EventLogin, Actor: a.Op.ID, Outcome: audit.OutcomeDenied, Code: "locked", Reason: reauthAudit})
		_ = s.d.Sessions.Delete(ctx, a.Sess.ID)
		return fmt.Errorf("%w: %w", ErrLocked, err)
	case errors.Is(err, operators.ErrBadCredentials), errors.Is(err, operators.ErrMFARequired), errors.Is(err, operators.ErrDisabled):
		s.recordBestEffort(ctx, a, audit.Event{Event: audit.EventLogin, Actor: a.Op.ID, Outcome: audit.OutcomeFailure, Code: LoginCode(err), Reason: reauthAudit})
		return fmt.Errorf("%w: %w", ErrReauthFailed, err)
	case err != nil:
		return unavailable(err)
	case op.ID != a.Op.ID:
		// The session's username now names someone else: refuse.
		return ErrForbidden
	}
	if _, err := s.d.Sessions.Reauth(ctx, a.Sess.ID, now); err != nil {
		return unavailable(err)
	}
	s.recordBestEffort(ctx, a, audit.Event{Event: audit.EventLogin, Actor: a.Op.ID, Outcome: audit.OutcomeSuccess, Reason: reauthAudit})
	return nil
}

// LoginCode is the audit code of a failed login: the trail may say more
// than the page does.
func LoginCode(err error) string {
	switch {
	case errors.Is(err, operators.ErrMFARequired):
		return "mfa_required"
	case errors.Is(err, operators.ErrDisabled):
		return "disabled"
	}
	return "bad_credentials"
}

// reasonMessage tells the operator which part of the reason rule failed.
func reasonMessage(err error) string {
	switch {
	case errors.Is(err, wire.ErrPANInText):
		return "The reason looks like a card number."
	case errors.Is(err, wire.ErrReasonCharacters):
		return "The reason contains characters that are not allowed."
	}
	return fmt.Sprintf("Type the reason for this reveal (%d to %d characters), e.g. the ticket number.", wire.MinReasonLen, wire.MaxReasonLen)
}
