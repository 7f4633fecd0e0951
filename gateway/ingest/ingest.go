// Package ingest is the checkout's domain: a merchant opens a checkout
// session (Open, open.go), and the shopper's submission becomes a token
// (Submit). The gateway never sees the card: it forwards the ciphertext to
// the key service's signed inspect, and stores the ciphertext with the
// masked answer.
//
// Order matters: the cheap card-testing defences (per-IP and per-session
// limits, the session's attempt budget) run before the key service is asked
// anything, and the token is stored in one atomic write with its ciphertext
// before the session is marked complete, so a crash in between leaves either
// no token or a whole one. The rate limits run before the attempt is
// counted, so a refusal by a limiter costs the shopper no attempt. Counting
// the attempt also claims the session for this one submission until it
// completes or fails: a concurrent submission is refused with
// sessions.ErrBusy before inspect, and the token is stored under an
// idempotency key of the session alone, so a session mints exactly one
// token however its submissions race (even one whose claim lapsed).
//
// The gateway's audit trail gets one token.create record per minted token,
// written and synced before the token is stored, with the token's id
// chosen beforehand: a crash at any point leaves no token without its
// record. If the record cannot be written the submission is refused
// (ErrUnavailable) and nothing is stored: fail closed, as the key service
// refuses to decrypt without its record. The converse does not hold: a
// crash between the record and the store leaves a record of a token that
// was never stored, and a store that fails or answers the session's other
// token is followed by a token.create failure record for that id (best
// effort). The token store says which tokens exist; the trail says that
// each of them was recorded. A refused submission, and a retry answered
// with the token already minted, write nothing.
package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose/compact"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Errors the HTTP layer maps to codes the checkout page understands. A
// refusal by a limit is a *ratelimit.Refused (its Retry-After) that also
// matches ErrLimited.
var (
	ErrInvalid     = errors.New("ingest: invalid submission")
	ErrLimited     = errors.New("ingest: rate limited")
	ErrUnavailable = errors.New("ingest: dependency unavailable")
)

// Inspector is the key service's signed inspect.
type Inspector interface {
	Inspect(ctx context.Context, req wire.InspectRequest) (wire.InspectResponse, error)
}

// Sessions is the part of the checkout-session store ingest uses.
type Sessions interface {
	Create(ctx context.Context, s sessions.Session) (sessions.Session, error)
	Get(ctx context.Context, id string) (sessions.Session, error)
	Attempt(ctx context.Context, id, claim string) (sessions.Session, error)
	AttemptLimited(ctx context.Context, l ratelimit.Limiter, takes []ratelimit.Take, id, claim string) ([]ratelimit.Result, sessions.Session, error)
	Release(ctx context.Context, id, claim string) error
	Complete(ctx context.Context, id, token string) error
}

// Tokens is the part of the token store ingest uses.
type Tokens interface {
	Put(ctx context.Context, t tokens.Token, cvcJWE string, cvcTTL time.Duration, idempotencyKey string) (tokens.Token, bool, error)
	Lookup(ctx context.Context, id string) (tokens.Token, error)
}

// Auditor is the gateway's audit trail.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Events hears of each minted token (gateway/webhooks: token.created). It
// is called once per token, after its audit record, and must not block the
// shopper long nor fail the submission: the token is committed.
type Events interface {
	TokenCreated(ctx context.Context, t tokens.Token)
}

// Limits are the card-testing defences.
type Limits struct {
	PerIP      ratelimit.Limit
	PerSession ratelimit.Limit
}

// DefaultLimits allow a shopper a few corrections, not a card-testing run.
func DefaultLimits() Limits {
	return Limits{
		PerIP:      ratelimit.Limit{Name: "submit-ip", Rate: 20, Period: time.Minute, Burst: 10},
		PerSession: ratelimit.Limit{Name: "submit-session", Rate: 6, Period: time.Minute, Burst: 3},
	}
}

// Service ingests submissions.
type Service struct {
	sessions  Sessions
	tokens    Tokens
	inspector Inspector
	limiter   ratelimit.Gate
	limits    Limits
	cvcTTL    time.Duration
	now       func() time.Time
	audit     Auditor
	events    Events
	log       *slog.Logger
}

// Option configures a Service.
type Option func(*Service)

// WithClock sets the clock of token times and session expiries (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithAudit records each minted token in a; a failed write is logged to log.
func WithAudit(a Auditor, log *slog.Logger) Option {
	return func(s *Service) { s.audit, s.log = a, log }
}

// WithEvents tells e of each minted token.
func WithEvents(e Events) Option { return func(s *Service) { s.events = e } }

// New returns a Service; cvcTTL bounds how long a CVC ciphertext is kept.
func New(s Sessions, t Tokens, in Inspector, l ratelimit.Limiter, limits Limits, cvcTTL time.Duration, opts ...Option) *Service {
	if cvcTTL <= 0 {
		cvcTTL = 10 * time.Minute
	}
	svc := &Service{sessions: s, tokens: t, inspector: in, limiter: ratelimit.Gate{Limiter: l, Limited: ErrLimited, Unavailable: ErrUnavailable}, limits: limits, cvcTTL: cvcTTL, now: time.Now}
	for _, o := range opts {
		o(svc)
	}
	if svc.log == nil {
		svc.log = slog.New(slog.DiscardHandler)
	}
	return svc
}

