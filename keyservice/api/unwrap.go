package api

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/httpapi"
	"github.com/blindgate/blindgate/internal/jose/compact"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/card"
	"github.com/blindgate/blindgate/keyservice/passkeys"
	"github.com/blindgate/blindgate/keyservice/unwrap"
	"github.com/blindgate/blindgate/keyservice/wire"
)

func (s *Server) meta(c *fiber.Ctx) unwrap.Meta {
	return unwrap.Meta{Client: callerOf(c).ClientID, Origin: strings.Clone(c.IP())}
}

// bind reads a request and applies its wire Validate, which checks every
// ciphertext's shape (compact.CheckJWE) once: the domain trusts that and
// runs only the strict parse. A malformed ciphertext answers invalid_jwe,
// as the strict parse would; a card number in a reason answers
// pan_in_text, as the gateway's back office does.
func bind(c *fiber.Ctx, req httpapi.Validator) error {
	err := httpapi.Bind(c.Body(), req)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, wire.ErrPANInText):
		return apierr.PANInText.Wrap(err)
	case errors.Is(err, wire.ErrBrowserKey):
		return apierr.BrowserKeyInvalid.Wrap(err)
	case errors.Is(err, compact.ErrMalformed):
		return apierr.InvalidJWE.Wrap(err)
	}
	return err
}

func (s *Server) inspect(c *fiber.Ctx) error {
	var req wire.InspectRequest
	meta := s.meta(c)
	meta.Claim = claimOf(c)
	if err := bind(c, &req); err != nil {
		if cerr := s.deps.Unwrap.ClaimOnly(c.UserContext(), meta); cerr != nil {
			return s.notAdmitted(c, wire.OpInspect, cerr)
		}
		return err
	}
	m, err := s.deps.Unwrap.Inspect(c.UserContext(), meta, unwrap.InspectInput{
		JWE: req.JWE, Session: req.Session, Merchant: req.Merchant, CVCJWE: req.CVCJWE,
	})
	if errors.Is(err, unwrap.ErrNotAdmitted) {
		return s.notAdmitted(c, wire.OpInspect, err)
	}
	if err != nil {
		return mapUnwrapError(err)
	}
	s.deps.Metrics.decrypted(callerOf(c).ClientID, wire.OpInspect)
	return c.JSON(wire.InspectResponse{
		Kid: m.Kid, Brand: m.Brand, BIN: m.BIN, Last4: m.Last4,
		ExpMonth: m.ExpMonth, ExpYear: m.ExpYear, Fingerprint: m.Fingerprint, Binding: m.Binding,
	})
}

// revealBody is a reveal request as bound here: its wire checks
// (wire.RevealRequest.Check) parse the browser key, and the domain takes
// the key as they parsed it.
type revealBody struct {
	wire.RevealRequest
	key wire.CheckedBrowserKey
}

func (b *revealBody) Validate() (err error) {
	b.key, err = b.Check()
	return err
}

func (s *Server) reveal(c *fiber.Ctx) error {
	var req revealBody
	meta := s.meta(c)
	meta.Claim = claimOf(c)
	if err := bind(c, &req); err != nil {
		if cerr := s.deps.Unwrap.ClaimOnly(c.UserContext(), meta); cerr != nil {
			return s.notAdmitted(c, wire.OpReveal, cerr)
		}
		// A reveal refused before the domain saw it is audited too, with
		// what of the request is safe to record.
		s.auditRevealRefused(c, req.RevealRequest, err)
		return err
	}
	out, err := s.deps.Unwrap.Reveal(c.UserContext(), meta, unwrap.RevealInput{
		JWE: req.JWE, Actor: req.Actor, Reason: req.Reason, Token: req.Token, Nonce: req.Nonce,
		BrowserKey: req.key, Assertion: req.Assertion,
	})
	if errors.Is(err, unwrap.ErrNotAdmitted) {
		return s.notAdmitted(c, wire.OpReveal, err)
	}
	if err != nil {
		return mapUnwrapError(err)
	}
	s.deps.Metrics.decrypted(callerOf(c).ClientID, wire.OpReveal)
	return c.JSON(wire.RevealResponse{JWE: out.JWE, Credential: out.Credential})
}

