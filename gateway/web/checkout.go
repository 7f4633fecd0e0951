package web

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/gateway/ingest"
	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/httpapi"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/client"
)

// checkoutPage renders the hosted page. It is framed only by the session's
// allowed origins (CSP frame-ancestors) and never cached.
func (s *Server) checkoutPage(c *fiber.Ctx) error {
	sess, err := s.deps.Sessions.Get(c.UserContext(), strings.Clone(c.Params("session")))
	if err == nil && sess.Completed() {
		err = sessions.ErrCompleted
	}
	if err != nil {
		return s.checkoutErrorPage(c, sess.Locale, sessionError(err))
	}
	data := s.deps.Assets.NewPageData(checkout.DefaultAssetBase, sess.ID, sess.Locale)
	data.ParentOrigin = strings.Join(sess.AllowedOrigins, " ")
	data.ReturnURL = sess.ReturnURL
	pay := checkout.Payment{Amount: sess.Amount, Currency: sess.Currency, SubmitType: sess.SubmitType}
	// The merchant's name is read now, so a renamed merchant shows its new
	// name. Without it the page still takes the card: the name is for the
	// shopper's confidence, not a check.
	if m, err := s.deps.Merchants.Get(c.UserContext(), sess.MerchantID); err == nil {
		pay.Merchant = m.Name
	} else {
		s.deps.Log.Warn("checkout page: merchant name unavailable", "merchant_id", sess.MerchantID, "err", err)
	}
	if err := data.SetPayment(pay); err != nil {
		// Stored under rules since changed: the page shows no amount rather
		// than one it cannot write exactly.
		s.deps.Log.Warn("checkout page: session payment not shown", "merchant_id", sess.MerchantID, "err", err)
	}
	var buf bytes.Buffer
	if err := s.deps.Pages.ExecuteTemplate(&buf, "checkout.html", data); err != nil {
		return err
	}
	c.Set("Content-Security-Policy", checkout.PageCSP(data.ParentOrigin))
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(buf.Bytes())
}

// checkoutErrorPage shows a shopper who opens a dead session a page, not a
// JSON body: the session is over, and the page says so in its language.
func (s *Server) checkoutErrorPage(c *fiber.Ctx, locale string, err error) error {
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Status >= 500 {
		return err
	}
	lang, strs := s.deps.Assets.Strings(locale)
	data := struct {
		Lang, Code, MessageKey string
		Strings                map[string]string
		Styles                 []checkout.Style
	}{Lang: lang, Code: ae.Code, MessageKey: "srv_session_expired", Strings: strs, Styles: s.deps.Assets.PageStyles(checkout.DefaultAssetBase)}
	var buf bytes.Buffer
	if err := s.deps.Pages.ExecuteTemplate(&buf, "checkout_error.html", data); err != nil {
		return err
	}
	c.Set("Content-Security-Policy", checkout.PageCSP(""))
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(ae.Status).Send(buf.Bytes())
}

