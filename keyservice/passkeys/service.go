package passkeys

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/admit"
	"github.com/blindgate/blindgate/keyservice/nonce"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Approval modes (-reveal-approval).
const (
	// ModePasskey: every reveal needs an assertion of an approved passkey
	// of the operator, over the reveal's challenge. The default.
	ModePasskey = "passkey"
	// ModeNone: a reveal needs a nonce but no assertion: the key service
	// takes the gateway's word for the operator (the old trust), and the
	// card still goes out only encrypted to the browser key.
	ModeNone = "none"
)

// Lifetimes of the nonces.
const (
	RevealNonceTTL = 2 * time.Minute
	// EnrolNonceTTL is longer: the operator creates the passkey in between.
	EnrolNonceTTL = 5 * time.Minute
)

// Approval refusals; the key service answers each with its code, audits it,
// and decrypts nothing.
var (
	// ErrRequired: no assertion where one is required, or the operator has
	// no approved passkey (passkey_required).
	ErrRequired = errors.New("passkeys: passkey approval required")
	// ErrInvalid: the assertion does not verify for this reveal, or is by
	// another operator's passkey (passkey_invalid).
	ErrInvalid = errors.New("passkeys: assertion invalid")
	// ErrUnknown: the credential is not registered, or pending, or revoked
	// (passkey_unknown).
	ErrUnknown = errors.New("passkeys: credential unknown, pending or revoked")
	// ErrNonce: the nonce is unknown, expired, spent, or bound to another
	// client, operator or token (reveal_nonce_invalid).
	ErrNonce = errors.New("passkeys: nonce invalid")
	// ErrUnavailable: the nonce store or the registry cannot answer.
	ErrUnavailable = errors.New("passkeys: unavailable")
)

// Auditor appends durable audit events.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Config is the service's setup.
type Config struct {
	Mode     string // ModePasskey (default) or ModeNone
	Registry *Registry
	Nonces   nonce.Store
	// Verifier checks assertions and registrations; required with
	// ModePasskey, and for registrations in either mode.
	Verifier *passkey.Verifier
	Audit    Auditor
	Log      *slog.Logger
	Now      func() time.Time
	// Limiter and ChallengeLimit bound the nonces one client can have
	// issued (reveal and enrolment challenges together): each lives in the
	// key zone's store until it expires, so a compromised gateway must not
	// be able to fill that store. Nil Limiter: no limit (tests only). A
	// reveal challenge counts it through Admit, which must count on this
	// Limiter (admit.New(cache, Limiter), as keyservice/app makes it).
	Limiter        ratelimit.Limiter
	ChallengeLimit ratelimit.Limit
	// Admit claims a reveal's jti (Approval.Claim) and takes its nonce,
	// the claim first, in one round trip when both are on one Redis
	// (keyservice/admit); and a reveal challenge's jti with its budget and
	// its nonce's write. Nil: admit.New(nil, Limiter): no replay cache, and
	// a claim is refused.
	Admit admit.Admitter
}

// DefaultChallengeLimit is a client's nonce budget when none is configured:
// ten times the default reveal limit per client (60 a minute), so retries
// and enrolments fit, and at most a few thousand live nonces per client (2
// to 5 minutes each). The key service scales it with -reveal-client-per-minute.
var DefaultChallengeLimit = ratelimit.Limit{Name: "challenge-client", Rate: 600, Period: time.Minute, Burst: 200}

