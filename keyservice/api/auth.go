package api

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/admit"
	"github.com/blindgate/blindgate/keyservice/sigauth"
	"github.com/blindgate/blindgate/keyservice/unwrap"
)

const (
	callerKey = "bg.caller"
	claimKey  = "bg.claim"
)

// signed verifies the Contract 2 signature and the caller's right to op,
// then claims the request's jti: last, so a request refused for anything
// else keeps its jti. Refusals are audited: a probe with a stolen or stale
// key leaves a trace.
func (s *Server) signed(op string) fiber.Handler { return s.authenticate(op, true) }

// signedUnclaimed is signed without the jti claim: the handler must have
// the domain claim claimOf(c) before it does anything for the request
// (unwrap.Meta.Claim), and audit a refusal to admit it (notAdmitted).
func (s *Server) signedUnclaimed(op string) fiber.Handler { return s.authenticate(op, false) }

func (s *Server) authenticate(op string, claimNow bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		caller, claim, err := s.deps.Verifier.Authenticate(c.Get(fiber.HeaderAuthorization), c.Method(), c.Path(), c.Body())
		if err == nil && !caller.May(op) {
			s.auditDenial(c, caller.ClientID, op, apierr.Forbidden.Code)
			return apierr.Forbidden
		}
		if err == nil && claimNow {
			err = s.deps.Verifier.Claim(c.UserContext(), claim)
		}
		if err != nil {
			ae := mapAuthError(err)
			s.auditDenial(c, caller.ClientID, op, ae.Code)
			return ae
		}
		c.Locals(callerKey, caller)
		if !claimNow {
			c.Locals(claimKey, claim)
		}
		return c.Next()
	}
}

// notAdmitted answers a request whose jti the domain could not claim
// (unwrap.ErrNotAdmitted, or admit's errors from the reveal challenge),
// audited as signed's refusals are.
func (s *Server) notAdmitted(c *fiber.Ctx, op string, err error) error {
	ae := apierr.Unavailable
	if errors.Is(err, unwrap.ErrReplay) || errors.Is(err, admit.ErrReplay) {
		ae = apierr.Replay
	}
	s.auditDenial(c, callerOf(c).ClientID, op, ae.Code)
	return ae.Wrap(err)
}

func claimOf(c *fiber.Ctx) admit.Claim {
	claim, _ := c.Locals(claimKey).(sigauth.Claim)
	return admit.Claim{JTI: claim.JTI, Until: claim.Until}
}

func callerOf(c *fiber.Ctx) sigauth.Caller {
	caller, _ := c.Locals(callerKey).(sigauth.Caller)
	return caller
}

func (s *Server) auditDenial(c *fiber.Ctx, client, op, code string) {
	ev := audit.Event{Event: audit.EventDenied, Client: client, Origin: strings.Clone(c.IP()), Outcome: audit.OutcomeDenied, Resource: "op:" + op, Code: code}
	if _, err := s.deps.Audit.Append(c.UserContext(), ev); err != nil {
		s.deps.Log.Error("audit append of denial failed", "err", err)
	}
}

func mapAuthError(err error) *apierr.Error {
	switch {
	case errors.Is(err, sigauth.ErrReplay):
		return apierr.Replay.Wrap(err)
	case errors.Is(err, sigauth.ErrReplayStore):
		return apierr.Unavailable.Wrap(err)
	case errors.Is(err, sigauth.ErrClockSkew):
		return apierr.ClockSkew.Wrap(err)
	case errors.Is(err, sigauth.ErrRevoked), errors.Is(err, sigauth.ErrUnknownClient):
		return apierr.Unauthenticated.Wrap(err)
	default:
		return apierr.Unauthenticated.Wrap(err)
	}
}
