package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/gateway/forwarding"
	"github.com/blindgate/blindgate/gateway/ingest"
	"github.com/blindgate/blindgate/gateway/merchants"
	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/httpapi"
)

const merchantKey = "bg.merchant"

// The merchant API's two 401 answers: the code is the key service's for a
// bad signature (clients map codes), the message says what a merchant has
// to fix, which is its API key, not a signature.
var (
	apiKeyMissing = &apierr.Error{Status: apierr.Unauthenticated.Status, Code: apierr.Unauthenticated.Code,
		Message: "Missing API key: send your secret key as Authorization: Bearer sk_..."}
	apiKeyInvalid = &apierr.Error{Status: apierr.Unauthenticated.Status, Code: apierr.Unauthenticated.Code,
		Message: "Invalid API key."}
)

// merchantAuth authenticates "Authorization: Bearer sk_...".
func (s *Server) merchantAuth(c *fiber.Ctx) error {
	h := c.Get(fiber.HeaderAuthorization)
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || secret == "" {
		return apiKeyMissing
	}
	m, err := s.deps.Merchants.Authenticate(c.UserContext(), strings.Clone(secret))
	if err != nil {
		if errors.Is(err, merchants.ErrUnauthorized) {
			// Unknown, malformed, rotated out: one answer (the store tells
			// nothing more either).
			return apiKeyInvalid.Wrap(err)
		}
		return apierr.Unavailable.Wrap(err)
	}
	c.Locals(merchantKey, m)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}

func merchantOf(c *fiber.Ctx) merchants.Merchant {
	m, _ := c.Locals(merchantKey).(merchants.Merchant)
	return m
}

// CreateSessionRequest is the body of POST /v1/checkout/sessions.
type CreateSessionRequest struct {
	AllowedOrigins []string            `json:"allowed_origins"`
	ReturnURL      string              `json:"return_url"`
	Appearance     sessions.Appearance `json:"appearance"`
	Locale         string              `json:"locale"`
	MaxAttempts    int                 `json:"max_attempts"`
	TTLSeconds     int                 `json:"ttl_seconds"`
	// Amount is read by amount(): kept raw so that 25.5 or "2500" gets
	// invalid_field naming the rule, not bad_request.
	Amount     json.RawMessage `json:"amount"`
	Currency   string          `json:"currency"`
	SubmitType string          `json:"submit_type"`
	// Reference (the merchant's order number) and Metadata are kept with
	// the token (gateway/orderref's limits).
	Reference string            `json:"reference"`
	Metadata  map[string]string `json:"metadata"`
}

// amount reads the request's amount: a JSON integer of minor units, or
// absent (or null) for none. The range is checkout.Payment's rule, checked
// again by the store.
func (r CreateSessionRequest) amount() (int64, error) {
	raw := bytes.TrimSpace(r.Amount)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	bad := &sessions.FieldError{Field: "amount", Reason: checkout.AmountRule()}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, bad
		}
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < 1 || n > checkout.MaxAmount {
		return 0, bad
	}
	return n, nil
}

// open is the request for ingest; call it after Validate, which has read
// the amount.
func (r CreateSessionRequest) open() ingest.OpenRequest {
	amount, _ := r.amount()
	return ingest.OpenRequest{
		AllowedOrigins: r.AllowedOrigins, ReturnURL: r.ReturnURL, Appearance: r.Appearance,
		Locale: r.Locale, MaxAttempts: r.MaxAttempts, TTL: time.Duration(r.TTLSeconds) * time.Second,
		Amount: amount, Currency: r.Currency, SubmitType: r.SubmitType,
		Reference: r.Reference, Metadata: r.Metadata,
	}
}

// Validate reads the amount and applies ingest's rule for the request's
// shape; the store checks each value.
func (r CreateSessionRequest) Validate() error {
	if _, err := r.amount(); err != nil {
		return err
	}
	return r.open().Validate()
}

// SessionResponse answers session creation.
type SessionResponse struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Server) createSession(c *fiber.Ctx) error {
	var req CreateSessionRequest
	if err := httpapi.Bind(c.Body(), &req); err != nil {
		return err
	}
	created, err := s.deps.Ingest.Open(c.UserContext(), merchantOf(c), req.open())
	switch {
	case err == nil:
	case errors.Is(err, ingest.ErrOriginNotAllowed):
		return apierr.OriginNotAllowed.Wrap(err)
	case errors.Is(err, sessions.ErrPANInText):
		// The field's name, never its value.
		var fe *sessions.FieldError
		errors.As(err, &fe)
		return &apierr.Error{Status: apierr.PANInText.Status, Code: apierr.PANInText.Code, Err: err,
			Message: "Field " + fe.Field + " looks like a card number; never put a card number outside the card form."}
	case errors.Is(err, sessions.ErrInvalid):
		// The store's FieldError says which rule; nothing else of err is shown.
		return httpapi.InvalidField(err)
	default:
		return apierr.Unavailable.Wrap(err)
	}
	return c.Status(fiber.StatusCreated).JSON(SessionResponse{
		ID: created.ID, URL: s.deps.Config.PublicURL + "/checkout/" + created.ID, ExpiresAt: created.ExpiresAt,
	})
}

