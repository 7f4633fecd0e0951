// Package forwarding is the merchant API's forward policy: a merchant asks
// for one of its stored cards to be sent to a processor, and the gateway
// hands the key service the card's ciphertext and the merchant's template
// in a signed request (operation forward). The gateway never receives the
// card: the key service fills the template inside the key zone and answers
// the destination's status, allowed headers and redacted body, or the card
// re-encrypted to the processor's key. Nothing here parses a card or a
// template (a test in gateway/ keeps keyservice/forward and
// keyservice/destinations out of the gateway's imports).
//
// Order of checks, each enforced here:
//   - the Idempotency-Key and the body's shape, before any store is read;
//   - the token must be the merchant's: another merchant's token is
//     ErrNotFound, exactly like a token that does not exist (no probing);
//   - the CVC ciphertext is taken out of the token store (and so destroyed)
//     only for a template that uses {{card.cvc}}, and only after the checks
//     above; see Forward for what that costs;
//   - the key service decides the rest (destination, template, limits,
//     idempotency, audit) and its refusals come back by stable code.
package forwarding

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/blindgate/blindgate/gateway/idempotency"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Errors of Forward. Key-service answers come back as *KeyServiceError.
var (
	// ErrDisabled: the gateway has no forward identity (-forward-key).
	ErrDisabled = errors.New("forwarding: not enabled on this gateway")
	// ErrInvalid: the Idempotency-Key or the body is malformed; the wrapped
	// error says which field, never its value.
	ErrInvalid = errors.New("forwarding: invalid request")
	// ErrNotFound: no such token for this merchant.
	ErrNotFound = errors.New("forwarding: token not found")
	// ErrUnavailable: the token store did not answer.
	ErrUnavailable = errors.New("forwarding: store unavailable")
	// ErrKeyServiceDown: the key service did not answer, or answered with
	// something that is our outage (sealed, a dependency down, a signature
	// or allow-list problem). A retry with the same Idempotency-Key is safe:
	// the key service never forwards one key twice.
	ErrKeyServiceDown = errors.New("forwarding: key service unavailable")
)

// Tokens is the part of the token store a forward reads.
type Tokens interface {
	Get(ctx context.Context, merchantID, id string) (tokens.Token, error)
	TakeCVC(ctx context.Context, id string) (string, error)
}

// KeyService is the signed key-service client of the forward identity.
type KeyService interface {
	Forward(ctx context.Context, req wire.ForwardRequest) (wire.ForwardResponse, error)
}

var _ KeyService = (*client.Client)(nil)

// Event is what a forward's outcome tells a listener: never the card, the
// template, a body or the raw Idempotency-Key.
type Event struct {
	MerchantID  string
	TokenID     string
	Destination string
	// IdempotencyKey is the hashed key the key service saw (idk_...).
	IdempotencyKey string
	// Status is the destination's HTTP status (0 for a processor-key
	// destination, which sends nothing).
	Status int
	// Code is the failure's stable code (ForwardFailed only).
	Code string
}

// Events is the hook for merchant webhooks (forward.succeeded,
// forward.failed). Calls are synchronous and must not block: a listener
// queues its delivery. A replayed answer (a retry with the same
// Idempotency-Key) raises nothing: its event was raised the first time.
type Events interface {
	ForwardSucceeded(ctx context.Context, e Event)
	ForwardFailed(ctx context.Context, e Event)
}

// Request is the body of POST /v1/tokens/{id}/forward: a destination id
// (the key service operator's) and the request template, in the key
// service's own wire shape.
type Request struct {
	Destination string               `json:"destination"`
	Request     wire.ForwardTemplate `json:"request"`
}

// Validate checks the shape the key service would refuse anyway, so a
// malformed body costs no signed request and no CVC.
func (r Request) Validate() error {
	if err := wire.ValidateID("destination", r.Destination); err != nil {
		return err
	}
	return r.Request.Validate()
}

// Call is one forward as the merchant API receives it.
type Call struct {
	MerchantID     string
	TokenID        string
	IdempotencyKey string
	Request        Request
}

