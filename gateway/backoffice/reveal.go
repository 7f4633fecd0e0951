package backoffice

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// RevealRequest is an operator's reveal as the form sent it.
type RevealRequest struct {
	TokenID string
	Reason  string // as typed; whitespace is folded
	// Password and Code re-authenticate a session older than ReauthWindow.
	Password, Code string
}

// Revealed is what a reveal returns. Token and Reason are set as soon as
// the scope and reason checks passed, also with an error, so the page can
// offer the form again; Card only on success. Card holds the full number:
// render it once, never log it.
type Revealed struct {
	Token  tokens.Token
	Reason string
	Card   wire.RevealResponse
}

// reauthAudit is the reason of the login events a reveal's re-authentication
// writes.
const reauthAudit = "re-authentication for reveal"

// NormReason folds whitespace: a reason is one line in the audit trail.
func NormReason(s string) string { return strings.Join(strings.Fields(s), " ") }

// Reveal asks the key service for a token's full card number, after the
// checks listed in the package comment, in that order.
func (s *Service) Reveal(ctx context.Context, a Actor, r RevealRequest) (Revealed, error) {
	now := s.d.Now()
	out := Revealed{Reason: NormReason(r.Reason)}

	// 1. Role, before the token is even looked up: a role that may not
	// reveal learns nothing about the token, and the attempt is recorded.
	if !a.Op.Role.Can(operators.ActionReveal) {
		resource := r.TokenID
		if !tokens.ValidID(resource) {
			resource = "invalid-token-id"
		}
		reason := out.Reason
		if wire.ValidateReason(reason) != nil {
			reason = "" // never record text the reason rule refuses
		}
		s.recordBestEffort(ctx, a, audit.Event{Event: audit.EventRevealDenied, Actor: a.Op.ID, Resource: resource,
			Reason: reason, Outcome: audit.OutcomeDenied, Code: "forbidden"})
		return out, ErrForbidden
	}

	// 2. Scope.
	t, err := s.Token(ctx, a, r.TokenID)
	if err != nil {
		return out, err
	}
	out.Token = t

	// 3. Reason, with the key service's own rule.
	if err := wire.ValidateReason(out.Reason); err != nil {
		return out, &InvalidError{Field: "reason", Msg: reasonMessage(err), Err: err}
	}

	// 4. Fresh authentication.
	if !a.Sess.FreshFor(ReauthWindow, now) {
		if err := s.reauth(ctx, a, r); err != nil {
			return out, err
		}
	}

	// 5. Lockout: the account record as it is now, not as the session began.
	if a.Op.Disabled || a.Op.Locked(now) {
		return out, ErrLocked
	}

	// 6. No audit, no reveal: the gateway's record is written before the
	// key service is asked, and never holds the card number.
	if err := s.record(ctx, a, audit.Event{Event: audit.EventReveal, Actor: a.Op.ID, Resource: t.ID,
		Kid: t.Kid, Reason: out.Reason, Outcome: audit.OutcomeSuccess}); err != nil {
		return out, err
	}

	// 7. The key service: its limits, its audit, its decryption.
	if s.d.KeyService == nil {
		return out, &KeyServiceError{Kind: ErrKeyServiceDown, Err: errors.New("backoffice: no key service configured")}
	}
	card, err := s.d.KeyService.Reveal(ctx, wire.RevealRequest{JWE: t.JWE, Actor: a.Op.ID, Reason: out.Reason, Token: t.ID})
	if err != nil {
		return out, keyServiceError(err)
	}
	out.Card = card
	return out, nil
}

// reauth checks a password and TOTP code given with the reveal and marks the
// session fresh. A lockout it triggers ends the session.
func (s *Service) reauth(ctx context.Context, a Actor, r RevealRequest) error {
	if r.Password == "" {
		return ErrReauthRequired
	}
	now := s.d.Now()
	op, err := s.d.Operators.Authenticate(ctx, a.Op.Username, r.Password, r.Code, now)
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