// Submission is what the checkout page posts.
type Submission struct {
	SessionID string
	CardJWE   string
	CVCJWE    string
	ClientIP  string
}

// Validate checks shape only, with the one ciphertext shape rule
// (compact.CheckJWE) the key service applies too: the gateway cannot and
// must not look inside.
func (s Submission) Validate() error {
	if err := compact.CheckJWE(s.CardJWE); err != nil {
		return fmt.Errorf("%w: card_jwe must be a compact JWE: %w", ErrInvalid, err)
	}
	if s.CVCJWE != "" {
		if err := compact.CheckJWE(s.CVCJWE); err != nil {
			return fmt.Errorf("%w: cvc_jwe must be a compact JWE: %w", ErrInvalid, err)
		}
	}
	return nil
}

// Submit stores the card ciphertext and returns its token.
func (svc *Service) Submit(ctx context.Context, sub Submission) (tokens.Token, error) {
	if err := sub.Validate(); err != nil {
		return tokens.Token{}, err
	}
	if !sessions.ValidID(sub.SessionID) {
		// Counted by the per-IP limit all the same, but never the
		// per-session one: no caller-chosen string becomes a limiter key.
		if err := svc.limiter.Check(ctx, svc.limits.PerIP, sub.ClientIP); err != nil {
			return tokens.Token{}, err
		}
		return tokens.Token{}, fmt.Errorf("ingest: session: %w", sessions.ErrNotFound)
	}
	// The per-IP and per-session limits, then the attempt, which claims the
	// session for this submission: one step (one Redis round trip), and
	// only if the limits allow it, so a submission they refuse uses up no
	// attempt.
	steps := []ratelimit.Step{ratelimit.CheckStep(svc.limits.PerIP, sub.ClientIP), ratelimit.CheckStep(svc.limits.PerSession, sub.SessionID)}
	claim := submissionKey(sub)
	res, sess, err := svc.sessions.AttemptLimited(ctx, svc.limiter.Limiter, ratelimit.Takes(steps), sub.SessionID, claim)
	if errors.Is(err, ratelimit.ErrUnavailable) {
		return tokens.Token{}, svc.limiter.Failed(err)
	}
	if _, lerr := svc.limiter.Judge(steps, res); lerr != nil {
		return tokens.Token{}, lerr
	}
	if errors.Is(err, sessions.ErrCompleted) {
		// A retry of the submission that completed the session (the answer
		// was lost on the way back) gets the same token; anything else is refused.
		return svc.replayed(ctx, sub)
	}
	if err != nil {
		return tokens.Token{}, fmt.Errorf("ingest: session: %w", err)
	}
	t, err := svc.mint(ctx, sess, sub)
	if err != nil {
		// Free the session at once for the shopper's next try; the claim
		// would lapse by itself anyway. Not under ctx: a cancelled request
		// must still release.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = svc.sessions.Release(rctx, sess.ID, claim)
		cancel()
		return tokens.Token{}, err
	}
	return t, nil
}

// mint runs while the submission holds the session's claim.
func (svc *Service) mint(ctx context.Context, sess sessions.Session, sub Submission) (tokens.Token, error) {
	// The key service validates the CVC ciphertext with the card; it is
	// stored below only once inspect has accepted both.
	m, err := svc.inspector.Inspect(ctx, wire.InspectRequest{JWE: sub.CardJWE, Session: sess.ID, Merchant: sess.MerchantID, CVCJWE: sub.CVCJWE})
	if err != nil {
		return tokens.Token{}, fmt.Errorf("ingest: inspect: %w", err)
	}
	t := tokens.Token{
		MerchantID: sess.MerchantID, SessionID: sess.ID, JWE: sub.CardJWE, Kid: m.Kid,
		Brand: m.Brand, BIN: m.BIN, Last4: m.Last4, ExpMonth: m.ExpMonth, ExpYear: m.ExpYear,
		Fingerprint: m.Fingerprint, CreatedAt: svc.now().UTC(), Binding: m.Binding,
		Reference: sess.Reference, Metadata: sess.Metadata,
	}
	if t.ID, err = tokens.NewID(); err != nil {
		return tokens.Token{}, fmt.Errorf("%w: token id: %w", ErrUnavailable, err)
	}
	if err := svc.recordMint(ctx, t, sub.ClientIP); err != nil {
		return tokens.Token{}, err
	}
	stored, completed, err := svc.store(ctx, t, sub.CVCJWE, sess.ID)
	if err != nil {
		svc.recordNotStored(ctx, t, sub.ClientIP, codeStoreFailed)
		return tokens.Token{}, fmt.Errorf("%w: store token: %w", ErrUnavailable, err)
	}
	if stored.ID != t.ID {
		// The session's one token was minted before (by an attempt whose
		// claim lapsed mid-flight, or whose Complete failed), and the
		// session is marked with it; it has its own record. The same
		// submission gets it; another gets no token of its own.
		svc.recordNotStored(ctx, t, sub.ClientIP, codeSessionHasToken)
		if stored.JWE != sub.CardJWE {
			return tokens.Token{}, fmt.Errorf("ingest: session: %w", sessions.ErrCompleted)
		}
		return stored, nil
	}
	if completed != nil && !errors.Is(completed, sessions.ErrCompleted) {
		// The token is stored and on record; the shopper's retry finds it
		// through the store's idempotency key.
		return tokens.Token{}, fmt.Errorf("%w: complete session: %w", ErrUnavailable, completed)
	}
	t = stored
	if svc.events != nil {
		svc.events.TokenCreated(ctx, t)
	}
	return t, nil
}