// Service issues nonces, approves reveals with passkeys and registers
// passkeys as pending.
type Service struct {
	cfg      Config
	verifier atomic.Pointer[passkey.Verifier]
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModePasskey
	}
	if cfg.Mode != ModePasskey && cfg.Mode != ModeNone {
		return nil, fmt.Errorf("passkeys: approval mode %q: want passkey or none", cfg.Mode)
	}
	if cfg.Registry == nil || cfg.Nonces == nil || cfg.Audit == nil {
		return nil, errors.New("passkeys: registry, nonce store and audit are required")
	}
	if cfg.Mode == ModePasskey && cfg.Verifier == nil {
		return nil, errors.New("passkeys: approval by passkey needs the relying party (-webauthn-origins)")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ChallengeLimit == (ratelimit.Limit{}) {
		cfg.ChallengeLimit = DefaultChallengeLimit
	}
	if cfg.Admit == nil {
		cfg.Admit = admit.New(nil, cfg.Limiter)
	}
	s := &Service{cfg: cfg}
	if cfg.Verifier != nil {
		s.verifier.Store(cfg.Verifier)
	}
	return s, nil
}

// Mode is the approval mode.
func (s *Service) Mode() string { return s.cfg.Mode }

// Registry is the passkey registry.
func (s *Service) Registry() *Registry { return s.cfg.Registry }

// SetVerifier replaces the relying party (tests whose back office listens
// on a port chosen after the key service started).
func (s *Service) SetVerifier(v *passkey.Verifier) { s.verifier.Store(v) }

func (s *Service) rp() (*passkey.Verifier, error) {
	v := s.verifier.Load()
	if v == nil {
		return nil, fmt.Errorf("%w: no relying party configured (-webauthn-origins)", ErrRequired)
	}
	return v, nil
}

// revealBinding ties a reveal nonce to who asked for what.
func revealBinding(client, actor, token string) string {
	return nonce.Binding("reveal", client, actor, token)
}

func enrolBinding(client, actor string) string { return nonce.Binding("enrol", client, actor) }

// RevealChallenge issues a reveal nonce for actor and token to client, for
// a request whose jti is claimed already (or that has none): see
// ClaimRevealChallenge.
func (s *Service) RevealChallenge(ctx context.Context, client, origin, actor, token string) (wire.RevealChallengeResponse, error) {
	return s.ClaimRevealChallenge(ctx, admit.Claim{}, client, origin, actor, token)
}

