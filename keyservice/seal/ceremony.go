package seal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/keyring"
)

// ErrRateLimited is returned when an unseal attempt exceeds its limits; the
// attempt had no effect. The error is also a *ratelimit.Refused saying when
// to retry.
var ErrRateLimited = errors.New("seal: too many unseal attempts")

// ErrInvalidShare is returned for a share that is not a base64 key share (32
// bytes: a whole master key or an n-of-n share; 33: a threshold share).
var ErrInvalidShare = errors.New("seal: share is not a base64 key share")

// CeremonyLimits bound unseal attempts. The endpoint is unauthenticated (a
// share is its own credential), so guessing and round-wrecking are slowed
// per source address and, against many addresses, for everyone.
type CeremonyLimits struct {
	PerIP  ratelimit.Limit
	Global ratelimit.Limit
}

// DefaultCeremonyLimits allows 5 attempts per minute per address and 30 per
// minute in all: a ceremony with typos fits easily, a guesser does not.
func DefaultCeremonyLimits() CeremonyLimits {
	return CeremonyLimits{
		PerIP:  ratelimit.Limit{Name: "unseal-ip", Rate: 5, Period: time.Minute, Burst: 5},
		Global: ratelimit.Limit{Name: "unseal-all", Rate: 30, Period: time.Minute, Burst: 30},
	}
}

// Auditor appends durable audit events.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Ceremony is the unseal policy in front of a Holder: limits first, then the
// share, then an audit record of what happened, whatever happened. The limiter
// should be in-process (ratelimit.NewMemory): a sealed key service may not
// have Redis yet, and the limits guard this process's own state.
type Ceremony struct {
	holder  *Holder
	audit   Auditor
	limiter ratelimit.Gate
	limits  CeremonyLimits
	log     *slog.Logger
}

// NewCeremony returns the unseal policy for h.
func NewCeremony(h *Holder, a Auditor, l ratelimit.Limiter, limits CeremonyLimits, log *slog.Logger) *Ceremony {
	if log == nil {
		log = slog.Default()
	}
	return &Ceremony{holder: h, audit: a, limiter: ratelimit.Gate{Limiter: l, Limited: ErrRateLimited}, limits: limits, log: log}
}

// Submit takes one share (base64, as custodians hold it) for the round named
// by nonce. Errors: ErrRateLimited (a *ratelimit.Refused), ErrInvalidShare, ErrAlreadyUnsealed,
// ErrNonceMismatch, ErrDuplicateShare, ErrBadShare, or an internal error.
func (c *Ceremony) Submit(ctx context.Context, origin, nonce, key string) (Progress, error) {
	ev := audit.Event{Event: audit.EventUnseal, Origin: origin}
	if err := c.allow(ctx, origin); err != nil {
		return c.finish(ctx, ev, c.holder.Progress(), err)
	}
	share, err := keyring.ParseShare(key)
	if err != nil {
		return c.finish(ctx, ev, c.holder.Progress(), fmt.Errorf("%w: %w", ErrInvalidShare, err))
	}
	defer clear(share)
	before := c.holder.Progress()
	p, err := c.holder.Submit(nonce, share)
	// The share's public id (never the share): the custodian who gave it.
	if n := len(p.ShareIDs); n > 0 && (err == nil || errors.Is(err, ErrBadShare)) {
		ev.Resource = "share " + p.ShareIDs[n-1]
	}
	switch {
	case err == nil && p.Have > 0:
		ev.Reason = fmt.Sprintf("share %d of %d accepted", p.Have, p.Need)
	case err == nil && before.MasterRotated:
		ev.Reason = "keyring re-opened under its rotated master key with shares " + strings.Join(p.ShareIDs, ",")
		c.log.Info("keyring re-opened under its rotated master key", "shares", p.ShareIDs)
	case err == nil:
		ev.Reason = "unsealed with shares " + strings.Join(p.ShareIDs, ",")
		c.log.Info("key service unsealed", "shares", p.ShareIDs)
	case errors.Is(err, ErrBadShare) && len(p.ShareIDs) > 0:
		ev.Reason = "shares " + strings.Join(p.ShareIDs, ",") + " do not open the keyring; round ended"
	}
	return c.finish(ctx, ev, p, err)
}

// Reset ends the round named by nonce.
func (c *Ceremony) Reset(ctx context.Context, origin, nonce string) (Progress, error) {
	ev := audit.Event{Event: audit.EventUnseal, Origin: origin, Reason: "reset"}
	if err := c.allow(ctx, origin); err != nil {
		return c.finish(ctx, ev, c.holder.Progress(), err)
	}
	p, err := c.holder.Reset(nonce)
	if err == nil {
		ev.Reason = "round reset; its shares discarded"
	}
	return c.finish(ctx, ev, p, err)
}

// allow checks the per-address limit first, so one noisy address is stopped
// before it spends the global allowance.
func (c *Ceremony) allow(ctx context.Context, origin string) error {
	for _, l := range []struct {
		key   string
		limit ratelimit.Limit
	}{{origin, c.limits.PerIP}, {"all", c.limits.Global}} {
		err := c.limiter.Check(ctx, l.limit, l.key)
		if errors.Is(err, ratelimit.ErrUnavailable) {
			// Fail closed: an unlimited unseal endpoint is what the limit
			// prevents. Answered as a refusal: the ceremony has nothing
			// else to wait for.
			return fmt.Errorf("%w: %w: %w", ErrRateLimited, &ratelimit.Refused{Limit: l.limit.Name, RetryAfter: time.Minute}, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// finish audits the attempt with its real outcome: success only for a share
// that counted, denied for one refused without effect (limit, wrong round,
// already unsealed), failure for a share that is wrong.
func (c *Ceremony) finish(ctx context.Context, ev audit.Event, p Progress, err error) (Progress, error) {
	ev.Outcome = audit.OutcomeSuccess
	switch {
	case err == nil:
	case errors.Is(err, ErrRateLimited):
		ev.Outcome, ev.Code = audit.OutcomeDenied, "rate_limited"
	case errors.Is(err, ErrAlreadyUnsealed):
		ev.Outcome, ev.Code, ev.Reason = audit.OutcomeDenied, "already_unsealed", "already unsealed; ignored"
	case errors.Is(err, ErrNonceMismatch):
		ev.Outcome, ev.Code = audit.OutcomeDenied, "unseal_nonce_mismatch"
	case errors.Is(err, ErrDuplicateShare):
		ev.Outcome, ev.Code = audit.OutcomeFailure, "unseal_failed"
		ev.Reason = "share given twice in one round"
	case errors.Is(err, ErrWrongShare):
		ev.Outcome, ev.Code = audit.OutcomeFailure, "unseal_failed"
		ev.Reason = "not a share of this keyring's current share set (mistyped, another keyring's, or replaced by a rekey); round kept"
	case errors.Is(err, ErrInvalidShare):
		ev.Outcome, ev.Code = audit.OutcomeFailure, "invalid_field"
	case errors.Is(err, ErrBadShare):
		ev.Outcome, ev.Code = audit.OutcomeFailure, "unseal_failed"
		if ev.Reason == "" {
			ev.Reason = "shares do not open the keyring; round ended"
		}
	default:
		ev.Outcome, ev.Code = audit.OutcomeFailure, "internal"
	}
	if _, aerr := c.audit.Append(ctx, ev); aerr != nil {
		c.log.Error("audit append of unseal failed", "err", aerr)
	}
	return p, err
}