// store writes the token under the session's idempotency key, then
// completes the session with the token the store answered (this one, or
// the session's first): one script on Redis when both stores can (the
// token and the session's completion then happen together or not at all),
// one after the other otherwise. completed is Complete's answer.
func (svc *Service) store(ctx context.Context, t tokens.Token, cvcJWE, sessionID string) (stored tokens.Token, completed, err error) {
	pt, ok1 := svc.tokens.(interface {
		PutThen(ctx context.Context, t tokens.Token, cvcJWE string, cvcTTL time.Duration, idempotencyKey string, then redisx.Then) (tokens.Token, bool, any, error)
	})
	ct, ok2 := svc.sessions.(interface {
		CompleteThen(id string) (redisx.Then, func(reply any) error, bool)
	})
	if ok1 && ok2 {
		if then, read, ok := ct.CompleteThen(sessionID); ok {
			stored, _, reply, err := pt.PutThen(ctx, t, cvcJWE, svc.cvcTTL, sessionKey(sessionID), then)
			if err != nil {
				return tokens.Token{}, nil, err
			}
			return stored, read(reply), nil
		}
	}
	stored, _, err = svc.tokens.Put(ctx, t, cvcJWE, svc.cvcTTL, sessionKey(sessionID))
	if err != nil {
		return tokens.Token{}, nil, err
	}
	return stored, svc.sessions.Complete(ctx, sessionID, stored.ID), nil
}

// Codes of a token.create failure record: the id on record was not stored.
const (
	codeStoreFailed     = "store_failed"
	codeSessionHasToken = "session_has_token"
)

// recordMint writes t's token.create record before t is stored (see the
// package comment); an error refuses the submission.
func (svc *Service) recordMint(ctx context.Context, t tokens.Token, clientIP string) error {
	if svc.audit == nil {
		return nil
	}
	e := audit.Event{Event: audit.EventTokenCreate, Client: t.MerchantID, Resource: t.ID, Kid: t.Kid, Origin: clientIP, Outcome: audit.OutcomeSuccess}
	if _, err := svc.audit.Append(ctx, e); err != nil {
		svc.log.ErrorContext(ctx, "gateway audit append failed: submission refused, no token stored", "event", e.Event, "err", err)
		return fmt.Errorf("%w: audit: %w", ErrUnavailable, err)
	}
	return nil
}

// recordNotStored follows t's record with one saying t was not stored.
// Best effort: the store is the truth for which tokens exist.
func (svc *Service) recordNotStored(ctx context.Context, t tokens.Token, clientIP, code string) {
	if svc.audit == nil {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	e := audit.Event{Event: audit.EventTokenCreate, Client: t.MerchantID, Resource: t.ID, Kid: t.Kid, Origin: clientIP, Outcome: audit.OutcomeFailure, Code: code}
	if _, err := svc.audit.Append(actx, e); err != nil {
		svc.log.ErrorContext(ctx, "gateway audit append failed", "event", e.Event, "code", code, "err", err)
	}
}

func (svc *Service) replayed(ctx context.Context, sub Submission) (tokens.Token, error) {
	sess, err := svc.sessions.Get(ctx, sub.SessionID)
	if err != nil {
		return tokens.Token{}, fmt.Errorf("ingest: session: %w", err)
	}
	t, err := svc.tokens.Lookup(ctx, sess.Token)
	if err == nil && t.JWE == sub.CardJWE {
		return t, nil
	}
	return tokens.Token{}, fmt.Errorf("ingest: session: %w", sessions.ErrCompleted)
}

// submissionKey identifies one submission: the same ciphertext for the same
// session is the same submission, however often it is retried. It names the
// session's claim.
func submissionKey(sub Submission) string {
	h := sha256.New()
	h.Write([]byte(sub.SessionID))
	h.Write([]byte{0})
	h.Write([]byte(sub.CardJWE))
	return hex.EncodeToString(h.Sum(nil))
}

// sessionKey is the token store's idempotency key of a checkout session: one
// per session, so the store itself refuses a second token for it. The
// prefix keeps it apart from any other kind of idempotency key.
func sessionKey(sessionID string) string {
	h := sha256.Sum256([]byte("checkout-session\x00" + sessionID))
	return hex.EncodeToString(h[:])
}
