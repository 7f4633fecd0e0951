package api

import (
	"context"
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/httpapi"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/readiness"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/seal"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// healthz says the process is alive (liveness: restart it if this fails);
// readyz says whether it can serve decrypts now (readiness: send it traffic).
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (s *Server) readyz(c *fiber.Ctx) error {
	r := s.ready.Report(c.UserContext())
	status := fiber.StatusOK
	if !r.Ready {
		status = fiber.StatusServiceUnavailable
	}
	return c.Status(status).JSON(r)
}

// Readiness check names of the key service (docs/contracts.md, Contract 3).
const (
	CheckSeal    = "seal"
	CheckKeyring = "keyring"
	CheckAudit   = "audit"
	CheckRedis   = "redis"
)

// keyringReader is seal.Holder's check that its keyring file can still be
// read: a key service that cannot read it cannot pick up a rotation, nor
// start again.
type keyringReader interface{ KeyringReadable() error }

// healthReporter is audit.Log's failed state.
type healthReporter interface{ Healthy() error }

// readinessChecks are what the key service needs to decrypt: unsealed, its
// keyring file readable, its audit log taking appends, and its Redis
// (replay cache, limits, enumeration guard) answering.
func (s *Server) readinessChecks() []readiness.Check {
	d := s.deps
	var checks []readiness.Check
	if d.Seal != nil {
		checks = append(checks, readiness.Check{Name: CheckSeal, Local: true, Probe: func(context.Context) error {
			if d.Seal.Progress().Sealed {
				return readiness.Fail("sealed", nil)
			}
			return nil
		}})
		if kr, ok := d.Seal.(keyringReader); ok {
			checks = append(checks, readiness.Check{Name: CheckKeyring, Probe: func(context.Context) error {
				if err := kr.KeyringReadable(); err != nil {
					return readiness.Fail("unreadable", err)
				}
				return nil
			}})
		}
	}
	if h, ok := d.Audit.(healthReporter); ok {
		checks = append(checks, readiness.Check{Name: CheckAudit, Local: true, Probe: func(context.Context) error { return h.Healthy() }})
	}
	if d.Redis != nil {
		checks = append(checks, readiness.Check{Name: CheckRedis, Probe: d.Redis.Ping})
	}
	return checks
}

// jwks publishes the public KEKs open for encryption.
func (s *Server) jwks(c *fiber.Ctx) error {
	kr, err := s.deps.Seal.Keyring()
	if err != nil {
		return apierr.Sealed.Wrap(err)
	}
	body, err := marshalJWKS(kr)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/jwk-set+json")
	c.Set(fiber.HeaderCacheControl, "public, max-age=60")
	return c.Send(body)
}

func marshalJWKS(kr *keyring.Keyring) ([]byte, error) {
	pubs := kr.PublicKeys()
	keys := make([]jose.PublicKey, 0, len(pubs))
	for _, p := range pubs {
		keys = append(keys, jose.PublicKey{Kid: p.Kid, Alg: p.Alg, Key: p.Key})
	}
	return jose.MarshalJWKS(keys)
}

func (s *Server) sealStatus(c *fiber.Ctx) error {
	return c.JSON(s.sealStatusOf(s.deps.Seal.Progress()))
}

func (s *Server) sealStatusOf(p seal.Progress) wire.SealStatus {
	return wire.SealStatus{Sealed: p.Sealed, Shares: p.Have, Needed: p.Need, Nonce: p.Nonce, Audience: s.deps.Audience,
		Threshold: p.Need, Total: p.Total, Progress: p.Have, Scheme: p.Scheme, ShareSet: p.Set, MasterRotated: p.MasterRotated}
}

// unseal takes one key share, or resets the round. It is unauthenticated like
// Vault's: a share is itself the credential. The ceremony rate-limits and
// audits every attempt, whatever its outcome.
func (s *Server) unseal(c *fiber.Ctx) error {
	if s.deps.Unseal == nil {
		return apierr.NotFound
	}
	var req wire.UnsealRequest
	if err := httpapi.Bind(c.Body(), &req); err != nil {
		return err
	}
	var (
		p   seal.Progress
		err error
	)
	if req.Reset {
		p, err = s.deps.Unseal.Reset(c.UserContext(), c.IP(), req.Nonce)
	} else {
		p, err = s.deps.Unseal.Submit(c.UserContext(), c.IP(), req.Nonce, req.Key)
	}
	var rl *ratelimit.Refused
	switch {
	case err == nil:
		return c.JSON(s.sealStatusOf(p))
	case errors.As(err, &rl):
		return apierr.RateLimited.WithRetry(rl.RetryAfter).Wrap(err)
	case errors.Is(err, seal.ErrAlreadyUnsealed):
		return apierr.AlreadyUnsealed.Wrap(err)
	case errors.Is(err, seal.ErrNonceMismatch):
		return apierr.UnsealNonceMismatch.Wrap(err)
	case errors.Is(err, seal.ErrInvalidShare):
		return apierr.InvalidField.Wrap(err)
	case errors.Is(err, seal.ErrBadShare), errors.Is(err, seal.ErrDuplicateShare), errors.Is(err, seal.ErrWrongShare):
		return apierr.UnsealFailed.Wrap(err)
	default:
		return err
	}
}

// auditQuery serves the audit trail and its chain check to the back office.
func (s *Server) auditQuery(c *fiber.Ctx) error {
	if s.deps.Trail == nil {
		return apierr.NotFound
	}
	// Sealed, the service serves nothing signed, as Vault serves nothing
	// but its seal status: sealing is the operators' stop, and the trail
	// (who revealed which token, and why) is not served past it either.
	if _, err := s.deps.Seal.Keyring(); err != nil {
		return apierr.Sealed.Wrap(err)
	}
	var req wire.AuditQueryRequest
	if err := httpapi.Bind(c.Body(), &req); err != nil {
		return err
	}
	limit := req.Limit
	if limit == 0 {
		limit = wire.MaxAuditPage // never the whole trail in one answer
	}
	// One more than the page, to learn whether an older page exists.
	events, rep, err := s.deps.Trail.Query(c.UserContext(), audit.Filter{Actor: req.Actor, Actors: req.Actors,
		Outcome: req.Outcome, Event: req.Event, BeforeSeq: req.BeforeSeq, Limit: limit + 1})
	var next uint64
	if len(events) > limit {
		events = events[:limit]
		next = events[limit-1].Seq
	}
	resp := wire.AuditQueryResponse{Events: wireEvents(events), Lines: rep.Lines, Head: rep.Head, ChainOK: err == nil, NextBeforeSeq: next}
	if err != nil {
		resp.ChainError = err.Error()
	}
	return c.JSON(resp)
}

// wireEvents converts log records to the wire's audit events, field by
// field: a field added to the log reaches the wire only when added here.
func wireEvents(events []audit.Event) []wire.AuditEvent {
	out := make([]wire.AuditEvent, len(events))
	for i, e := range events {
		out[i] = wire.AuditEvent{
			Seq: e.Seq, Time: e.Time, Event: e.Event, Client: e.Client, Actor: e.Actor, Origin: e.Origin,
			Outcome: e.Outcome, Resource: e.Resource, Kid: e.Kid, Reason: e.Reason, Code: e.Code,
			Credential: e.Credential, Prev: e.Prev, Hash: e.Hash,
		}
	}
	return out
}