// TokenView is the masked card the merchant API returns (Contract 4).
type TokenView struct {
	ID          string    `json:"id"`
	SessionID   string    `json:"session_id,omitempty"` // the checkout session that created it
	Brand       string    `json:"brand"`
	BIN         string    `json:"bin"`
	Last4       string    `json:"last4"`
	ExpMonth    int       `json:"exp_month"`
	ExpYear     int       `json:"exp_year"`
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
	// The merchant's own reference and metadata, from the checkout session.
	Reference string            `json:"reference,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

func viewOf(t tokens.Token) TokenView {
	return TokenView{ID: t.ID, SessionID: t.SessionID, Brand: t.Brand, BIN: t.BIN, Last4: t.Last4, ExpMonth: t.ExpMonth, ExpYear: t.ExpYear,
		Fingerprint: t.Fingerprint, CreatedAt: t.CreatedAt, Reference: t.Reference, Metadata: t.Metadata}
}

func (s *Server) getToken(c *fiber.Ctx) error {
	t, err := s.deps.Tokens.Get(c.UserContext(), merchantOf(c).ID, strings.Clone(c.Params("id")))
	if err != nil {
		return tokenError(err)
	}
	return c.JSON(viewOf(t))
}

// TokenList is a page of tokens, newest first.
type TokenList struct {
	Data       []TokenView `json:"data"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

func (s *Server) listTokens(c *fiber.Ctx) error {
	limit := 0
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > tokens.MaxListLimit {
			return &apierr.Error{Status: 400, Code: apierr.InvalidField.Code, Message: fmt.Sprintf("Invalid field: limit must be 1-%d", tokens.MaxListLimit)}
		}
		limit = n
	}
	page, next, err := s.deps.Tokens.List(c.UserContext(), merchantOf(c).ID, strings.Clone(c.Query("cursor")), limit)
	if err != nil {
		if errors.Is(err, tokens.ErrInvalid) {
			return &apierr.Error{Status: 400, Code: apierr.InvalidField.Code, Message: "Invalid field: cursor", Err: err}
		}
		return apierr.Unavailable.Wrap(err)
	}
	out := TokenList{Data: make([]TokenView, 0, len(page)), NextCursor: next}
	for _, t := range page {
		out.Data = append(out.Data, viewOf(t))
	}
	return c.JSON(out)
}

func (s *Server) deleteToken(c *fiber.Ctx) error {
	m := merchantOf(c)
	id := strings.Clone(c.Params("id"))
	if err := s.deps.Tokens.Delete(c.UserContext(), m.ID, id); err != nil {
		return tokenError(err)
	}
	s.audit(c, audit.Event{Event: audit.EventTokenDelete, Client: m.ID, Resource: id, Outcome: audit.OutcomeSuccess})
	return c.SendStatus(fiber.StatusNoContent)
}

// ForwardView is a forward's answer on the merchant API (Contract 4): the
// destination's status, its allowed headers and its body with every card
// number masked; or, for a processor-key destination, only jwe. Replayed
// says a retry with the same Idempotency-Key got the stored answer and
// nothing was sent again.
type ForwardView struct {
	Status   int               `json:"status,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
	Body     string            `json:"body,omitempty"`
	JWE      string            `json:"jwe,omitempty"`
	Replayed bool              `json:"replayed,omitempty"`
}

func (s *Server) forwardToken(c *fiber.Ctx) error {
	if s.deps.Forwarding == nil {
		return forwardDisabled
	}
	var req forwarding.Request
	if err := httpapi.Bind(c.Body(), &req); err != nil {
		return err
	}
	resp, err := s.deps.Forwarding.Forward(c.UserContext(), forwarding.Call{
		MerchantID: merchantOf(c).ID, TokenID: strings.Clone(c.Params("id")),
		IdempotencyKey: strings.Clone(c.Get("Idempotency-Key")), Request: req,
	})
	if err != nil {
		return forwardError(err)
	}
	return c.JSON(ForwardView{Status: resp.Status, Headers: resp.Headers, Body: resp.Body, JWE: resp.JWE, Replayed: resp.Replayed})
}

var forwardDisabled = &apierr.Error{Status: fiber.StatusNotFound, Code: apierr.NotFound.Code, Message: "Forwarding is not enabled on this gateway."}

// forwardError maps the forward policy's errors; the key service's verdicts
// keep their code (found by code, never by status), and anything else from
// it is keyservice_unavailable: a retry with the same Idempotency-Key is safe.
func forwardError(err error) error {
	var ke *forwarding.KeyServiceError
	switch {
	case errors.Is(err, forwarding.ErrDisabled):
		return forwardDisabled
	case errors.Is(err, forwarding.ErrInvalid):
		return httpapi.InvalidField(err)
	case errors.Is(err, forwarding.ErrNotFound):
		return apierr.NotFound.Wrap(err)
	case errors.Is(err, forwarding.ErrUnavailable):
		return apierr.Unavailable.Wrap(err)
	case errors.As(err, &ke) && ke.Verdict != nil:
		return ke.Verdict.WithRetry(ke.RetryAfter).Wrap(err)
	}
	return apierr.KeyServiceDown.WithRetry(5 * time.Second).Wrap(err)
}

func tokenError(err error) error {
	switch {
	case errors.Is(err, tokens.ErrNotFound), errors.Is(err, tokens.ErrInvalid):
		return apierr.NotFound.Wrap(err)
	default:
		return apierr.Unavailable.Wrap(err)
	}
}

// audit records a gateway event; a failure is logged, not shown: merchant
// and checkout answers do not depend on the gateway's own trail.
func (s *Server) audit(c *fiber.Ctx, e audit.Event) {
	if s.deps.Audit == nil {
		return
	}
	if e.Origin == "" {
		e.Origin = s.clientIP(c)
	}
	if _, err := s.deps.Audit.Append(c.UserContext(), e); err != nil {
		s.deps.Log.Error("gateway audit append failed", "event", e.Event, "err", err)
	}
}
