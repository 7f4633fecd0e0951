package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/seal"
)

// healthz says the process is alive; readyz says it can serve decrypts.
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (s *Server) readyz(c *fiber.Ctx) error {
	sealed, _, _ := s.deps.Seal.Status()
	checks := fiber.Map{"sealed": sealed}
	ready := !sealed
	if s.deps.Redis != nil {
		ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
		defer cancel()
		if err := s.deps.Redis.Ping(ctx); err != nil {
			checks["redis"] = "down"
			ready = false
		} else {
			checks["redis"] = "ok"
		}
	}
	status := fiber.StatusOK
	if !ready {
		status = fiber.StatusServiceUnavailable
	}
	checks["ready"] = ready
	return c.Status(status).JSON(checks)
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
	sealed, have, need := s.deps.Seal.Status()
	return c.JSON(client.SealStatus{Sealed: sealed, Shares: have, Needed: need, Audience: s.deps.Audience})
}

// unseal takes one key share. It is unauthenticated like Vault's: a share is
// itself the credential, and a wrong one leaves an audit record.
func (s *Server) unseal(c *fiber.Ctx) error {
	var req client.UnsealRequest
	if err := json.Unmarshal(c.Body(), &req); err != nil {
		return apierr.BadRequest.Wrap(err)
	}
	share, err := keyring.ParseMasterKey(req.Key)
	if err != nil {
		return apierr.InvalidField.Wrap(err)
	}
	defer clear(share)
	done, err := s.deps.Seal.Unseal(share)
	ev := audit.Event{Event: audit.EventUnseal, Origin: c.IP(), Outcome: audit.OutcomeSuccess}
	switch {
	case errors.Is(err, seal.ErrBadShare):
		ev.Outcome, ev.Code = audit.OutcomeFailure, apierr.UnsealFailed.Code
	case err != nil:
		ev.Outcome, ev.Code = audit.OutcomeFailure, apierr.Internal.Code
	case !done:
		ev.Reason = "share accepted; more needed"
	}
	if _, aerr := s.deps.Audit.Append(c.UserContext(), ev); aerr != nil {
		s.deps.Log.Error("audit append of unseal failed", "err", aerr)
	}
	if errors.Is(err, seal.ErrBadShare) {
		return apierr.UnsealFailed.Wrap(err)
	}
	if err != nil {
		return err
	}
	if done {
		s.deps.Log.Info("key service unsealed")
	}
	sealed, have, need := s.deps.Seal.Status()
	return c.JSON(client.SealStatus{Sealed: sealed, Shares: have, Needed: need, Audience: s.deps.Audience})
}

// auditQuery serves the audit trail and its chain check to the back office.
func (s *Server) auditQuery(c *fiber.Ctx) error {
	if s.deps.Trail == nil {
		return apierr.NotFound
	}
	var req client.AuditQueryRequest
	if err := apierr.Bind(c.Body(), &req); err != nil {
		return err
	}
	events, rep, err := s.deps.Trail.Query(c.UserContext(), audit.Filter{Actor: req.Actor, Outcome: req.Outcome, Event: req.Event, Limit: req.Limit})
	resp := client.AuditQueryResponse{Events: events, Lines: rep.Lines, Head: rep.Head, ChainOK: err == nil}
	if err != nil {
		resp.ChainError = err.Error()
	}
	return c.JSON(resp)
}
