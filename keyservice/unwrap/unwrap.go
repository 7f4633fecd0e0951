// Package unwrap is the key service's domain: the only code in Blindgate that
// turns a card ciphertext back into a card. It knows nothing of HTTP; the api
// package authenticates the caller and hands it a Meta.
//
// Ordering invariants, each enforced here rather than in handlers:
//   - limits are checked before any private-key operation, and a limiter that
//     cannot answer (Redis down) refuses the request: never decrypt unlimited;
//   - a reveal is approved (nonce and the operator's passkey, checked here
//     by keyservice/passkeys) and audited (written and synced) before the
//     ciphertext is decrypted: no approval and no audit record, no reveal;
//     its answer is the card encrypted to the operator's browser key, never
//     the card in clear;
//   - plaintext buffers are wiped as soon as the fields needed are copied out;
//   - an inspect answers only after the enumeration guard counted the card:
//     a caller looping over candidate middle digits for a known card (first
//     6, last 4) is refused and alarmed before it can find the fingerprint
//     (docs/enumeration-guard.md);
//   - a CVC ciphertext is accepted only once it decrypted, for the same
//     session, fresh, with the digit count of the card's brand.
package unwrap

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/admit"
	"github.com/blindgate/blindgate/keyservice/card"
	"github.com/blindgate/blindgate/keyservice/forward"
	"github.com/blindgate/blindgate/keyservice/guard"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/passkeys"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Domain errors; the api package maps them to codes.
var (
	ErrSealed          = errors.New("unwrap: sealed")
	ErrInvalidJWE      = errors.New("unwrap: invalid jwe")
	ErrUnsupportedAlg  = errors.New("unwrap: unsupported algorithm")
	ErrUnknownKey      = errors.New("unwrap: unknown or retired key")
	ErrSessionMismatch = errors.New("unwrap: session mismatch")
	ErrUndecryptable   = errors.New("unwrap: undecryptable")
	ErrStale           = errors.New("unwrap: stale ciphertext")
	ErrInvalidRequest  = errors.New("unwrap: invalid request")
	// ErrLimited: a limit refused the request; the error is a
	// *ratelimit.Refused naming the limit and when to retry.
	ErrLimited     = errors.New("unwrap: rate limited")
	ErrUnavailable = errors.New("unwrap: dependency unavailable")
	ErrAudit       = errors.New("unwrap: audit unavailable")
	// ErrCVCInvalid: the CVC ciphertext was refused (garbage, another
	// session, stale, or the wrong digit count for the brand).
	ErrCVCInvalid = errors.New("unwrap: cvc invalid")
	// ErrEnumeration: the enumeration guard refused the card.
	ErrEnumeration = errors.New("unwrap: card enumeration")
	// ErrBrowserKey: the reveal's browser key is not a P-256 public key on
	// the curve (browser_key_invalid).
	ErrBrowserKey = errors.New("unwrap: browser key invalid")
	// ErrNotBound: the merchant binding given with a stored ciphertext is
	// not the one the key service issued for that merchant and ciphertext.
	// One error for rewrap and forward, so both answer card_not_bound.
	ErrNotBound = forward.ErrNotBound
	// ErrNotAdmitted: the signed request's jti (Meta.Claim) could not be
	// claimed, because it was claimed before (then the error also matches
	// ErrReplay) or because the replay cache did not answer. The request
	// never got in: no inspect or reveal is recorded, and the caller
	// records the refusal as it records a bad signature.
	ErrNotAdmitted = errors.New("unwrap: request not admitted")
	// ErrReplay: the signed request was replayed (with ErrNotAdmitted).
	ErrReplay = errors.New("unwrap: request replayed")
)

// EnumerationError is a refusal by the enumeration guard; RetryAfter is the
// guard's window, after which the bucket has emptied.
type EnumerationError struct{ RetryAfter time.Duration }

func (e *EnumerationError) Error() string { return "unwrap: card enumeration suspected" }
func (e *EnumerationError) Unwrap() error { return ErrEnumeration }

// Keys gives the loaded keyring, or an error wrapping ErrSealed-like state.
type Keys interface {
	Keyring() (*keyring.Keyring, error)
}

// Auditor appends durable audit events.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Meta says who asks and from where; it comes from the verified signature.
type Meta struct {
	Client string
	Origin string
	// Claim, when set, is the request's jti, still to be claimed: Inspect
	// claims it together with its limits, in one round trip (admit), before
	// anything else is done for the request; Reveal has its approval claim
	// it together with the nonce's take, its first effect. Zero when the
	// caller claimed it already.
	Claim admit.Claim
}

// Masked is what inspect returns: never the PAN.
type Masked struct {
	Kid, Brand, BIN, Last4 string
	ExpMonth, ExpYear      int
	Fingerprint            string
	// Binding ties the inspected ciphertext to the merchant
	// (keyring.Binding): what a forward of it must present.
	Binding string
}