// KeyServiceError is a refusal by the key service that the merchant can act
// on, with the key service's stable code (one of Verdicts).
type KeyServiceError struct {
	Code       string
	RetryAfter time.Duration
	// Verdict is the code's entry in our table, found once by classify.
	Verdict *apierr.Error
	Err     error
}

func (e *KeyServiceError) Error() string { return "forwarding: key service refused: " + e.Code }
func (e *KeyServiceError) Unwrap() error { return e.Err }

// Verdicts are the key service's forward answers that reach the merchant
// with their own code: about the template, the destination, the card, the
// idempotency key or a limit. Anything else is ErrKeyServiceDown.
func Verdicts() []*apierr.Error {
	return []*apierr.Error{
		apierr.InvalidField, apierr.PANInText, apierr.TemplateInvalid, apierr.DestinationNotAllowed,
		apierr.CVCUnavailable, apierr.CVCInvalid, apierr.IdempotencyMismatch, apierr.IdempotencyInProgress,
		apierr.RateLimited, apierr.DestinationRefused, apierr.DestinationUnreachable, apierr.DestinationOutcomeUnknown,
		// The stored card itself: damaged, or under a retired key.
		apierr.CardUndecryptable, apierr.CardInvalid, apierr.CardUnsupported, apierr.UnknownKey, apierr.InvalidJWE, apierr.UnsupportedAlg,
		// No merchant binding for this card and merchant (a token stored
		// before bindings, not yet through `blindgate rewrap -all`).
		apierr.CardNotBound,
	}
}

// Service forwards merchants' tokens through the key service.
type Service struct {
	tokens Tokens
	ks     KeyService
	events Events
}

// New returns a Service. ks nil: forwarding is off (ErrDisabled). events
// may be nil.
func New(t Tokens, ks KeyService, events Events) *Service {
	return &Service{tokens: t, ks: ks, events: events}
}

// Enabled reports whether the gateway has a forward identity.
func (s *Service) Enabled() bool { return s != nil && s.ks != nil }

