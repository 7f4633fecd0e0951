package api

import (
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/forward"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// forwardRetry is the Retry-After of a forward refused for a reason that
// carries no time of its own.
const forwardRetry = 2 * time.Second

// forwardDisabled answers a key service built without a forward domain.
var forwardDisabled = &apierr.Error{Status: fiber.StatusNotFound, Code: apierr.NotFound.Code, Message: "Forwarding is not configured on this key service."}

func (s *Server) forward(c *fiber.Ctx) error {
	if s.deps.Forward == nil {
		return forwardDisabled
	}
	var req wire.ForwardRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	m := forward.Meta{Client: callerOf(c).ClientID, Origin: strings.Clone(c.IP())}
	resp, err := s.deps.Forward.Forward(c.UserContext(), m, req)
	if err != nil {
		return mapForwardError(err)
	}
	if !resp.Replayed {
		s.deps.Metrics.decrypted(m.Client, wire.OpForward)
	}
	return c.JSON(resp)
}

// storedOutcomeUnknown answers a retry of a forward whose first attempt may
// have reached the destination: the same code as that attempt, a message
// saying nothing was sent this time.
var storedOutcomeUnknown = &apierr.Error{
	Status: apierr.DestinationOutcomeUnknown.Status, Code: apierr.DestinationOutcomeUnknown.Code,
	Message: "An earlier request with this Idempotency-Key may have reached the destination; nothing was sent again. Check with the processor before using a new key.",
}

// mapForwardError turns forward's errors, and the card opener's beneath
// them, into the documented codes. The opener's are checked first: forward
// wraps them in ErrCard, and their own code says more.
func mapForwardError(err error) error {
	var le *ratelimit.Refused
	switch {
	case errors.Is(err, forward.ErrAudit):
		return apierr.AuditFailed.Wrap(err)
	case errors.Is(err, forward.ErrNotBound):
		return apierr.CardNotBound.Wrap(err)
	case errors.Is(err, forward.ErrCard):
		return mapUnwrapError(err)
	case errors.Is(err, forward.ErrCVCMissing):
		return apierr.CVCUnavailable.Wrap(err)
	case errors.Is(err, forward.ErrTemplate):
		return apierr.TemplateInvalid.Wrap(err)
	case errors.Is(err, forward.ErrIdempotencyMismatch):
		return apierr.IdempotencyMismatch.Wrap(err)
	case errors.Is(err, forward.ErrInProgress):
		return apierr.IdempotencyInProgress.WithRetry(forwardRetry).Wrap(err)
	case errors.Is(err, forward.ErrStoredFailure):
		return storedOutcomeUnknown.Wrap(err)
	case errors.Is(err, forward.ErrDestination):
		return apierr.DestinationNotAllowed.Wrap(err)
	case errors.Is(err, wire.ErrPANInText):
		return apierr.PANInText.Wrap(err)
	case errors.Is(err, forward.ErrInvalidRequest):
		return apierr.InvalidField.Wrap(err)
	case errors.As(err, &le):
		return apierr.RateLimited.WithRetry(le.RetryAfter).Wrap(err)
	case errors.Is(err, forward.ErrLimited):
		return apierr.RateLimited.WithRetry(forwardRetry).Wrap(err)
	case errors.Is(err, forward.ErrAddressRefused):
		return apierr.DestinationRefused.Wrap(err)
	case errors.Is(err, forward.ErrUnreachable):
		return apierr.DestinationUnreachable.Wrap(err)
	case errors.Is(err, forward.ErrOutcomeUnknown):
		return apierr.DestinationOutcomeUnknown.Wrap(err)
	case errors.Is(err, forward.ErrUnavailable):
		return apierr.Unavailable.Wrap(err)
	default:
		return err
	}
}