// Limits are the rate limits of the service. Reveal limits exist per actor
// and per client over a short and a daily window. Inspect volume is watched
// per client and per merchant over a day: an alarm at AlarmDailyFraction and
// at exhaustion, and a refusal only with RefuseInspectVolume (a busy day must
// not stop a shop; the enumeration guard is what refuses an attack).
type Limits struct {
	InspectPerClient     ratelimit.Limit
	InspectClientDaily   ratelimit.Limit
	InspectMerchantDaily ratelimit.Limit
	RefuseInspectVolume  bool
	RevealActorShort     ratelimit.Limit
	RevealActorDaily     ratelimit.Limit
	RevealClientShort    ratelimit.Limit
	RevealClientDaily    ratelimit.Limit
	RewrapPerClient      ratelimit.Limit
	AlarmDailyFraction   float64 // alarm once an actor has used this share of the daily limit
}

// DefaultLimits are conservative: a support agent reveals a handful of cards a
// day, never hundreds.
func DefaultLimits() Limits {
	return Limits{
		InspectPerClient:     ratelimit.Limit{Name: "inspect-client", Rate: 2000, Period: time.Second, Burst: 4000},
		InspectClientDaily:   ratelimit.Limit{Name: "inspect-client-daily", Rate: 1_000_000, Period: 24 * time.Hour, Burst: 1_000_000},
		InspectMerchantDaily: ratelimit.Limit{Name: "inspect-merchant-daily", Rate: 50_000, Period: 24 * time.Hour, Burst: 50_000},
		RevealActorShort:     ratelimit.Limit{Name: "reveal-actor-short", Rate: 5, Period: time.Minute, Burst: 5},
		RevealActorDaily:     ratelimit.Limit{Name: "reveal-actor-daily", Rate: 50, Period: 24 * time.Hour, Burst: 50},
		RevealClientShort:    ratelimit.Limit{Name: "reveal-client-short", Rate: 60, Period: time.Minute, Burst: 60},
		RevealClientDaily:    ratelimit.Limit{Name: "reveal-client-daily", Rate: 1000, Period: 24 * time.Hour, Burst: 1000},
		RewrapPerClient:      ratelimit.Limit{Name: "rewrap-client", Rate: 500, Period: time.Second, Burst: 1000},
		AlarmDailyFraction:   0.8,
	}
}

// Guard is the enumeration guard's policy: refuse once more than Max
// distinct cards share one (merchant, first 6, last 4) within Window.
type Guard struct {
	Counter guard.Counter
	Window  time.Duration
	Max     int
}

// Default guard policy; docs/enumeration-guard.md derives it.
const (
	DefaultGuardWindow = 24 * time.Hour
	DefaultGuardMax    = 8
)

// Config holds the service's settings.
type Config struct {
	Freshness time.Duration // max age of a ciphertext at inspect (first use)
	Skew      time.Duration // tolerated clock skew for iat in the future
	Limits    Limits
	Guard     Guard
	Masking   card.Masking
	Now       func() time.Time
	// Admit claims a request's jti with its inspect limits (Meta.Claim),
	// or alone for a request refused before (ClaimOnly); a reveal's claim
	// is its Approver's, with the nonce. Nil: the limiter alone, and a
	// Meta with a claim is refused (no replay cache to claim it in).
	Admit admit.Admitter
	// BindLegacy makes a rewrap without a merchant binding issue one for the
	// merchant it names: the migration of tokens stored before bindings
	// existed, for a short window after upgrading. While it is on, a holder
	// of the rewrap key can bind any stored card to any merchant.
	BindLegacy bool
	// Approver checks every reveal's approval (keyservice/passkeys); without
	// one every reveal is refused.
	Approver Approver
}

// Service unwraps card ciphertexts for authorized callers.
type Service struct {
	keys    Keys
	audit   Auditor
	limiter ratelimit.Gate
	admit   admit.Admitter
	log     *slog.Logger
	cfg     Config
	// decrypt is the one use of a private key: every card and CVC
	// ciphertext is opened through it. A seam for the package's tests,
	// which watch it beside the auditor to prove the order of the two
	// (nothing decrypted before a reveal's audit record is durable, nothing
	// at all when it cannot be written).
	decrypt func(*jose.JWE, crypto.PrivateKey) ([]byte, error)
}