func (s *Server) rewrap(c *fiber.Ctx) error {
	var req wire.RewrapRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	out, err := s.deps.Unwrap.Rewrap(c.UserContext(), s.meta(c), unwrap.RewrapInput{JWE: req.JWE, Merchant: req.Merchant, Resource: req.Token, Refresh: req.Refresh, Binding: req.Binding})
	if err != nil {
		return mapUnwrapError(err)
	}
	s.deps.Metrics.decrypted(callerOf(c).ClientID, wire.OpRewrap)
	return c.JSON(wire.RewrapResponse{
		JWE: out.JWE, Kid: out.Kid, Brand: out.Brand, BIN: out.BIN, Last4: out.Last4, Fingerprint: out.Fingerprint,
		Binding: out.Binding,
	})
}

// mapUnwrapError turns domain errors into the documented codes.
func mapUnwrapError(err error) error {
	var le *ratelimit.Refused
	var ee *unwrap.EnumerationError
	switch {
	case errors.As(err, &ee):
		return apierr.CardEnumeration.WithRetry(ee.RetryAfter).Wrap(err)
	case errors.Is(err, unwrap.ErrCVCInvalid):
		return apierr.CVCInvalid.Wrap(err)
	case errors.Is(err, unwrap.ErrNotBound):
		return apierr.CardNotBound.Wrap(err)
	case errors.Is(err, unwrap.ErrBrowserKey):
		return apierr.BrowserKeyInvalid.Wrap(err)
	case errors.Is(err, passkeys.ErrNonce):
		return apierr.RevealNonceInvalid.Wrap(err)
	case errors.Is(err, passkeys.ErrRequired):
		return apierr.PasskeyRequired.Wrap(err)
	case errors.Is(err, passkeys.ErrUnknown):
		return apierr.PasskeyUnknown.Wrap(err)
	case errors.Is(err, passkeys.ErrInvalid):
		return apierr.PasskeyInvalid.Wrap(err)
	case errors.Is(err, passkeys.ErrUnavailable), errors.Is(err, passkeys.ErrBusy):
		return apierr.Unavailable.Wrap(err)
	case errors.As(err, &le):
		return apierr.RateLimited.WithRetry(le.RetryAfter).Wrap(err)
	case errors.Is(err, unwrap.ErrAudit):
		return apierr.AuditFailed.Wrap(err)
	case errors.Is(err, unwrap.ErrSealed):
		return apierr.Sealed.Wrap(err)
	case errors.Is(err, unwrap.ErrUnavailable):
		return apierr.Unavailable.Wrap(err)
	case errors.Is(err, wire.ErrPANInText):
		return apierr.PANInText.Wrap(err)
	case errors.Is(err, unwrap.ErrInvalidRequest):
		return apierr.InvalidField.Wrap(err)
	case errors.Is(err, unwrap.ErrUnsupportedAlg):
		return apierr.UnsupportedAlg.Wrap(err)
	case errors.Is(err, unwrap.ErrInvalidJWE):
		return apierr.InvalidJWE.Wrap(err)
	case errors.Is(err, unwrap.ErrUnknownKey):
		return apierr.UnknownKey.Wrap(err)
	case errors.Is(err, unwrap.ErrSessionMismatch):
		return apierr.SessionMismatch.Wrap(err)
	case errors.Is(err, unwrap.ErrUndecryptable):
		return apierr.CardUndecryptable.Wrap(err)
	case errors.Is(err, unwrap.ErrStale):
		return apierr.CardStale.Wrap(err)
	case errors.Is(err, card.ErrExpired):
		return apierr.CardExpired.Wrap(err)
	case errors.Is(err, card.ErrBrand):
		return apierr.CardUnsupported.Wrap(err)
	case errors.Is(err, card.ErrMalformed), errors.Is(err, card.ErrLength), errors.Is(err, card.ErrLuhn), errors.Is(err, card.ErrDigits):
		return apierr.CardInvalid.Wrap(err)
	default:
		return err
	}
}
