package api

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/httpapi"
	"github.com/blindgate/blindgate/keyservice/admit"
	"github.com/blindgate/blindgate/keyservice/passkeys"
	"github.com/blindgate/blindgate/keyservice/unwrap"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// passkeysDisabled answers a key service built without the approval front.
var passkeysDisabled = &apierr.Error{Status: fiber.StatusNotFound, Code: apierr.NotFound.Code, Message: "Reveal approval is not configured on this key service."}

// revealChallenge claims its request's jti in the domain, with the
// client's challenge budget and the nonce's write (one Redis round trip):
// a request refused before that claims it alone first, so that, as on the
// routes that claim in the middleware, a replay is a replay whatever it
// asks.
func (s *Server) revealChallenge(c *fiber.Ctx) error {
	claim := claimOf(c)
	if s.deps.Passkeys == nil {
		if err := s.deps.Unwrap.ClaimOnly(c.UserContext(), unwrap.Meta{Claim: claim}); err != nil {
			return s.notAdmitted(c, wire.OpReveal, err)
		}
		return passkeysDisabled
	}
	var req wire.RevealChallengeRequest
	if err := bind(c, &req); err != nil {
		if cerr := s.deps.Unwrap.ClaimOnly(c.UserContext(), unwrap.Meta{Claim: claim}); cerr != nil {
			return s.notAdmitted(c, wire.OpReveal, cerr)
		}
		return err
	}
	out, err := s.deps.Passkeys.ClaimRevealChallenge(c.UserContext(), claim, callerOf(c).ClientID, strings.Clone(c.IP()), req.Actor, req.Token)
	if errors.Is(err, admit.ErrReplay) || errors.Is(err, admit.ErrUnavailable) {
		return s.notAdmitted(c, wire.OpReveal, err)
	}
	if err != nil {
		return mapPasskeyError(err)
	}
	return c.JSON(out)
}

func (s *Server) passkeyChallenge(c *fiber.Ctx) error {
	if s.deps.Passkeys == nil {
		return passkeysDisabled
	}
	var req wire.PasskeyChallengeRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	out, err := s.deps.Passkeys.PasskeyChallenge(c.UserContext(), callerOf(c).ClientID, req.Actor)
	if err != nil {
		return mapPasskeyError(err)
	}
	return c.JSON(out)
}

// registerPasskey answers 202: the passkey is recorded as pending, and
// approves nothing until a key-zone admin approves it.
func (s *Server) registerPasskey(c *fiber.Ctx) error {
	if s.deps.Passkeys == nil {
		return passkeysDisabled
	}
	var req wire.PasskeyRegisterRequest
	if err := httpapi.Bind(c.Body(), &req); err != nil && !errors.Is(err, wire.ErrInvalidRequest) {
		return err
	}
	// A request that binds but breaks a field rule reaches the domain,
	// which refuses it and audits the refusal (passkey.register).
	out, err := s.deps.Passkeys.Register(c.UserContext(), callerOf(c).ClientID, strings.Clone(c.IP()), req)
	if err != nil {
		return mapPasskeyError(err)
	}
	return c.Status(fiber.StatusAccepted).JSON(out)
}

func (s *Server) listPasskeys(c *fiber.Ctx) error {
	if s.deps.Passkeys == nil {
		return passkeysDisabled
	}
	var req wire.PasskeyListRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	out, err := s.deps.Passkeys.List(c.UserContext(), req.Actor)
	if err != nil {
		return mapPasskeyError(err)
	}
	return c.JSON(out)
}

func mapPasskeyError(err error) error {
	var fe *wire.FieldError
	switch {
	case errors.Is(err, wire.ErrPANInText):
		return apierr.PANInText.Wrap(err)
	case errors.As(err, &fe):
		return &apierr.Error{Status: apierr.InvalidField.Status, Code: apierr.InvalidField.Code, Message: "Invalid field: " + fe.PublicReason() + ".", Err: err}
	case errors.Is(err, passkeys.ErrTooMany):
		return &apierr.Error{Status: apierr.RateLimited.Status, Code: apierr.RateLimited.Code, Err: err,
			Message: "This operator has too many passkeys awaiting approval or approved; revoke one in the key zone first."}
	}
	return mapUnwrapError(err)
}

// auditRevealRefused records a reveal the HTTP layer refused (unreadable
// body, a field out of shape): actor and token only when they are valid
// ids, the reason only when it passes the reason rule, never the rest.
func (s *Server) auditRevealRefused(c *fiber.Ctx, req wire.RevealRequest, err error) {
	ev := audit.Event{Event: audit.EventRevealDenied, Client: callerOf(c).ClientID, Origin: strings.Clone(c.IP()), Outcome: audit.OutcomeDenied}
	if wire.ValidateID("actor", req.Actor) == nil {
		ev.Actor = req.Actor
	}
	if wire.ValidateID("token", req.Token) == nil {
		ev.Resource = req.Token
	}
	if wire.ValidateReason(req.Reason) == nil {
		ev.Reason = req.Reason
	}
	ev.Code = httpapi.From(err).Code
	if _, aerr := s.deps.Audit.Append(c.UserContext(), ev); aerr != nil {
		s.deps.Log.Error("audit append of a refused reveal failed", "err", aerr)
	}
}