// New returns a Service. All dependencies are required; cfg.Guard.Counter
// defaults to an in-memory guard (one instance only).
func New(keys Keys, aud Auditor, limiter ratelimit.Limiter, log *slog.Logger, cfg Config) *Service {
	if cfg.Freshness <= 0 {
		cfg.Freshness = 15 * time.Minute
	}
	if cfg.Skew <= 0 {
		cfg.Skew = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	if cfg.Guard.Counter == nil {
		cfg.Guard.Counter = guard.NewMemory(cfg.Now, 0)
	}
	if cfg.Guard.Window <= 0 {
		cfg.Guard.Window = DefaultGuardWindow
	}
	if cfg.Guard.Max <= 0 {
		cfg.Guard.Max = DefaultGuardMax
	}
	gate := ratelimit.Gate{Limiter: limiter, Limited: ErrLimited, Unavailable: ErrUnavailable}
	adm := cfg.Admit
	if adm == nil {
		adm = admit.New(nil, limiter)
	}
	return &Service{keys: keys, audit: aud, limiter: gate, admit: adm, log: log, cfg: cfg, decrypt: (*jose.JWE).Decrypt}
}

// Resource names a ciphertext in the audit trail without revealing anything
// about it: a short prefix of its SHA-256.
func Resource(jwe string) string {
	sum := sha256.Sum256([]byte(jwe))
	return "jwe:" + hex.EncodeToString(sum[:8])
}

// InspectInput is one inspect: the card ciphertext, the checkout session it
// is bound to, the merchant it is captured for, and optionally the CVC
// ciphertext to validate.
type InspectInput struct {
	JWE, Session, Merchant, CVCJWE string
}

// Inspect decrypts a freshly captured card, validates it (and its CVC when
// given), and returns its masked form and merchant-scoped fingerprint. A
// request it does not admit (ErrNotAdmitted) is not recorded here.
func (s *Service) Inspect(ctx context.Context, m Meta, in InspectInput) (Masked, error) {
	ev := audit.Event{Event: audit.EventInspect, Client: m.Client, Origin: m.Origin, Resource: Resource(in.JWE)}
	res, err := s.inspect(ctx, m, in, &ev)
	if errors.Is(err, ErrNotAdmitted) {
		return Masked{}, err
	}
	if aerr := s.record(ctx, ev, err); aerr != nil {
		return Masked{}, aerr
	}
	return res, err
}

func (s *Service) inspect(ctx context.Context, m Meta, in InspectInput, ev *audit.Event) (Masked, error) {
	if in.Session == "" || in.Merchant == "" {
		if err := s.ClaimOnly(ctx, m); err != nil {
			return Masked{}, err
		}
		return Masked{}, fmt.Errorf("%w: session and merchant are required", ErrInvalidRequest)
	}
	if err := s.admitInspect(ctx, m, in.Merchant, *ev); err != nil {
		return Masked{}, err
	}
	kr, sc, err := s.open(in.JWE, ev)
	if err != nil {
		return Masked{}, err
	}
	hdr := sc.hdr
	// The header is AAD, so a matching bg_sid is authenticated by the decrypt below.
	if hdr.SessionID != in.Session {
		return Masked{}, ErrSessionMismatch
	}
	c, err := s.decryptCard(sc)
	if err != nil {
		return Masked{}, err
	}
	now := s.cfg.Now()
	if age := now.Sub(c.IssuedAt); age > s.cfg.Freshness || age < -s.cfg.Skew {
		return Masked{}, ErrStale
	}
	if err := c.Validate(now); err != nil {
		return Masked{}, err
	}
	fp := kr.Fingerprint(in.Merchant, []byte(c.PAN))
	if err := s.guard(ctx, kr, in.Merchant, c.PAN, fp, *ev); err != nil {
		return Masked{}, err
	}
	brand := card.DetectBrand(c.PAN)
	if in.CVCJWE != "" {
		if err := s.checkCVC(kr, in.CVCJWE, in.Session, brand, now); err != nil {
			return Masked{}, err
		}
	}
	return Masked{
		Kid:         hdr.Kid,
		Brand:       string(brand),
		BIN:         s.cfg.Masking.BIN(c.PAN),
		Last4:       card.Last4(c.PAN),
		ExpMonth:    c.ExpMonth,
		ExpYear:     c.ExpYear,
		Fingerprint: fp,
		// Only here and within the freshness window does the key service
		// take the caller's word for whose card this is: a stored card cannot
		// be bound to another merchant later.
		Binding: kr.Binding(in.Merchant, []byte(in.JWE)),
	}, nil
}

// guard counts this card among the distinct cards seen for (merchant, first
// 6, last 4) and refuses once there are more than the policy allows. The
// store sees only keyed tags. Once a bucket is over the limit every card in
// it is refused, the genuine one included: letting a card already seen
// through would tell the prober which candidate is right. Expiry is not part
// of the bucket although it is shown: it is not an input of the fingerprint,
// so a prober would vary it to get a fresh budget per month.
func (s *Service) guard(ctx context.Context, kr *keyring.Keyring, merchant, pan, fp string, ev audit.Event) error {
	g := s.cfg.Guard
	bucket := kr.GuardTag("bucket", merchant, pan[:6], card.Last4(pan))
	member := kr.GuardTag("member", fp)[:16]
	n, err := g.Counter.Observe(ctx, bucket, member, guard.Window{Period: g.Window, Keep: g.Max + 1})
	if err != nil {
		return fmt.Errorf("%w: enumeration guard: %w", ErrUnavailable, err)
	}
	if n > g.Max {
		s.alarm(ctx, ev, fmt.Sprintf("card enumeration: %d distinct cards with the same first 6 and last 4 for merchant %s within %s", n, merchant, g.Window))
		return &EnumerationError{RetryAfter: g.Window}
	}
	return nil
}

// ClaimOnly claims the jti of a signed request refused before it is let in
// (a body that does not bind, a field missing), and counts nothing.
// Admission otherwise claims the jti with the limits or, for a reveal,
// the nonce, which need the request's fields; claiming it here too keeps
// Contract 2's order: a replayed request is refused as a replay (409)
// whatever its body, and a request is never answered 400 twice. An error
// is ErrNotAdmitted's.
func (s *Service) ClaimOnly(ctx context.Context, m Meta) error {
	err := admit.ClaimOnly(ctx, s.admit, m.Claim)
	switch {
	case errors.Is(err, admit.ErrReplay):
		return fmt.Errorf("%w: %w", ErrNotAdmitted, ErrReplay)
	case err != nil:
		return fmt.Errorf("%w: %w: %w", ErrNotAdmitted, ErrUnavailable, err)
	}
	return nil
}

// admitInspect lets an inspect in: it claims the request's jti (m.Claim),
// then counts the per-client limit and the daily volume watch
// (volumeSteps), all in one round trip.
func (s *Service) admitInspect(ctx context.Context, m Meta, merchant string, ev audit.Event) error {
	steps := append([]ratelimit.Step{ratelimit.CheckStep(s.cfg.Limits.InspectPerClient, m.Client)}, s.volumeSteps(m, merchant)...)
	res, err := s.admit.Admit(ctx, m.Claim, ratelimit.Takes(steps))
	switch {
	case errors.Is(err, admit.ErrReplay):
		return fmt.Errorf("%w: %w", ErrNotAdmitted, ErrReplay)
	case errors.Is(err, admit.ErrUnavailable):
		return fmt.Errorf("%w: %w: %w", ErrNotAdmitted, ErrUnavailable, err)
	case err != nil:
		return s.limiter.Failed(err)
	}
	alarms, err := s.limiter.Judge(steps, res)
	s.volumeAlarms(ctx, m, merchant, ev, alarms[1:])
	return err
}

// inspectVolume watches inspect volume per client and per merchant over a
// day: an alarm when 80% (AlarmDailyFraction) is crossed and when the
// allowance runs out; a refusal only if configured. Both windows are one
// round trip.
func (s *Service) inspectVolume(ctx context.Context, m Meta, merchant string, ev audit.Event) error {
	alarms, err := s.limiter.Batch(ctx, s.volumeSteps(m, merchant))
	s.volumeAlarms(ctx, m, merchant, ev, alarms)
	return err
}

func (s *Service) volumeSteps(m Meta, merchant string) []ratelimit.Step {
	lim := s.cfg.Limits
	return []ratelimit.Step{
		ratelimit.WatchStep(ratelimit.Window{Limit: lim.InspectClientDaily, AlarmAt: lim.AlarmDailyFraction, Refuse: lim.RefuseInspectVolume}, m.Client),
		ratelimit.WatchStep(ratelimit.Window{Limit: lim.InspectMerchantDaily, AlarmAt: lim.AlarmDailyFraction, Refuse: lim.RefuseInspectVolume}, merchant),
	}
}

// volumeAlarms raises the alarms of volumeSteps' results, in their order.
func (s *Service) volumeAlarms(ctx context.Context, m Meta, merchant string, ev audit.Event, alarms []string) {
	for i, who := range []string{"client " + m.Client, "merchant " + merchant} {
		if i < len(alarms) && alarms[i] != "" {
			s.alarm(ctx, ev, alarms[i]+" by "+who)
		}
	}
}

// checkCVC applies the card ciphertext's rules to the CVC ciphertext and
// checks its length for the brand. The plaintext is wiped on return; the
// digits are never kept, logged or put in an error.
func (s *Service) checkCVC(_ *keyring.Keyring, cvcJWE, session string, brand card.Brand, now time.Time) error {
	_, err := s.openCVC(cvcJWE, session, brand, now)
	return err
}

// openCVC opens a CVC ciphertext under checkCVC's rules and returns it, for
// the one caller that uses the digits (a forward).
func (s *Service) openCVC(cvcJWE, session string, brand card.Brand, now time.Time) (card.CVC, error) {
	var ev audit.Event // open records the kid; the CVC's is not audited
	_, sc, err := s.open(cvcJWE, &ev)
	switch {
	case errors.Is(err, ErrSealed):
		return card.CVC{}, err
	case err != nil:
		return card.CVC{}, fmt.Errorf("%w: not an acceptable ciphertext", ErrCVCInvalid)
	case sc.hdr.SessionID != session:
		return card.CVC{}, fmt.Errorf("%w: made for another checkout session", ErrCVCInvalid)
	}
	pt, err := s.decrypt(sc.jwe, sc.key)
	defer wipe(pt)
	if err != nil {
		return card.CVC{}, fmt.Errorf("%w: does not decrypt", ErrCVCInvalid)
	}
	cvc, err := card.ParseCVC(pt)
	if err != nil {
		return card.CVC{}, fmt.Errorf("%w: not a cvc", ErrCVCInvalid)
	}
	if age := now.Sub(cvc.IssuedAt); age > s.cfg.Freshness || age < -s.cfg.Skew {
		return card.CVC{}, fmt.Errorf("%w: stale", ErrCVCInvalid)
	}
	if err := cvc.CheckBrand(brand); err != nil {
		return card.CVC{}, fmt.Errorf("%w: wrong length for the brand", ErrCVCInvalid)
	}
	return cvc, nil
}

// RevealInput is one reveal as the back office asks for it: the stored
// ciphertext, the operator, the normalised reason, the token, the public
// key the operator's browser made for this reveal, the nonce the key
// service issued for (client, actor, token), and the operator's passkey
// assertion over wire.RevealChallenge (absent only in approval mode none).
// BrowserKey is the key as the request's checks parsed it
// (wire.RevealRequest.Check, at the key service's door): it is parsed
// once, and a key that did not pass them cannot be given (the zero value
// is refused, ErrBrowserKey).
type RevealInput struct {
	JWE, Actor, Reason, Token, Nonce string
	BrowserKey                       wire.CheckedBrowserKey
	Assertion                        []byte
}

// Sealed is a revealed card as it leaves the key service: a JWE only the
// browser key's holder can open (wire.RevealResponse), and the passkey
// that approved it.
type Sealed struct {
	JWE        string
	Credential string
}

// Approver checks a reveal's approval (keyservice/passkeys): the nonce
// and, unless approval is off, the operator's passkey assertion over the
// challenge recomputed from the request. It returns the approving
// credential's id, also with an error once the assertion named one. It
// claims the approval's Claim first, with the nonce's take, and answers
// admit.ErrReplay or admit.ErrUnavailable when the claim is refused.
type Approver interface {
	Approve(ctx context.Context, client string, a passkeys.Approval) (credential string, err error)
}

// cardPayload is the plaintext of a reveal's answer (wire.CardContentType):
// it exists only here, between the decrypt and the encryption to the
// browser key, and is wiped after.
type cardPayload struct {
	PAN      string `json:"pan"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	Name     string `json:"name,omitempty"`
}

// Reveal decrypts a stored card for an operator and returns it encrypted
// to the operator's browser key, in this order: the request's shape and
// the browser key; the approval (the request's jti claimed with the
// nonce's take, then the passkey); the limits; the ciphertext's header
// and key; the audit record, written and synced; only then the decrypt,
// and the encryption to the browser key. Every refusal is audited
// (reveal.denied, with its code and the credential when known) and
// nothing is decrypted for it; a request refused before its approval
// claims its jti alone first (ClaimOnly), so a replay is refused as one
// whatever its body. A request it does not admit (ErrNotAdmitted: the
// claim refused) is not recorded here.
func (s *Service) Reveal(ctx context.Context, m Meta, in RevealInput) (Sealed, error) {
	ev := audit.Event{Event: audit.EventReveal, Client: m.Client, Actor: in.Actor, Origin: m.Origin, Resource: in.Token, Reason: in.Reason}
	// The wire contract's rules, not a copy: a reason the gateway accepted
	// (counted in characters) must not be refused here (counted in bytes).
	if err := wire.ValidateID("actor", in.Actor); err != nil {
		ev.Actor = ""
		return Sealed{}, s.deniedUnclaimed(ctx, m, ev, fmt.Errorf("%w: %w", ErrInvalidRequest, err))
	}
	if err := wire.ValidateID("token", in.Token); err != nil {
		ev.Resource = ""
		return Sealed{}, s.deniedUnclaimed(ctx, m, ev, fmt.Errorf("%w: %w", ErrInvalidRequest, err))
	}
	if err := wire.ValidateReason(in.Reason); err != nil || wire.NormReason(in.Reason) != in.Reason {
		// The trail keeps what it is given: record the refusal, not a text
		// that may hold a card number or not fit an audit line.
		ev.Reason = ""
		if err == nil {
			err = &wire.FieldError{Field: "reason", Reason: "must be normalised"}
		}
		return Sealed{}, s.deniedUnclaimed(ctx, m, ev, fmt.Errorf("%w: %w", ErrInvalidRequest, err))
	}
	pub, jkt := in.BrowserKey.PublicKey(), in.BrowserKey.Thumbprint()
	if pub == nil {
		return Sealed{}, s.deniedUnclaimed(ctx, m, ev, fmt.Errorf("%w: %w", ErrBrowserKey, wire.ErrBrowserKey))
	}
	if s.cfg.Approver == nil {
		return Sealed{}, s.deniedUnclaimed(ctx, m, ev, fmt.Errorf("%w: no reveal approval configured", ErrUnavailable))
	}
	cred, err := s.cfg.Approver.Approve(ctx, m.Client, passkeys.Approval{
		Actor: in.Actor, Token: in.Token, Reason: in.Reason, Nonce: in.Nonce, JKT: jkt, Assertion: in.Assertion, Claim: m.Claim,
	})
	switch {
	case errors.Is(err, admit.ErrReplay):
		return Sealed{}, fmt.Errorf("%w: %w", ErrNotAdmitted, ErrReplay)
	case errors.Is(err, admit.ErrUnavailable):
		return Sealed{}, fmt.Errorf("%w: %w: %w", ErrNotAdmitted, ErrUnavailable, err)
	}
	ev.Credential = cred
	if err != nil {
		return Sealed{}, s.denied(ctx, ev, err)
	}
	if err := s.revealLimits(ctx, m.Client, in.Actor, ev); err != nil {
		return Sealed{}, s.denied(ctx, ev, err)
	}
	_, sc, err := s.open(in.JWE, &ev)
	if err != nil {
		return Sealed{}, s.denied(ctx, ev, err)
	}
	ev.Kid = sc.hdr.Kid
	// Outcome "success" on a reveal means "authorised and about to decrypt".
	ev.Outcome = audit.OutcomeSuccess
	if _, err := s.audit.Append(ctx, ev); err != nil {
		return Sealed{}, fmt.Errorf("%w: %w", ErrAudit, err)
	}
	out, err := s.sealToBrowser(sc, pub, in.Token, in.Nonce)
	if err != nil {
		// The grant is already on record; record that nothing was shown.
		ev.Outcome, ev.Code = audit.OutcomeFailure, codeOf(err)
		if _, aerr := s.audit.Append(ctx, ev); aerr != nil {
			s.log.Error("audit append after failed reveal", "err", aerr)
		}
		return Sealed{}, err
	}
	return Sealed{JWE: string(out), Credential: cred}, nil
}

// sealToBrowser decrypts the card and encrypts its fields to the browser
// key, with the token and nonce in the protected header; every plaintext
// buffer is wiped before it returns.
func (s *Service) sealToBrowser(sc sealedCard, pub *ecdh.PublicKey, token, nonce string) ([]byte, error) {
	c, err := s.decryptCard(sc)
	if err != nil {
		return nil, err
	}
	pt, err := json.Marshal(cardPayload{PAN: c.PAN, ExpMonth: c.ExpMonth, ExpYear: c.ExpYear, Name: c.Name})
	defer wipe(pt)
	if err != nil {
		return nil, fmt.Errorf("reveal: encode: %w", err)
	}
	out, err := jose.EncryptDirect(pt, pub, map[string]string{
		wire.HeaderToken: token, wire.HeaderNonce: nonce, "cty": wire.CardContentType,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: encrypt to the browser key: %w", ErrUnavailable, err)
	}
	return out, nil
}

// Rewrapped is a ciphertext under the newest KEK with the masked fields as
// they are computed today (fingerprint scope, truncation).
type Rewrapped struct {
	JWE, Kid                       string
	Brand, BIN, Last4, Fingerprint string
	// Binding is the new ciphertext's merchant binding: when the request
	// carried a valid one, or with BindLegacy.
	Binding string
}

// RewrapInput is a rewrap request. Refresh asks for the masked fields and
// the merchant's fingerprint as they are computed today (a change of
// truncation or fingerprint scheme); without it only the ciphertext moves.
type RewrapInput struct {
	JWE, Merchant, Resource string
	Refresh                 bool
	// Binding is the token's merchant binding, if it has one.
	Binding string
}

// Rewrap moves a ciphertext to the newest KEK (unchanged when it already is)
// and, with Refresh, recomputes its masked fields for the merchant. The
// plaintext never leaves this function; the protected header's bg_sid is
// carried over.
func (s *Service) Rewrap(ctx context.Context, m Meta, in RewrapInput) (Rewrapped, error) {
	resource := in.Resource
	if resource == "" {
		resource = Resource(in.JWE)
	}
	ev := audit.Event{Event: audit.EventRewrap, Client: m.Client, Origin: m.Origin, Resource: resource}
	out, err := s.rewrap(ctx, m, in, &ev)
	if aerr := s.record(ctx, ev, err); aerr != nil {
		return Rewrapped{}, aerr
	}
	return out, err
}

func (s *Service) rewrap(ctx context.Context, m Meta, in RewrapInput, ev *audit.Event) (Rewrapped, error) {
	jwe, merchant := in.JWE, in.Merchant
	if merchant == "" {
		return Rewrapped{}, fmt.Errorf("%w: merchant is required", ErrInvalidRequest)
	}
	if err := s.limiter.Check(ctx, s.cfg.Limits.RewrapPerClient, m.Client); err != nil {
		return Rewrapped{}, err
	}
	kr, sc, err := s.open(jwe, ev)
	if err != nil {
		return Rewrapped{}, err
	}
	bind := in.Binding != ""
	switch {
	case bind && !kr.VerifyBinding(merchant, []byte(jwe), in.Binding):
		// Checked before decrypting: a wrong binding gets nothing, and
		// never a binding of the new ciphertext.
		return Rewrapped{}, ErrNotBound
	case !bind && s.cfg.BindLegacy:
		bind = true
		ev.Reason = "bind-legacy: binding issued to the merchant named"
	}
	pt, err := s.decrypt(sc.jwe, sc.key)
	defer wipe(pt)
	if err != nil {
		return Rewrapped{}, ErrUndecryptable
	}
	// No expiry or freshness check: a stored card may have expired since;
	// its masked fields must still be brought up to date.
	c, err := card.ParsePlaintext(pt)
	if err != nil {
		return Rewrapped{}, err
	}
	if _, err := card.ValidatePAN(c.PAN); err != nil {
		return Rewrapped{}, err
	}
	out := Rewrapped{JWE: jwe, Kid: sc.hdr.Kid}
	if in.Refresh {
		// A refresh answers the merchant's fingerprint of whatever card it is
		// sent, exactly as inspect does, and rewrap takes any ciphertext with
		// no freshness check: without inspect's volume watch and enumeration
		// guard it would be the oracle they close (candidate cards encrypted
		// to the public key, compared with a stored token's fingerprint).
		if err := s.inspectVolume(ctx, m, merchant, *ev); err != nil {
			return Rewrapped{}, err
		}
		fp := kr.Fingerprint(merchant, []byte(c.PAN))
		if err := s.guard(ctx, kr, merchant, c.PAN, fp, *ev); err != nil {
			return Rewrapped{}, err
		}
		out.Brand, out.BIN, out.Last4, out.Fingerprint = string(card.DetectBrand(c.PAN)), s.cfg.Masking.BIN(c.PAN), card.Last4(c.PAN), fp
	}
	newest := kr.Newest()
	if sc.hdr.Kid == newest.Kid {
		if bind {
			out.Binding = kr.Binding(merchant, []byte(out.JWE))
		}
		return out, nil
	}
	var pub crypto.PublicKey
	for _, p := range kr.PublicKeys() {
		if p.Kid == newest.Kid {
			pub = p.Key
		}
	}
	if pub == nil {
		return Rewrapped{}, fmt.Errorf("%w: newest key %s has no public key", ErrUnavailable, newest.Kid)
	}
	enc, err := jose.Encrypt(pt, pub, newest.Kid, map[string]string{jose.HeaderSessionID: sc.hdr.SessionID})
	if err != nil {
		return Rewrapped{}, fmt.Errorf("rewrap encrypt: %w", err)
	}
	ev.Kid = newest.Kid
	out.JWE, out.Kid = string(enc), newest.Kid
	if bind {
		out.Binding = kr.Binding(merchant, enc)
	}
	return out, nil
}

// sealedCard is a ciphertext that passed the strict checks, with the key its
// header selected; parsed once, decrypted later.
type sealedCard struct {
	jwe *jose.JWE
	hdr jose.Header
	key crypto.PrivateKey
}

// open checks the header and finds the private key without decrypting.
func (s *Service) open(jwe string, ev *audit.Event) (*keyring.Keyring, sealedCard, error) {
	kr, err := s.keys.Keyring()
	if err != nil {
		return nil, sealedCard{}, fmt.Errorf("%w: %w", ErrSealed, err)
	}
	j, err := jose.Open([]byte(jwe))
	if err != nil {
		if errors.Is(err, jose.ErrUnsupported) {
			return nil, sealedCard{}, fmt.Errorf("%w: %w", ErrUnsupportedAlg, err)
		}
		return nil, sealedCard{}, fmt.Errorf("%w: %w", ErrInvalidJWE, err)
	}
	sc := sealedCard{jwe: j, hdr: j.Header()}
	ev.Kid = sc.hdr.Kid
	if sc.key, err = kr.Lookup(sc.hdr.Kid); err != nil {
		return nil, sc, fmt.Errorf("%w: %w", ErrUnknownKey, err)
	}
	return kr, sc, nil
}

func (s *Service) decryptCard(sc sealedCard) (card.Card, error) {
	pt, err := s.decrypt(sc.jwe, sc.key)
	if err != nil {
		return card.Card{}, ErrUndecryptable
	}
	defer wipe(pt)
	c, err := card.ParsePlaintext(pt)
	if err != nil {
		return card.Card{}, err
	}
	return c, nil
}

// revealSteps are a reveal's four limits, in the order they are counted
// (and refuse): the actor's short and daily windows, then the client's.
func (s *Service) revealSteps(client, actor string) []ratelimit.Step {
	lim := s.cfg.Limits
	return []ratelimit.Step{
		ratelimit.CheckStep(lim.RevealActorShort, client+"/"+actor),
		ratelimit.CheckStep(lim.RevealActorDaily, client+"/"+actor),
		ratelimit.CheckStep(lim.RevealClientShort, client),
		ratelimit.CheckStep(lim.RevealClientDaily, client),
	}
}

// revealActorDaily is revealSteps' index of the actor's daily window,
// whose use is alarmed from AlarmDailyFraction on.
const revealActorDaily = 1

// revealLimits counts a reveal's four limits in one call to the limiter
// (one round trip on Redis), with the outcome of four checks one after
// another: a refusal stops the count there (the limits before it counted
// the reveal, those after it did not), names its limit with its
// Retry-After and raises "limit ... reached"; every reveal that takes the
// actor's daily window to AlarmDailyFraction of it or more raises that
// alarm too, before any refusal of the client's limits. A limiter that
// cannot answer refuses (ErrUnavailable), and nothing of the batch may be
// relied on.
func (s *Service) revealLimits(ctx context.Context, client, actor string, ev audit.Event) error {
	steps := s.revealSteps(client, actor)
	res, err := ratelimit.AllowBatch(ctx, s.limiter.Limiter, ratelimit.Takes(steps))
	if err != nil {
		return s.limiter.Failed(err)
	}
	_, err = s.limiter.Judge(steps, res)
	lim := s.cfg.Limits
	if d := lim.RevealActorDaily; revealActorDaily < len(res) && res[revealActorDaily].Allowed && lim.AlarmDailyFraction > 0 && d.Burst > 0 {
		used := float64(d.Burst-res[revealActorDaily].Remaining) / float64(d.Burst)
		if used >= lim.AlarmDailyFraction {
			s.alarm(ctx, ev, fmt.Sprintf("actor used %.0f%% of the daily reveal limit", used*100))
		}
	}
	var rf *ratelimit.Refused
	if errors.As(err, &rf) {
		s.alarm(ctx, ev, "limit "+rf.Limit+" reached")
	}
	return err
}

// alarm raises an unusual-volume alarm (audit.RaiseAlarm).
func (s *Service) alarm(ctx context.Context, ev audit.Event, why string) {
	audit.RaiseAlarm(ctx, s.audit, s.log, ev, why)
}

// record writes the outcome of an inspect or rewrap. If the audit log cannot
// be written the answer is withheld: the caller learns nothing it could not
// have got with the log down.
func (s *Service) record(ctx context.Context, ev audit.Event, opErr error) error {
	if opErr == nil {
		ev.Outcome = audit.OutcomeSuccess
	} else {
		ev.Outcome, ev.Code = outcomeOf(opErr), codeOf(opErr)
	}
	if _, err := s.audit.Append(ctx, ev); err != nil {
		return fmt.Errorf("%w: %w", ErrAudit, err)
	}
	return nil
}

// deniedUnclaimed is denied for a reveal refused before its approval,
// which would have claimed its jti: it claims it alone first (ClaimOnly),
// and a request it cannot admit is refused as such, unrecorded here.
func (s *Service) deniedUnclaimed(ctx context.Context, m Meta, ev audit.Event, opErr error) error {
	if err := s.ClaimOnly(ctx, m); err != nil {
		return err
	}
	return s.denied(ctx, ev, opErr)
}

// denied records a reveal refused before any decryption.
func (s *Service) denied(ctx context.Context, ev audit.Event, opErr error) error {
	ev.Event = audit.EventRevealDenied
	if err := s.record(ctx, ev, opErr); err != nil {
		return err
	}
	return opErr
}

func outcomeOf(err error) string {
	switch {
	case errors.Is(err, ErrLimited), errors.Is(err, ErrSealed), errors.Is(err, ErrInvalidRequest), errors.Is(err, ErrEnumeration),
		errors.Is(err, ErrNotBound), errors.Is(err, ErrBrowserKey), errors.Is(err, passkeys.ErrNonce), errors.Is(err, passkeys.ErrRequired),
		errors.Is(err, passkeys.ErrInvalid), errors.Is(err, passkeys.ErrUnknown), errors.Is(err, passkeys.ErrUnavailable):
		return audit.OutcomeDenied
	default:
		return audit.OutcomeFailure
	}
}

// codeOf gives the audit trail a short reason without any card data.
func codeOf(err error) string {
	for _, c := range []struct {
		err  error
		code string
	}{
		{ErrEnumeration, "card_enumeration"}, {ErrCVCInvalid, "cvc_invalid"}, {ErrNotBound, "card_not_bound"},
		{ErrBrowserKey, "browser_key_invalid"}, {passkeys.ErrNonce, "reveal_nonce_invalid"}, {passkeys.ErrRequired, "passkey_required"},
		{passkeys.ErrUnknown, "passkey_unknown"}, {passkeys.ErrInvalid, "passkey_invalid"}, {passkeys.ErrUnavailable, "unavailable"},
		{ErrSealed, "sealed"}, {ErrInvalidJWE, "invalid_jwe"}, {ErrUnsupportedAlg, "unsupported_algorithm"},
		{ErrUnknownKey, "key_unknown"}, {ErrSessionMismatch, "session_mismatch"}, {ErrUndecryptable, "card_undecryptable"},
		{ErrStale, "stale_ciphertext"}, {ErrInvalidRequest, "invalid_field"}, {ErrLimited, "rate_limited"},
		{ErrUnavailable, "unavailable"}, {card.ErrExpired, "card_expired"}, {card.ErrBrand, "card_brand_unsupported"},
		{card.ErrMalformed, "card_invalid"}, {card.ErrLength, "card_invalid"}, {card.ErrLuhn, "card_invalid"}, {card.ErrDigits, "card_invalid"},
	} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