// themeCSS turns the session's validated appearance into CSS variables.
func (s *Server) themeCSS(c *fiber.Ctx) error {
	sess, err := s.deps.Sessions.Get(c.UserContext(), strings.Clone(c.Params("session")))
	if err != nil && !errors.Is(err, sessions.ErrExpired) {
		return sessionError(err)
	}
	css, err := themeOf(sess.Appearance).CSS()
	if err != nil {
		css = nil // an unrenderable theme falls back to the default look
	}
	c.Set(fiber.HeaderContentType, "text/css; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(css)
}

func themeOf(a sessions.Appearance) checkout.Theme {
	t := checkout.Theme{Primary: a.Primary, Background: a.Background, Text: a.Text}
	switch a.Font {
	case "system-ui":
		t.Font = "system"
	case "serif", "georgia":
		t.Font = "serif"
	case "monospace":
		t.Font = "mono"
	case "":
	default:
		t.Font = "sans"
	}
	if r := strings.TrimSuffix(a.Radius, "px"); r != "" {
		if n, err := strconv.Atoi(r); err == nil {
			t.Radius = strconv.Itoa(min(n, 24)) + "px"
		}
	}
	return t
}

// SubmitRequest is what the page posts: ciphertexts only.
type SubmitRequest struct {
	CardJWE string `json:"card_jwe"`
	CVCJWE  string `json:"cvc_jwe,omitempty"`
}

// Validate is shape only; ingest checks the rest.
func (r SubmitRequest) Validate() error {
	if r.CardJWE == "" {
		return &httpapi.FieldError{Field: "card_jwe", Reason: "is required"}
	}
	return nil
}

func (s *Server) submit(c *fiber.Ctx) error {
	var req SubmitRequest
	if err := httpapi.Bind(c.Body(), &req); err != nil {
		return err
	}
	sub := ingest.Submission{
		SessionID: strings.Clone(c.Params("session")), CardJWE: req.CardJWE, CVCJWE: req.CVCJWE,
		ClientIP: s.clientIP(c),
	}
	t, err := s.deps.Ingest.Submit(c.UserContext(), sub)
	if err != nil {
		return submitError(err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"token": t.ID})
}

// keys serves the public KEK set to the page. The gateway caches it; a key
// service outage with nothing cached is a 503 the page shows as "retry later".
func (s *Server) keys(c *fiber.Ctx) error {
	b, err := s.deps.Keys.JWKS(c.UserContext())
	if err != nil {
		return apierr.KeyServiceDown.Wrap(err)
	}
	c.Set(fiber.HeaderContentType, "application/jwk-set+json")
	c.Set(fiber.HeaderCacheControl, "public, max-age=60")
	return c.Send(b)
}

// embedJS is the merchant's script. It is fetched cross-origin with SRI, so
// it needs CORS; it carries no secret.
func (s *Server) embedJS(c *fiber.Ctx) error {
	b, ct, ok := s.deps.Assets.Asset(checkout.ScriptEmbed)
	if !ok {
		return apierr.NotFound
	}
	c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
	c.Set(fiber.HeaderContentType, ct)
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.Send(b)
}

func (s *Server) asset(c *fiber.Ctx) error {
	name := strings.TrimPrefix(c.Params("*"), "checkout/")
	b, ct, ok := s.deps.Assets.Asset(name)
	if !ok {
		return apierr.NotFound
	}
	c.Set(fiber.HeaderContentType, ct)
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.Send(b)
}

func sessionError(err error) error {
	switch {
	case errors.Is(err, sessions.ErrNotFound), errors.Is(err, sessions.ErrInvalid):
		return apierr.SessionNotFound.Wrap(err)
	case errors.Is(err, sessions.ErrExpired):
		return apierr.SessionExpired.Wrap(err)
	case errors.Is(err, sessions.ErrCompleted):
		return apierr.SessionCompleted.Wrap(err)
	case errors.Is(err, sessions.ErrTooManyAttempts):
		return apierr.TooManyAttempts.Wrap(err)
	case errors.Is(err, sessions.ErrBusy):
		return apierr.SessionBusy.WithRetry(2 * time.Second).Wrap(err)
	default:
		return apierr.Unavailable.Wrap(err)
	}
}

// submitError maps ingest failures to the codes the page understands. Card
// verdicts from the key service pass through with their own code; anything
// else from it means "retry later": the shopper cannot fix our outage.
func submitError(err error) error {
	var le *ratelimit.Refused
	var ke *client.Error
	switch {
	case errors.As(err, &le):
		return apierr.RateLimited.WithRetry(le.RetryAfter).Wrap(err)
	case errors.Is(err, ingest.ErrInvalid):
		return apierr.InvalidJWE.Wrap(err)
	case errors.Is(err, sessions.ErrNotFound), errors.Is(err, sessions.ErrExpired), errors.Is(err, sessions.ErrCompleted), errors.Is(err, sessions.ErrTooManyAttempts), errors.Is(err, sessions.ErrInvalid), errors.Is(err, sessions.ErrBusy):
		return sessionError(err)
	case errors.As(err, &ke):
		if v, ok := shopperVerdict(ke); ok {
			return v.Wrap(err)
		}
		retry := ke.RetryAfter
		if retry <= 0 {
			retry = 5 * time.Second
		}
		return apierr.KeyServiceDown.WithRetry(retry).Wrap(err)
	case errors.Is(err, ingest.ErrUnavailable):
		return apierr.Unavailable.Wrap(err)
	default:
		// Transport failures reaching the key service.
		return apierr.KeyServiceDown.WithRetry(5 * time.Second).Wrap(err)
	}
}

// shopperVerdicts are the key service's inspect answers about the shopper's
// own input (the card, or a page too old for the current keys). They reach the
// page with their code, status and our message; anything else from the key
// service is our outage, which the shopper cannot fix: "retry later".
func shopperVerdicts() []*apierr.Error {
	return []*apierr.Error{
		apierr.CardUndecryptable, apierr.CardInvalid, apierr.CardExpired, apierr.CardUnsupported, apierr.CardStale,
		apierr.UnknownKey, apierr.InvalidJWE, apierr.UnsupportedAlg, apierr.SessionMismatch,
		apierr.CVCInvalid,
		// The enumeration guard's refusal is about this card, not our load.
		apierr.CardEnumeration,
	}
}

// shopperVerdict finds a key-service answer among shopperVerdicts by its
// code: never by status, which several codes share.
func shopperVerdict(e *client.Error) (*apierr.Error, bool) {
	for _, v := range shopperVerdicts() {
		if v.Code == e.Code {
			return v, true
		}
	}
	return nil, false
}

// checkoutCodes is every code the checkout page's endpoints (GET /v1/keys,
// POST /checkout/{session}/submit) can answer. checkout.js has a message for
// each, in every language; a test checks both that and that submitError
// answers nothing else.
func checkoutCodes() []*apierr.Error {
	return append([]*apierr.Error{
		apierr.BadRequest, apierr.DuplicateKey, apierr.InvalidField, apierr.TooLarge, apierr.Internal,
		apierr.RateLimited, apierr.InvalidJWE,
		apierr.SessionNotFound, apierr.SessionExpired, apierr.SessionCompleted, apierr.SessionBusy, apierr.TooManyAttempts,
		apierr.KeyServiceDown, apierr.Unavailable,
	}, shopperVerdicts()...)
}
