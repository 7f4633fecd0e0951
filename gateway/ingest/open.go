package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/blindgate/blindgate/gateway/merchants"
	"github.com/blindgate/blindgate/gateway/sessions"
)

// ErrOriginNotAllowed: a session names an origin (or, through its return
// URL, a site) the merchant did not register.
var ErrOriginNotAllowed = errors.New("ingest: origin not allowed")

// Limits of a merchant's request for a session. The store's own limits
// (sessions.MaxMaxAttempts, sessions.MaxTTL) are the outer bounds.
const (
	MaxRequestOrigins = 10
	MinTTL            = time.Minute
)

// OpenRequest is a merchant's request for a checkout session. Zero values
// mean the defaults: the merchant's registered origins, the store's TTL,
// attempt budget, locale and appearance.
type OpenRequest struct {
	AllowedOrigins []string
	ReturnURL      string
	Appearance     sessions.Appearance
	Locale         string
	MaxAttempts    int
	TTL            time.Duration
	// Amount in minor units of Currency (ISO 4217) and the button's
	// wording; the store checks them against the checkout's rules.
	Amount     int64
	Currency   string
	SubmitType string
	// Reference and Metadata are the merchant's own, kept with the session
	// and then with its token (gateway/orderref's rule, checked by the store).
	Reference string
	Metadata  map[string]string
}

// Validate checks the request's shape; the store checks each value
// (origins, return URL, locale, appearance) with its own rules.
func (r OpenRequest) Validate() error {
	switch {
	case len(r.AllowedOrigins) > MaxRequestOrigins:
		return &sessions.FieldError{Field: "allowed_origins", Reason: fmt.Sprintf("must be at most %d", MaxRequestOrigins)}
	case r.MaxAttempts < 0 || r.MaxAttempts > sessions.MaxMaxAttempts:
		return &sessions.FieldError{Field: "max_attempts", Reason: fmt.Sprintf("must be 0 (default) to %d", sessions.MaxMaxAttempts)}
	case r.TTL != 0 && (r.TTL < MinTTL || r.TTL > sessions.MaxTTL):
		return &sessions.FieldError{Field: "ttl_seconds", Reason: fmt.Sprintf("must be %d to %d", int(MinTTL.Seconds()), int(sessions.MaxTTL.Seconds()))}
	}
	return nil
}

// Open creates a checkout session for merchant m. The session may only name
// origins m registered (by default all of them): a leaked secret key must
// not let anyone frame the page on their own site, nor, through the return
// URL (which the store requires to be on an allowed origin), send the
// shopper there.
func (svc *Service) Open(ctx context.Context, m merchants.Merchant, req OpenRequest) (sessions.Session, error) {
	if err := req.Validate(); err != nil {
		return sessions.Session{}, err
	}
	asked := req.AllowedOrigins
	if len(asked) == 0 {
		asked = m.AllowedOrigins
	}
	// A new slice: the merchant's own list is never rewritten.
	origins := make([]string, 0, len(asked))
	for i, o := range asked {
		n, err := sessions.ValidateOrigin(o)
		if err != nil || !slices.Contains(m.AllowedOrigins, n) {
			return sessions.Session{}, fmt.Errorf("%w: origin %d", ErrOriginNotAllowed, i)
		}
		origins = append(origins, n)
	}
	if len(origins) == 0 {
		return sessions.Session{}, fmt.Errorf("%w: the merchant has no allowed origin", ErrOriginNotAllowed)
	}
	sess := sessions.Session{
		MerchantID: m.ID, AllowedOrigins: origins, ReturnURL: req.ReturnURL,
		Appearance: req.Appearance, Locale: req.Locale, MaxAttempts: req.MaxAttempts,
		Amount: req.Amount, Currency: req.Currency, SubmitType: req.SubmitType,
		Reference: req.Reference, Metadata: req.Metadata,
	}
	if req.TTL > 0 {
		sess.CreatedAt = svc.now().UTC()
		sess.ExpiresAt = sess.CreatedAt.Add(req.TTL)
	}
	created, err := svc.sessions.Create(ctx, sess)
	if err != nil {
		return sessions.Session{}, fmt.Errorf("ingest: open session: %w", err)
	}
	return created, nil
}