// Forward sends the merchant's token to a destination through the key
// service.
//
// The CVC: a template that uses {{card.cvc}} takes the CVC ciphertext out
// of the token store before the signed request (GETDEL), so two forwards
// can never both use it. If the key service then refuses before sending
// (a limit, a destination not allowed, an outage), that CVC is gone all
// the same: PCI DSS 3.3.1 lets it live only until the authorization it was
// collected for, and a CVC put back could be taken by a concurrent forward
// that the first one's retry then races. A retry with the same
// Idempotency-Key after a forward that did send gets the stored answer
// without the CVC (the key service's idempotency hash leaves ciphertexts
// out); any other template that needs the CVC then gets cvc_unavailable.
func (s *Service) Forward(ctx context.Context, c Call) (wire.ForwardResponse, error) {
	if !s.Enabled() {
		return wire.ForwardResponse{}, ErrDisabled
	}
	if err := ValidateIdempotencyKey(c.IdempotencyKey); err != nil {
		return wire.ForwardResponse{}, err
	}
	if err := c.Request.Validate(); err != nil {
		return wire.ForwardResponse{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !tokens.ValidID(c.TokenID) {
		return wire.ForwardResponse{}, ErrNotFound
	}
	t, err := s.tokens.Get(ctx, c.MerchantID, c.TokenID)
	switch {
	case errors.Is(err, tokens.ErrNotFound), errors.Is(err, tokens.ErrInvalid):
		return wire.ForwardResponse{}, ErrNotFound
	case err != nil:
		return wire.ForwardResponse{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if t.Binding == "" {
		// Stored before merchant bindings: the key service would refuse it,
		// so the CVC is not spent on the attempt.
		return wire.ForwardResponse{}, &KeyServiceError{Code: apierr.CardNotBound.Code, Verdict: apierr.CardNotBound, Err: errors.New("forwarding: token has no merchant binding")}
	}
	req := wire.ForwardRequest{
		JWE: t.JWE, Merchant: c.MerchantID, Token: t.ID, Destination: c.Request.Destination,
		IdempotencyKey: WireKey(c.IdempotencyKey), Template: c.Request.Request, Binding: t.Binding,
	}
	if c.Request.Request.NeedsCVC() {
		cvc, err := s.tokens.TakeCVC(ctx, t.ID)
		switch {
		case errors.Is(err, tokens.ErrNotFound):
			// Gone: the key service answers a retry from its store, or
			// cvc_unavailable.
		case err != nil:
			return wire.ForwardResponse{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		default:
			req.CVCJWE = cvc
		}
	}
	ev := Event{MerchantID: c.MerchantID, TokenID: t.ID, Destination: req.Destination, IdempotencyKey: req.IdempotencyKey}
	resp, err := s.ks.Forward(ctx, req)
	if err != nil {
		err = classify(err)
		var ke *KeyServiceError
		if errors.As(err, &ke) {
			ev.Code = ke.Code
		} else {
			ev.Code = apierr.KeyServiceDown.Code
		}
		if s.events != nil {
			s.events.ForwardFailed(ctx, ev)
		}
		return wire.ForwardResponse{}, err
	}
	if s.events != nil && !resp.Replayed {
		ev.Status = resp.Status
		s.events.ForwardSucceeded(ctx, ev)
	}
	return resp, nil
}

// classify sorts a key-service failure by its stable code, never by status.
// verdictByCode indexes Verdicts once: classify runs on every refusal.
var verdictByCode = func() map[string]*apierr.Error {
	m := map[string]*apierr.Error{}
	for _, v := range Verdicts() {
		m[v.Code] = v
	}
	return m
}()

func classify(err error) error {
	var ke *client.Error
	if !errors.As(err, &ke) {
		if errors.Is(err, wire.ErrInvalidRequest) {
			// The client refused to sign what the contract forbids; Validate
			// above should have caught it.
			return &KeyServiceError{Code: apierr.InvalidField.Code, Verdict: apierr.InvalidField, Err: err}
		}
		return fmt.Errorf("%w: %w", ErrKeyServiceDown, err)
	}
	if v, ok := verdictByCode[ke.Code]; ok {
		return &KeyServiceError{Code: ke.Code, RetryAfter: ke.RetryAfter, Verdict: v, Err: err}
	}
	return fmt.Errorf("%w: %w", ErrKeyServiceDown, err)
}

// ValidateIdempotencyKey: 1-255 printable ASCII characters (space included),
// nothing shaped like a card number (the key is hashed before it leaves the
// gateway, but a merchant's logs hold it as sent).
func ValidateIdempotencyKey(k string) error {
	if !idempotency.ValidKey(k) {
		return &FieldError{Field: "Idempotency-Key", Reason: fmt.Sprintf("header is required: 1-%d printable characters, not a card number", idempotency.MaxKeyLen)}
	}
	return nil
}

// FieldError is an ErrInvalid naming the field and the rule, never the
// value; its PublicReason may be shown to the merchant.
type FieldError struct{ Field, Reason string }

func (e *FieldError) Error() string        { return "forwarding: invalid " + e.PublicReason() }
func (e *FieldError) PublicReason() string { return e.Field + " " + e.Reason }
func (e *FieldError) Unwrap() error        { return ErrInvalid }

// WireKey is the idempotency key the key service sees: "idk_" and 128 bits
// of SHA-256 of the merchant's key, one letter a-p per nibble. The key
// service scopes it by merchant; its audit trail and store hold a
// fixed-shape value, never the merchant's text. Letters, not hex: a hex
// string holds digit runs, and about one key in 350 had a Luhn-valid run of
// 12 or more that the key service's card-shape check refused.
func WireKey(k string) string {
	sum := sha256.Sum256([]byte(k))
	out := make([]byte, 0, 4+32)
	out = append(out, "idk_"...)
	for _, b := range sum[:16] {
		out = append(out, 'a'+b>>4, 'a'+b&0x0f)
	}
	return string(out)
}
