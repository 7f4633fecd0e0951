package api

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/sigauth"
)

const callerKey = "bg.caller"

// signed verifies the Contract 2 signature and the caller's right to op.
// Refusals are audited: a probe with a stolen or stale key leaves a trace.
func (s *Server) signed(op string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		caller, err := s.deps.Verifier.Verify(c.UserContext(), c.Get(fiber.HeaderAuthorization), c.Method(), c.Path(), c.Body())
		if err != nil {
			ae := mapAuthError(err)
			s.auditDenial(c, caller.ClientID, op, ae.Code)
			return ae
		}
		if !caller.May(op) {
			s.auditDenial(c, caller.ClientID, op, apierr.Forbidden.Code)
			return apierr.Forbidden
		}
		c.Locals(callerKey, caller)
		return c.Next()
	}
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
