package backoffice

import (
	"context"
	"errors"
	"fmt"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/websession"
)

// Errors of Resume and RequireSecondFactor.
var (
	// ErrLoginRequired: no live session (none, an unknown one, or one whose
	// operator was disabled or locked since); the operator must log in.
	ErrLoginRequired = errors.New("backoffice: login required")
	// ErrSessionExpired: the session timed out; it matches ErrLoginRequired.
	ErrSessionExpired = fmt.Errorf("%w: session expired", ErrLoginRequired)
	// ErrEnrolmentRequired: the operator has not enrolled the second factor
	// the MFA mode requires.
	ErrEnrolmentRequired = errors.New("backoffice: second factor enrolment required")
)

// Resume resolves a session id to its signed-in operator; origin is the
// client's address, for the audit trail. The operator record is re-read on
// every request, so a disabled or locked account stops at once: its session
// is ended and the answer is ErrLoginRequired.
func (s *Service) Resume(ctx context.Context, sessionID, origin string) (Actor, error) {
	if sessionID == "" {
		return Actor{}, ErrLoginRequired
	}
	now := s.d.Now()
	sess, err := s.d.Sessions.Get(ctx, sessionID, now)
	switch {
	case errors.Is(err, websession.ErrExpired):
		return Actor{}, fmt.Errorf("%w: %w", ErrSessionExpired, err)
	case errors.Is(err, websession.ErrNotFound):
		return Actor{}, fmt.Errorf("%w: %w", ErrLoginRequired, err)
	case err != nil:
		return Actor{}, unavailable(err)
	}
	op, err := s.d.Operators.Get(ctx, sess.OperatorID)
	if err != nil && !errors.Is(err, operators.ErrNotFound) {
		return Actor{}, unavailable(err)
	}
	if err != nil || op.Disabled || op.Locked(now) {
		// The account went away under a live session: end it.
		_ = s.d.Sessions.Delete(ctx, sess.ID)
		return Actor{}, ErrLoginRequired
	}
	return Actor{Op: op, Sess: sess, Origin: origin}, nil
}

// RequireSecondFactor refuses an operator without the second factor the
// MFA mode requires (operators.Service.SecondFactorDone): until one is
// enrolled, a session (opened with the password alone, or with TOTP where
// a passkey is required) is good for enrolment and logout only (PCI DSS
// 8.4.2: MFA for all non-console access).
func (s *Service) RequireSecondFactor(a Actor) error {
	if s.d.Operators == nil || !s.d.Operators.SecondFactorDone(a.Op) {
		return ErrEnrolmentRequired
	}
	return nil
}
