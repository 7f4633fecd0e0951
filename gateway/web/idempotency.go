package web

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/gateway/idempotency"
	"github.com/blindgate/blindgate/internal/apierr"
)

// HeaderIdempotencyKey names the merchant's idempotency key; HeaderReplayed
// marks an answer replayed from the store.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderReplayed       = "Idempotent-Replayed"
)

// idempotent wraps a merchant API POST handler (after merchantAuth) with
// Idempotency-Key support:
//
//	m.Post("/checkout/sessions", s.idempotent(s.createSession))
//
// Without the header the handler runs as before. With it, the request's
// method, path and body are hashed and the key claimed for the merchant
// (gateway/idempotency): a stored answer is replayed (with
// Idempotent-Replayed: true), another request under the key gets 422
// idempotency_mismatch, a concurrent one 409 idempotency_in_progress. An
// answer the handler wrote with a status below 500 is stored; a handler
// error or a 5xx releases the key, so a retry runs again (a refusal changed
// nothing worth protecting, and a failure must stay retryable).
//
// A handler whose answer holds a secret is wrapped with sealed: its answer
// is stored encrypted under the merchant's key (idempotency.Seal).
func (s *Server) idempotent(h fiber.Handler, opts ...idemOption) fiber.Handler {
	var o idemOptions
	for _, f := range opts {
		f(&o)
	}
	return func(c *fiber.Ctx) error {
		raw := c.Get(HeaderIdempotencyKey)
		if raw == "" {
			return h(c)
		}
		store := s.deps.Idempotency
		if store == nil {
			// Fail closed: a merchant who sent a key relies on it.
			return apierr.Unavailable.Wrap(errors.New("web: no idempotency store"))
		}
		key := strings.Clone(raw)
		if !idempotency.ValidKey(key) {
			return invalidIdempotencyKey(nil)
		}
		merchant := merchantOf(c).ID
		hash := idempotency.RequestHash(c.Method(), c.Path(), c.Body())
		res, err := store.Begin(c.UserContext(), merchant, key, hash)
		switch {
		case err == nil:
		case errors.Is(err, idempotency.ErrMismatch):
			return apierr.IdempotencyMismatch.Wrap(err)
		case errors.Is(err, idempotency.ErrInProgress):
			return apierr.IdempotencyInProgress.WithRetry(time.Second).Wrap(err)
		case errors.Is(err, idempotency.ErrInvalidKey):
			return invalidIdempotencyKey(err)
		default:
			// Fail closed: without the store a retry could do the work twice.
			return apierr.Unavailable.Wrap(err)
		}
		if res.Answer != nil {
			a := *res.Answer
			if o.seal {
				if a, err = idempotency.Open(merchant, key, a); err != nil {
					return apierr.Unavailable.Wrap(err)
				}
			}
			c.Set(HeaderReplayed, "true")
			if a.ContentType != "" {
				c.Set(fiber.HeaderContentType, a.ContentType)
			}
			return c.Status(a.Status).Send(a.Body)
		}

		herr := h(c)
		// Ending the claim must happen even if the merchant hung up.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), 5*time.Second)
		defer cancel()
		status := c.Response().StatusCode()
		if herr != nil || status >= 500 {
			if err := store.Abandon(ctx, merchant, key, res.Claim); err != nil {
				s.deps.Log.Error("idempotency abandon failed", "err", err)
			}
			return herr
		}
		a := idempotency.Answer{
			Status:      status,
			ContentType: string(c.Response().Header.ContentType()),
			Body:        bytes.Clone(c.Response().Body()),
		}
		if o.seal {
			if a, err = idempotency.Seal(merchant, key, a); err != nil {
				// As when Complete fails below: the work is done, so the
				// claim is kept and retries wait out its lease.
				s.deps.Log.Error("idempotency seal failed", "err", err)
				return nil
			}
		}
		if err := store.Complete(ctx, merchant, key, res.Claim, a); err != nil {
			// The work is done and is answered; only its replay is lost.
			// The claim is kept: retries get 409 until its lease ends rather
			// than run again at once.
			s.deps.Log.Error("idempotency complete failed: a retry after the lease may run again", "err", err)
		}
		return nil
	}
}

func invalidIdempotencyKey(cause error) error {
	return &apierr.Error{Status: 400, Code: apierr.InvalidField.Code,
		Message: "Invalid field: Idempotency-Key must be 1-255 printable ASCII characters, not a card number", Err: cause}
}

type idemOptions struct{ seal bool }

type idemOption func(*idemOptions)

// sealed stores the wrapped handler's answer encrypted (it holds a secret).
func sealed() idemOption { return func(o *idemOptions) { o.seal = true } }
