// Package forward is the key zone's forwarding domain: it fills a
// merchant's request template with a stored card and sends it to a
// destination the key service operator configured (keyservice/destinations),
// or re-encrypts it to a processor's public key, and hands back the answer
// with every card number masked. It knows nothing of HTTP serving; the
// route that calls Forward is wired separately.
//
// Ordering invariants of Forward, each enforced here:
//   - the request, the destination (and the merchant's right to it) and the
//     template (including where its card placeholders sit: the
//     destination's card_fields) are checked before anything is counted
//     or decrypted;
//   - so is the merchant binding: the card must be the merchant's (a tag
//     the key service issued at inspect or rewrap), not merely the
//     destination allowed for the merchant the caller names;
//   - rate limits per merchant and per destination come next, then their
//     daily windows (alarms at 80% and at exhaustion, and a refusal past
//     them unless configured alarm-only); a limiter that cannot answer
//     refuses: never forward unlimited;
//   - the idempotency key is claimed before the audit record, so a retry
//     of a forward already made gets the stored answer and sends nothing;
//   - the forward is audited (written and synced) before the card is
//     decrypted: no audit, no forward;
//   - plaintext buffers (the decrypted card, the filled body) are wiped as
//     soon as they are sent or encrypted; answers are redacted before they
//     are stored or returned.
package forward

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/card"
	"github.com/blindgate/blindgate/keyservice/destinations"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Domain errors; the HTTP layer maps them to stable codes (Code gives the
// audit trail's).
var (
	ErrInvalidRequest = errors.New("forward: invalid request")
	// ErrDestination: unknown, or not allowed for the merchant. One error
	// for both, so a merchant cannot list other merchants' destinations.
	ErrDestination = errors.New("forward: destination unknown or not allowed")
	ErrLimited     = errors.New("forward: rate limited")
	ErrUnavailable = errors.New("forward: dependency unavailable")
	ErrAudit       = errors.New("forward: audit unavailable")
	// ErrCard: the ciphertext did not open to a usable card (the opener's
	// error is wrapped).
	ErrCard = errors.New("forward: card unavailable")
	// ErrStoredFailure: an earlier request with this idempotency key failed
	// after something may have been sent; the failure is repeated, nothing
	// is sent again. Use a new key to try again deliberately.
	ErrStoredFailure = errors.New("forward: earlier attempt with this idempotency key failed with an unknown outcome")
	// ErrNotBound: the request's merchant binding is not the one the key
	// service issued for its merchant and ciphertext, so the card may be
	// another merchant's. Nothing is decrypted.
	ErrNotBound = errors.New("forward: card not bound to the merchant")
)

// Opened is a decrypted card and, when one was given and accepted, its CVC.
type Opened struct {
	Card   card.Card
	CVC    card.CVC
	HasCVC bool
	Kid    string
}

// CardOpener decrypts a stored card ciphertext with the keyring. The key
// service's unwrap domain implements it: the same strict header checks,
// key lookup and plaintext parsing as reveal. With a CVC ciphertext it
// must check that it opens, belongs to the same checkout session as the
// card (bg_sid), is fresh, and has the digit count of the card's brand;
// otherwise it returns an error and no CVC. The caller wipes nothing it did
// not get: the opener wipes its own buffers.
//
// CheckBinding tells whether binding is the merchant binding the key service
// issued for (merchant, jwe), without decrypting: nil, ErrNotBound, or
// another error when it cannot tell (sealed).
type CardOpener interface {
	CheckBinding(ctx context.Context, merchant, jwe, binding string) error
	OpenCard(ctx context.Context, jwe, cvcJWE string) (Opened, error)
}

// DestinationSource finds a destination by id.
type DestinationSource interface {
	Lookup(id string) (*destinations.Compiled, error)
}

// Sending sends a filled request; *Sender implements it.
type Sending interface {
	Send(ctx context.Context, d *destinations.Compiled, r Request) (Answer, error)
}

// Auditor appends durable audit events.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Meta says who asks; it comes from the verified signature.
type Meta struct {
	Client string
	Origin string
}

// Limits are the forward rate limits. The per-second limits keep a
// merchant to checkout pace; the daily windows bound how many cards can
// leave the key zone in a day, with an alarm at AlarmDailyFraction and at
// exhaustion, like reveal's. Past a daily window a forward is refused unless
// DailyAlarmOnly: a forward, like a reveal, sends the whole card out of the
// zone, and the per-second limits alone let a gateway holding the forward
// key push every stored card of a merchant out within a day. (Inspect only
// alarms by default: it answers masked data, and its enumeration guard
// refuses attacks.)
type Limits struct {
	PerMerchant        ratelimit.Limit
	PerDestination     ratelimit.Limit
	MerchantDaily      ratelimit.Limit
	DestinationDaily   ratelimit.Limit
	AlarmDailyFraction float64
	// DailyAlarmOnly lets forwards past a daily window through, alarmed
	// once at exhaustion. The zero value refuses.
	DailyAlarmOnly bool
}

// DefaultLimits: a merchant charges stored cards at checkout pace, not
// in bulk; a destination is shared by its merchants. The daily windows are
// a day's captures at the inspect watch's merchant volume (a scheduled
// billing run larger than that raises it beforehand).
func DefaultLimits() Limits {
	return Limits{
		PerMerchant:        ratelimit.Limit{Name: "forward-merchant", Rate: 20, Period: time.Second, Burst: 50},
		PerDestination:     ratelimit.Limit{Name: "forward-destination", Rate: 100, Period: time.Second, Burst: 200},
		MerchantDaily:      ratelimit.Limit{Name: "forward-merchant-daily", Rate: 50_000, Period: 24 * time.Hour, Burst: 50_000},
		DestinationDaily:   ratelimit.Limit{Name: "forward-destination-daily", Rate: 500_000, Period: 24 * time.Hour, Burst: 500_000},
		AlarmDailyFraction: 0.8,
	}
}

// Config holds the service's dependencies and settings.
type Config struct {
	Destinations DestinationSource
	Opener       CardOpener
	Sender       Sending
	Audit        Auditor
	Limiter      ratelimit.Limiter
	Limits       Limits
	Idempotency  Store
	Log          *slog.Logger
	// WaitInFlight is how long a retry waits for a concurrent request with
	// the same key before answering ErrInProgress; default 30 s.
	WaitInFlight time.Duration
	PollInterval time.Duration
	Now          func() time.Time
}

// Service forwards cards.
type Service struct{ cfg Config }

// New returns a Service; Destinations, Opener, Sender, Audit, Limiter and
// Idempotency are required.
func New(cfg Config) (*Service, error) {
	if cfg.Destinations == nil || cfg.Opener == nil || cfg.Sender == nil || cfg.Audit == nil || cfg.Limiter == nil || cfg.Idempotency == nil {
		return nil, errors.New("forward: missing dependency")
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	// Every limit is required: a zero daily window would silently forward
	// unwatched.
	for _, l := range []ratelimit.Limit{cfg.Limits.PerMerchant, cfg.Limits.PerDestination, cfg.Limits.MerchantDaily, cfg.Limits.DestinationDaily} {
		if err := l.Validate(); err != nil {
			return nil, err
		}
	}
	if f := cfg.Limits.AlarmDailyFraction; f < 0 || f >= 1 {
		return nil, errors.New("forward: alarm daily fraction must be in [0, 1)")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.WaitInFlight <= 0 {
		cfg.WaitInFlight = 30 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg}, nil
}

// RequestHash identifies a forward request for idempotency: merchant, token,
// destination and template, never the ciphertexts (a retry after a rewrap,
// or after the single-use CVC is gone, is the same request).
func RequestHash(r wire.ForwardRequest) string {
	hdrs := make([][2]string, 0, len(r.Template.Headers))
	for k, v := range r.Template.Headers {
		hdrs = append(hdrs, [2]string{k, v})
	}
	slices.SortFunc(hdrs, func(a, b [2]string) int {
		if a[0] < b[0] {
			return -1
		}
		if a[0] > b[0] {
			return 1
		}
		return 0
	})
	b, _ := json.Marshal([]any{r.Merchant, r.Token, r.Destination, r.Template.Path, r.Template.ContentType, hdrs, r.Template.Body})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Forward fills req's template with the card and sends it (or re-encrypts
// it to the destination's processor key). See the package comment for the
// order of checks.
func (s *Service) Forward(ctx context.Context, m Meta, req wire.ForwardRequest) (wire.ForwardResponse, error) {
	ev := audit.Event{Event: audit.EventForwardDenied, Client: m.Client, Origin: m.Origin}
	if err := req.Validate(); err != nil {
		return wire.ForwardResponse{}, s.deny(ctx, ev, fmt.Errorf("%w: %w", ErrInvalidRequest, err))
	}
	ev.Actor, ev.Resource = req.Merchant, req.Token
	reason := "destination=" + req.Destination + " idempotency_key=" + req.IdempotencyKey
	ev.Reason = reason
	d, err := s.cfg.Destinations.Lookup(req.Destination)
	if err != nil || !d.AllowsMerchant(req.Merchant) {
		return wire.ForwardResponse{}, s.deny(ctx, ev, ErrDestination)
	}
	var allowed func(string) bool
	if !d.Encrypts() {
		allowed = d.AllowsRequestHeader
	}
	tpl, err := Parse(req.Template, allowed)
	if err == nil {
		err = tpl.CheckCardFields(d)
	}
	if err != nil {
		return wire.ForwardResponse{}, s.deny(ctx, ev, fmt.Errorf("%w: %w", ErrInvalidRequest, err))
	}
	url := ""
	if !d.Encrypts() {
		if url, err = d.URLFor(tpl.Path()); err != nil {
			return wire.ForwardResponse{}, s.deny(ctx, ev, fmt.Errorf("%w: %w: %w", ErrInvalidRequest, ErrTemplate, err))
		}
	} else if tpl.Path() != "" || len(tpl.Headers()) > 0 {
		return wire.ForwardResponse{}, s.deny(ctx, ev, fmt.Errorf("%w: %w: a processor-key destination takes a body only", ErrInvalidRequest, ErrTemplate))
	}
	// The merchant comes from the request: only the binding says the card
	// is that merchant's, so a caller holding the forward key cannot send
	// another merchant's card by naming a merchant the destination allows.
	if err := s.cfg.Opener.CheckBinding(ctx, req.Merchant, req.JWE, req.Binding); err != nil {
		if !errors.Is(err, ErrNotBound) {
			err = fmt.Errorf("%w: %w", ErrCard, err)
		}
		return wire.ForwardResponse{}, s.deny(ctx, ev, err)
	}
	if err := s.limits(ctx, req, ev); err != nil {
		return wire.ForwardResponse{}, s.deny(ctx, ev, err)
	}

	idemKey := req.Merchant + ":" + req.IdempotencyKey
	hash := RequestHash(req)
	claim, err := s.claim(ctx, idemKey, hash)
	if err != nil {
		return wire.ForwardResponse{}, s.deny(ctx, ev, err)
	}
	if claim.Done != nil {
		return s.replay(ctx, ev, *claim.Done)
	}
	owner := claim.Owner
	// From here the marker is held: every return must Complete or Release.
	sent := false
	release := func() {
		if !sent {
			if err := s.cfg.Idempotency.Release(context.WithoutCancel(ctx), idemKey, owner); err != nil {
				s.cfg.Log.Error("forward: idempotency release failed", "err", err)
			}
		}
	}

	ev.Event, ev.Outcome = audit.EventForward, audit.OutcomeSuccess
	// Outcome "success" on forward means "authorised and about to decrypt".
	if _, err := s.cfg.Audit.Append(ctx, ev); err != nil {
		release()
		return wire.ForwardResponse{}, fmt.Errorf("%w: %w", ErrAudit, err)
	}
	start := s.cfg.Now()
	resp, sendErr := s.send(ctx, d, tpl, url, req, hash, &sent)
	latency := s.cfg.Now().Sub(start)

	result := audit.Event{Event: audit.EventForwardResult, Client: m.Client, Origin: m.Origin, Actor: req.Merchant, Resource: req.Token}
	result.Reason = reason + " status=" + strconv.Itoa(resp.Status) + " latency_ms=" + strconv.FormatInt(latency.Milliseconds(), 10)
	if sendErr != nil {
		result.Outcome, result.Code = audit.OutcomeFailure, Code(sendErr)
	} else {
		result.Outcome = audit.OutcomeSuccess
	}
	if _, err := s.cfg.Audit.Append(ctx, result); err != nil {
		s.cfg.Log.Error("forward: audit of the result failed", "err", err)
	}

	switch {
	case sendErr == nil:
		s.complete(ctx, idemKey, owner, Record{Hash: hash, Response: resp})
		return resp, nil
	case sent:
		// Something may have reached the processor: the failure is the
		// answer to every retry with this key.
		s.complete(ctx, idemKey, owner, Record{Hash: hash, Code: Code(sendErr)})
		return wire.ForwardResponse{}, sendErr
	default:
		release()
		return wire.ForwardResponse{}, sendErr
	}
}

// send decrypts, fills, sends or encrypts, and redacts. *sent turns true
// once bytes may have left for the destination.
func (s *Service) send(ctx context.Context, d *destinations.Compiled, tpl *Template, url string, req wire.ForwardRequest, hash string, sent *bool) (wire.ForwardResponse, error) {
	o, err := s.cfg.Opener.OpenCard(ctx, req.JWE, req.CVCJWE)
	if err != nil {
		return wire.ForwardResponse{}, fmt.Errorf("%w: %w", ErrCard, err)
	}
	v := Values{Number: o.Card.PAN, ExpMonth: o.Card.ExpMonth, ExpYear: o.Card.ExpYear, Name: o.Card.Name}
	if o.HasCVC {
		v.CVC, v.HasCVC = o.CVC.Digits(), true
	}
	body, err := tpl.Fill(v)
	defer clear(body)
	if err != nil {
		return wire.ForwardResponse{}, err
	}
	if d.Encrypts() {
		// bg_sid is required by the JWE profile; it names the forward, not
		// a checkout session, and tells the processor nothing about the card.
		sid := "fwd_" + hash[:32]
		enc, err := jose.Encrypt(body, d.Key, d.KeyKid, map[string]string{jose.HeaderSessionID: sid, "cty": tpl.ContentType()})
		if err != nil {
			return wire.ForwardResponse{}, fmt.Errorf("%w: encrypt to the processor key: %w", ErrUnavailable, err)
		}
		return wire.ForwardResponse{JWE: string(enc)}, nil
	}
	*sent = true // conservatively: the sender tells us below if nothing left
	a, err := s.cfg.Sender.Send(ctx, d, Request{URL: url, Method: d.Method, ContentType: tpl.ContentType(), Headers: tpl.Headers(), Body: body})
	if err != nil {
		if errors.Is(err, ErrAddressRefused) || errors.Is(err, ErrUnreachable) {
			*sent = false
		}
		return wire.ForwardResponse{}, err
	}
	defer clear(a.Body)
	out := wire.ForwardResponse{Status: a.Status, Headers: map[string]string{}}
	for k, hv := range a.Headers {
		out.Headers[k] = RedactString(hv, o.Card.PAN)
	}
	out.Body = string(Redact(a.Body, o.Card.PAN))
	return out, nil
}

// claim takes the idempotency key, waiting for a concurrent request with
// the same key to finish.
func (s *Service) claim(ctx context.Context, key, hash string) (Claim, error) {
	deadline := s.cfg.Now().Add(s.cfg.WaitInFlight)
	for {
		c, err := s.cfg.Idempotency.Begin(ctx, key, hash)
		if err != nil {
			if errors.Is(err, ErrIdempotencyMismatch) {
				return Claim{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
			}
			return Claim{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if !c.InFlight {
			return c, nil
		}
		if s.cfg.Now().After(deadline) {
			return Claim{}, ErrInProgress
		}
		t := time.NewTimer(s.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return Claim{}, ErrInProgress
		case <-t.C:
		}
	}
}

func (s *Service) complete(ctx context.Context, key, owner string, rec Record) {
	if err := s.cfg.Idempotency.Complete(context.WithoutCancel(ctx), key, owner, rec); err != nil {
		// The marker stays in flight: retries wait, then get ErrInProgress;
		// never a second send.
		s.cfg.Log.Error("forward: idempotency record not stored", "err", err)
	}
}

// replay answers a retry from the stored record, audited, without sending.
func (s *Service) replay(ctx context.Context, ev audit.Event, rec Record) (wire.ForwardResponse, error) {
	ev.Event, ev.Reason = audit.EventForwardResult, ev.Reason+" replayed"
	var err error
	if rec.Code != "" {
		err = fmt.Errorf("%w (%s)", ErrStoredFailure, rec.Code)
		ev.Outcome, ev.Code = audit.OutcomeFailure, "stored_failure"
	} else {
		ev.Outcome = audit.OutcomeSuccess
	}
	if _, aerr := s.cfg.Audit.Append(ctx, ev); aerr != nil {
		return wire.ForwardResponse{}, fmt.Errorf("%w: %w", ErrAudit, aerr)
	}
	if err != nil {
		return wire.ForwardResponse{}, err
	}
	resp := rec.Response
	resp.Replayed = true
	return resp, nil
}

// limits counts the forward against the per-second limits and the daily
// windows, merchant first. Every refusal and every window's alarm is raised.
func (s *Service) limits(ctx context.Context, req wire.ForwardRequest, ev audit.Event) error {
	lim := s.cfg.Limits
	gate := ratelimit.Gate{Limiter: s.cfg.Limiter, Limited: ErrLimited, Unavailable: ErrUnavailable}
	for _, c := range []struct {
		l        ratelimit.Limit
		key, who string
	}{{lim.PerMerchant, req.Merchant, "merchant " + req.Merchant}, {lim.PerDestination, req.Destination, "destination " + req.Destination}} {
		if err := gate.Check(ctx, c.l, c.key); err != nil {
			if errors.Is(err, ErrLimited) {
				s.alarm(ctx, ev, "limit "+c.l.Name+" reached by "+c.who)
			}
			return err
		}
	}
	for _, c := range []struct {
		l        ratelimit.Limit
		key, who string
	}{{lim.MerchantDaily, req.Merchant, "merchant " + req.Merchant}, {lim.DestinationDaily, req.Destination, "destination " + req.Destination}} {
		why, err := gate.Watch(ctx, ratelimit.Window{Limit: c.l, AlarmAt: lim.AlarmDailyFraction, Refuse: !lim.DailyAlarmOnly}, c.key)
		if why != "" {
			s.alarm(ctx, ev, why+" by "+c.who)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// alarm raises an unusual-volume alarm about this forward (audit.RaiseAlarm).
func (s *Service) alarm(ctx context.Context, ev audit.Event, why string) {
	ev.Event = audit.EventForward
	audit.RaiseAlarm(ctx, s.cfg.Audit, s.cfg.Log, ev, why)
}

// deny records a refusal before any decryption; if the refusal cannot be
// recorded the caller gets ErrAudit instead.
func (s *Service) deny(ctx context.Context, ev audit.Event, opErr error) error {
	ev.Event, ev.Outcome, ev.Code = audit.EventForwardDenied, audit.OutcomeDenied, Code(opErr)
	if _, err := s.cfg.Audit.Append(ctx, ev); err != nil {
		return fmt.Errorf("%w: %w", ErrAudit, err)
	}
	return opErr
}

// Code gives the audit trail (and, later, the HTTP layer) a short stable
// reason without any card data.
func Code(err error) string {
	for _, c := range []struct {
		err  error
		code string
	}{
		{ErrCVCMissing, "cvc_unavailable"}, {ErrTemplate, "template_invalid"}, {ErrIdempotencyMismatch, "idempotency_mismatch"},
		{ErrInProgress, "idempotency_in_progress"}, {ErrStoredFailure, "stored_failure"},
		{ErrNotBound, "card_not_bound"}, {ErrDestination, "destination_not_allowed"}, {ErrInvalidRequest, "invalid_field"}, {ErrLimited, "rate_limited"},
		{ErrAddressRefused, "destination_refused"}, {ErrUnreachable, "destination_unreachable"},
		{ErrOutcomeUnknown, "destination_outcome_unknown"}, {ErrCard, "card_unavailable"},
		{ErrAudit, "audit_unavailable"}, {ErrUnavailable, "unavailable"},
	} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}