// ClaimRevealChallenge issues a reveal nonce for actor and token to
// client. With ModePasskey an operator with no approved passkey is refused
// here (ErrRequired), audited, before any nonce exists. Then, in one round
// trip on Redis (Config.Admit's Issue), in this order: the signed
// request's jti (claim) is claimed, the client's challenge budget counted
// (a *ratelimit.Refused past it) and the nonce written. A request refused
// before that has its jti claimed alone first (admit.ClaimOnly), so a
// replay is a replay whatever it asks. A claim refused is admit.ErrReplay
// or admit.ErrUnavailable: nothing else was done or audited. Without a
// claim (zero) only the budget and the nonce remain.
func (s *Service) ClaimRevealChallenge(ctx context.Context, claim admit.Claim, client, origin, actor, token string) (wire.RevealChallengeResponse, error) {
	if err := (wire.RevealChallengeRequest{Actor: actor, Token: token}).Validate(); err != nil {
		if cerr := admit.ClaimOnly(ctx, s.cfg.Admit, claim); cerr != nil {
			return wire.RevealChallengeResponse{}, cerr
		}
		return wire.RevealChallengeResponse{}, err
	}
	out := wire.RevealChallengeResponse{PasskeyRequired: s.cfg.Mode == ModePasskey, Credentials: []string{}}
	if v := s.verifier.Load(); v != nil {
		out.RPID = v.RP().ID
	}
	if s.cfg.Mode == ModePasskey {
		if _, err := s.cfg.Registry.ReloadIfChanged(); err != nil {
			s.cfg.Log.Error("passkey registry reload failed; using the registry in force", "err", err)
		}
		for _, e := range s.cfg.Registry.Approved(actor) {
			if len(out.Credentials) < wire.MaxCredentials {
				out.Credentials = append(out.Credentials, e.ID())
			}
		}
		if len(out.Credentials) == 0 {
			if cerr := admit.ClaimOnly(ctx, s.cfg.Admit, claim); cerr != nil {
				return wire.RevealChallengeResponse{}, cerr
			}
			s.denied(ctx, audit.Event{Event: audit.EventRevealDenied, Client: client, Actor: actor, Origin: origin, Resource: token}, "passkey_required")
			return wire.RevealChallengeResponse{}, fmt.Errorf("%w: the operator has no approved passkey", ErrRequired)
		}
	}
	n, err := nonce.New(wire.RevealNoncePrefix)
	if err != nil {
		return wire.RevealChallengeResponse{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err := s.issue(ctx, claim, client, n, revealBinding(client, actor, token), RevealNonceTTL); err != nil {
		return wire.RevealChallengeResponse{}, err
	}
	out.Nonce, out.ExpiresAt = n, s.cfg.Now().Add(RevealNonceTTL).Unix()
	return out, nil
}

// issue claims claim, counts one nonce against client's budget and writes
// nonce n (Config.Admit's Issue: one round trip on Redis). Refused past the
// budget (*ratelimit.Refused, 429) and when the limiter or the store
// cannot answer (ErrUnavailable): no budget, no nonce. A claim refused is
// admit's error.
func (s *Service) issue(ctx context.Context, claim admit.Claim, client, n, binding string, ttl time.Duration) error {
	var steps []ratelimit.Step
	if s.cfg.Limiter != nil {
		steps = []ratelimit.Step{ratelimit.CheckStep(s.cfg.ChallengeLimit, client)}
	}
	gate := ratelimit.Gate{Limiter: s.cfg.Limiter, Unavailable: ErrUnavailable}
	res, stored, err := s.cfg.Admit.Issue(ctx, claim, ratelimit.Takes(steps), s.cfg.Nonces, n, binding, ttl)
	switch {
	case errors.Is(err, admit.ErrReplay), errors.Is(err, admit.ErrUnavailable):
		return err
	case errors.Is(err, ratelimit.ErrUnavailable), errors.Is(err, ratelimit.ErrInvalidLimit):
		return gate.Failed(err)
	case err != nil:
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if _, err := gate.Judge(steps, res); err != nil {
		return err
	}
	if !stored {
		return fmt.Errorf("%w: the nonce was not stored", ErrUnavailable)
	}
	return nil
}

// Approval is what a reveal's approval is checked against, from the
// request: the challenge is recomputed from these fields, never taken from
// the caller.
type Approval struct {
	Actor, Token, Reason, Nonce string
	JKT                         string // wire.JWKThumbprint of the browser key
	Assertion                   []byte
	// Claim is the signed request's jti, still to be claimed: Approve
	// claims it with the nonce's take (Config.Admit), before anything
	// else. Zero when the caller claimed it already.
	Claim admit.Claim
}

// Approve checks a reveal's approval, in order: the request's jti claimed
// (a.Claim) and the nonce taken, in one round trip (spent whatever
// follows; bound to client, actor and token), then with ModePasskey the
// assertion's credential (registered, approved, the operator's) and the
// assertion over wire.RevealChallenge. It returns the credential id
// (base64url) that approved, and also with an error once the assertion
// named one, for the audit record. A claim refused is admit's error
// (admit.ErrReplay, admit.ErrUnavailable), the nonce untouched or its
// fate unknown: the request was not admitted.
func (s *Service) Approve(ctx context.Context, client string, a Approval) (string, error) {
	take := func(ctx context.Context, n string) (string, error) {
		return s.cfg.Admit.Take(ctx, a.Claim, s.cfg.Nonces, n)
	}
	if err := nonce.RedeemWith(ctx, take, a.Nonce, revealBinding(client, a.Actor, a.Token)); err != nil {
		if errors.Is(err, admit.ErrReplay) || errors.Is(err, admit.ErrUnavailable) {
			return "", err
		}
		return "", nonceError(err)
	}
	if s.cfg.Mode == ModeNone {
		return "", nil
	}
	if len(a.Assertion) == 0 {
		return "", fmt.Errorf("%w: no assertion", ErrRequired)
	}
	v, err := s.rp()
	if err != nil {
		return "", err
	}
	id, err := passkey.AssertionCredentialID(a.Assertion)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	cred := base64.RawURLEncoding.EncodeToString(id)
	if _, err := s.cfg.Registry.ReloadIfChanged(); err != nil {
		s.cfg.Log.Error("passkey registry reload failed; using the registry in force", "err", err)
	}
	e, ok := s.cfg.Registry.Lookup(id)
	switch {
	case !ok:
		return cred, fmt.Errorf("%w: not registered", ErrUnknown)
	case e.Actor != a.Actor:
		return cred, fmt.Errorf("%w: the credential is another operator's", ErrInvalid)
	case e.Status != wire.PasskeyApproved:
		return cred, fmt.Errorf("%w: the credential is %s", ErrUnknown, e.Status)
	}
	challenge := wire.RevealChallenge(a.Nonce, a.Token, a.Reason, a.JKT)
	count, err := v.Verify(challenge, e.Credential, a.Assertion)
	if err != nil {
		return cred, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if count != e.Credential.SignCount {
		if err := s.cfg.Registry.SetSignCount(id, e.Credential.SignCount, count); err != nil {
			switch {
			case errors.Is(err, passkey.ErrInvalid):
				return cred, fmt.Errorf("%w: %w", ErrInvalid, err)
			case errors.Is(err, ErrState), errors.Is(err, ErrNotFound):
				return cred, fmt.Errorf("%w: %w", ErrUnknown, err) // revoked meanwhile
			}
			return cred, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return cred, nil
}

func nonceError(err error) error {
	if errors.Is(err, nonce.ErrUnavailable) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", ErrNonce, err)
}

// PasskeyChallenge issues a registration nonce for actor to client.
func (s *Service) PasskeyChallenge(ctx context.Context, client, actor string) (wire.PasskeyChallengeResponse, error) {
	if err := (wire.PasskeyChallengeRequest{Actor: actor}).Validate(); err != nil {
		return wire.PasskeyChallengeResponse{}, err
	}
	v, err := s.rp()
	if err != nil {
		return wire.PasskeyChallengeResponse{}, err
	}
	n, err := nonce.New(wire.PasskeyNoncePrefix)
	if err != nil {
		return wire.PasskeyChallengeResponse{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// The route's middleware has claimed the jti: the budget and the
	// nonce remain, one round trip on Redis.
	if err := s.issue(ctx, admit.Claim{}, client, n, enrolBinding(client, actor), EnrolNonceTTL); err != nil {
		return wire.PasskeyChallengeResponse{}, err
	}
	return wire.PasskeyChallengeResponse{
		Nonce: n, ExpiresAt: s.cfg.Now().Add(EnrolNonceTTL).Unix(), RPID: v.RP().ID,
		UserHandle: base64.RawURLEncoding.EncodeToString(wire.UserHandle(actor)),
	}, nil
}

// Register verifies a registration made over EnrolChallenge(nonce, actor)
// with the operator's user handle and records it as PENDING: it approves
// nothing until `keyservice passkeys approve`. Every outcome is audited
// (passkey.register).
func (s *Service) Register(ctx context.Context, client, origin string, req wire.PasskeyRegisterRequest) (wire.PasskeyRegisterResponse, error) {
	ev := audit.Event{Event: audit.EventPasskeyRegister, Client: client, Actor: req.Actor, Origin: origin}
	out, err := s.register(ctx, client, req, &ev)
	if err != nil {
		s.denied(ctx, ev, CodeOf(err))
		return wire.PasskeyRegisterResponse{}, err
	}
	ev.Outcome = audit.OutcomeSuccess
	if _, err := s.cfg.Audit.Append(ctx, ev); err != nil {
		// The pending entry exists but approves nothing; the admin sees it
		// in `passkeys list` all the same.
		s.cfg.Log.Error("audit of a passkey registration failed", "err", err)
	}
	return out, nil
}

func (s *Service) register(ctx context.Context, client string, req wire.PasskeyRegisterRequest, ev *audit.Event) (wire.PasskeyRegisterResponse, error) {
	if err := req.Validate(); err != nil {
		if wire.ValidateID("actor", req.Actor) != nil {
			ev.Actor = ""
		}
		return wire.PasskeyRegisterResponse{}, err
	}
	v, err := s.rp()
	if err != nil {
		return wire.PasskeyRegisterResponse{}, err
	}
	if err := nonce.Redeem(ctx, s.cfg.Nonces, req.Nonce, enrolBinding(client, req.Actor)); err != nil {
		return wire.PasskeyRegisterResponse{}, nonceError(err)
	}
	cred, err := v.Register(wire.EnrolChallenge(req.Nonce, req.Actor), wire.UserHandle(req.Actor), req.Attestation)
	if err != nil {
		return wire.PasskeyRegisterResponse{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	e := Entry{Actor: req.Actor, Username: req.Username, Client: client, Credential: cred}
	ev.Credential = e.ID()
	ev.Reason = "fingerprint=" + e.Fingerprint() + " aaguid=" + e.AAGUID() + " username=" + req.Username
	if err := s.cfg.Registry.AddPending(e); err != nil {
		if errors.Is(err, ErrDuplicate) {
			return wire.PasskeyRegisterResponse{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return wire.PasskeyRegisterResponse{}, err
	}
	s.cfg.Log.Info("passkey registered, pending approval in the key zone", "actor", req.Actor, "fingerprint", e.Fingerprint())
	return wire.PasskeyRegisterResponse{Credential: e.ID(), Fingerprint: e.Fingerprint(), Status: wire.PasskeyPending}, nil
}

// List is the actor's passkeys.
func (s *Service) List(_ context.Context, actor string) (wire.PasskeyListResponse, error) {
	if err := (wire.PasskeyListRequest{Actor: actor}).Validate(); err != nil {
		return wire.PasskeyListResponse{}, err
	}
	if _, err := s.cfg.Registry.ReloadIfChanged(); err != nil {
		s.cfg.Log.Error("passkey registry reload failed; using the registry in force", "err", err)
	}
	out := wire.PasskeyListResponse{Credentials: []wire.PasskeyInfo{}}
	for _, e := range s.cfg.Registry.List(actor) {
		out.Credentials = append(out.Credentials, e.Info())
	}
	return out, nil
}

// denied writes a refusal (best effort: the refusal stands without it).
func (s *Service) denied(ctx context.Context, ev audit.Event, code string) {
	ev.Outcome, ev.Code = audit.OutcomeDenied, code
	if _, err := s.cfg.Audit.Append(ctx, ev); err != nil {
		s.cfg.Log.Error("audit of a refusal failed", "event", ev.Event, "err", err)
	}
}

// CodeOf is the stable code (docs/contracts.md) of an error of this
// package, for answers and audit records; "internal" when none applies.
func CodeOf(err error) string {
	switch {
	case errors.Is(err, ErrNonce):
		return "reveal_nonce_invalid"
	case errors.Is(err, ErrRequired):
		return "passkey_required"
	case errors.Is(err, ErrUnknown):
		return "passkey_unknown"
	case errors.Is(err, ErrInvalid):
		return "passkey_invalid"
	case errors.Is(err, ErrTooMany):
		return "rate_limited"
	case errors.Is(err, wire.ErrPANInText):
		return "pan_in_text"
	case errors.Is(err, wire.ErrInvalidRequest):
		return "invalid_field"
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrBusy):
		return "unavailable"
	}
	return "internal"
}
