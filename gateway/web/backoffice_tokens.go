package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// boBrands lists the brands the search form offers, with their names; an
// icon for each is under /assets/brands/.
func boBrands() []wire.BrandInfo { return wire.Brands() }

// boTokenRow is a token as the back office shows it: masked fields only
// (PCI DSS 3.4.1: at most the BIN and the last four digits).
type boTokenRow struct {
	ID, Merchant           string
	Brand, BrandName, Icon string
	Masked                 string // "42424242 •••• 4242"
	Last4                  string
	Exp                    string // "12/2030"
	Created                string // "2026-11-27 05:44 UTC"
	Kid, Fingerprint       string // detail page only
	DupesURL               string
}

func tokenRow(t tokens.Token) boTokenRow {
	r := boTokenRow{
		ID: t.ID, Merchant: t.MerchantID, Brand: t.Brand, BrandName: "Card", Icon: "/assets/brands/unknown.svg",
		Masked: t.BIN + " •••• " + t.Last4, Last4: t.Last4,
		Exp:     fmt.Sprintf("%02d/%d", t.ExpMonth, t.ExpYear),
		Created: t.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"),
		Kid:     t.Kid, Fingerprint: t.Fingerprint,
		DupesURL: boPrefix + "/tokens?" + url.Values{"dupes": {t.ID}}.Encode(),
	}
	for _, b := range boBrands() {
		if strings.EqualFold(t.Brand, b.ID) {
			r.BrandName, r.Icon = b.Name, "/assets/brands/"+b.ID+".svg"
		}
	}
	return r
}

// boTokensPage is the data of backoffice_tokens.html.
type boTokensPage struct {
	boBase
	Form     backoffice.SearchForm
	Brands   []wire.BrandInfo
	Rows     []boTokenRow
	Error    string
	Filtered bool
	Limit    int
}

func (s *Server) boTokens(c *fiber.Ctx, a *boActor) error {
	f := backoffice.SearchForm{
		Token: c.Query("token"), Last4: c.Query("last4"), BIN: c.Query("bin"), Brand: c.Query("brand"),
		Fingerprint: c.Query("fingerprint"), Dupes: c.Query("dupes"), From: c.Query("from"), To: c.Query("to"),
	}.Normalize()
	p := boTokensPage{boBase: s.base("Tokens", "tokens", a), Form: f, Brands: boBrands(), Limit: backoffice.SearchLimit,
		Filtered: f != backoffice.SearchForm{}}
	found, err := s.office.Search(c.UserContext(), a.Actor, f)
	var ie *backoffice.InvalidError
	if errors.As(err, &ie) {
		p.Error = ie.Msg
		return s.render(c, http.StatusBadRequest, "backoffice_tokens.html", p)
	}
	if err != nil {
		return boDomainError(err)
	}
	for _, t := range found {
		p.Rows = append(p.Rows, tokenRow(t))
	}
	return s.render(c, http.StatusOK, "backoffice_tokens.html", p)
}

// boTokenPage is the data of backoffice_token.html (detail and reveal form).
type boTokenPage struct {
	boBase
	Token  boTokenRow
	Reason string
	Error  string
}

func (s *Server) boToken(c *fiber.Ctx, a *boActor) error {
	t, err := s.office.Token(c.UserContext(), a.Actor, strings.Clone(c.Params("id")))
	if err != nil {
		return boDomainError(err)
	}
	return s.render(c, http.StatusOK, "backoffice_token.html", boTokenPage{boBase: s.base("Token", "tokens", a), Token: tokenRow(t)})
}

// boReauthPage is the data of backoffice_reauth.html.
type boReauthPage struct {
	boBase
	Token  boTokenRow
	Reason string
	Error  string
}

// boRevealedPage is the data of backoffice_revealed.html. PAN is the full
// number; this struct is rendered once and never logged.
type boRevealedPage struct {
	boBase
	Token  boTokenRow
	PAN    string // grouped in fours
	Exp    string
	Name   string
	Reason string
}

// boReveal binds the reveal form, lets backoffice.Service.Reveal apply the
// policy (role, scope, reason, fresh authentication, lockout, audit, then
// the key service) and renders its answer.
func (s *Server) boReveal(c *fiber.Ctx, a *boActor) error {
	res, err := s.office.Reveal(c.UserContext(), a.Actor, backoffice.RevealRequest{
		TokenID:  strings.Clone(c.Params("id")),
		Reason:   c.FormValue("reason"),
		Password: strings.Clone(c.FormValue("password")),
		Code:     strings.Clone(c.FormValue("code")),
	})
	var ie *backoffice.InvalidError
	switch {
	case errors.Is(err, backoffice.ErrForbidden):
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code, Err: err,
			Message: fmt.Sprintf("Your role (%s) may not reveal card numbers. This attempt has been recorded.", a.Op.Role)}
	case errors.As(err, &ie):
		msg := ie.Msg
		if errors.Is(err, wire.ErrPANInText) {
			msg = apierr.PANInText.Message
		}
		return s.render(c, http.StatusBadRequest, "backoffice_token.html",
			boTokenPage{boBase: s.base("Token", "tokens", a), Token: tokenRow(res.Token), Reason: res.Reason, Error: msg})
	case errors.Is(err, backoffice.ErrReauthRequired), errors.Is(err, backoffice.ErrReauthFailed):
		msg := ""
		if errors.Is(err, backoffice.ErrReauthFailed) {
			msg = "Wrong password or code."
		}
		return s.render(c, http.StatusUnauthorized, "backoffice_reauth.html",
			boReauthPage{boBase: s.base("Confirm it is you", "tokens", a), Token: tokenRow(res.Token), Reason: res.Reason, Error: msg})
	case errors.Is(err, backoffice.ErrLocked):
		s.setCookie(c, s.cookieName(), "", -1)
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code, Err: err,
			Message: "Too many failed attempts: your account is locked and you have been logged out. Ask an administrator, or try again later."}
	case err != nil:
		return revealError(err)
	}
	p := boRevealedPage{
		boBase: s.base("Card number", "tokens", a),
		Token:  tokenRow(res.Token),
		PAN:    groupsOf(res.Card.PAN, 4),
		Exp:    fmt.Sprintf("%02d/%d", res.Card.ExpMonth, res.Card.ExpYear),
		Name:   res.Card.Name,
		Reason: res.Reason,
	}
	// The page is the only copy: no-store (set by bo) keeps it out of every
	// cache and the back/forward cache; the script hides it after 60 s.
	c.Set(fiber.HeaderExpires, "0")
	return s.render(c, http.StatusOK, "backoffice_revealed.html", p)
}

// revealError says what a failed reveal means and that nothing was
// revealed. The domain classified the key service's answer by its code;
// the messages are ours, the key service's text is not shown.
func revealError(err error) error {
	var ke *backoffice.KeyServiceError
	if !errors.As(err, &ke) {
		return boDomainError(err)
	}
	switch {
	case errors.Is(err, backoffice.ErrKeyServiceLimited):
		return &apierr.Error{Status: http.StatusTooManyRequests, Code: apierr.RateLimited.Code, RetryAfter: ke.RetryAfter, Err: err,
			Message: "Reveal limit reached: the key service allows each operator only a few reveals in a short window and per day. Nothing was revealed."}
	case errors.Is(err, backoffice.ErrKeyServiceDown) && ke.Code == "":
		return &apierr.Error{Status: http.StatusServiceUnavailable, Code: apierr.KeyServiceDown.Code, Err: err,
			Message: "The key service cannot be reached. Nothing was revealed; try again later."}
	case errors.Is(err, backoffice.ErrKeyServiceDown):
		return &apierr.Error{Status: http.StatusServiceUnavailable, Code: apierr.KeyServiceDown.Code, RetryAfter: ke.RetryAfter, Err: err,
			Message: "The key service is unavailable (sealed, or its audit log or a dependency is down). Nothing was revealed; try again later."}
	case errors.Is(err, backoffice.ErrKeyServiceForbidden):
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code, Err: err,
			Message: "The key service refused this reveal. Nothing was revealed."}
	case errors.Is(err, backoffice.ErrUndecryptable):
		return &apierr.Error{Status: http.StatusUnprocessableEntity, Code: apierr.CardUndecryptable.Code, Err: err,
			Message: "The stored card cannot be decrypted (its key may have been retired). Nothing was revealed."}
	case errors.Is(err, backoffice.ErrKeyServiceInvalid):
		return &apierr.Error{Status: http.StatusBadRequest, Code: apierr.InvalidField.Code, Err: err,
			Message: "The key service found a field of the reveal request invalid; check the reason. Nothing was revealed."}
	}
	return &apierr.Error{Status: http.StatusBadGateway, Code: apierr.Unavailable.Code, Err: err,
		Message: "The key service did not accept the request. Nothing was revealed."}
}

// boDomainError maps the back office's domain errors that every page shares.
func boDomainError(err error) error {
	switch {
	case errors.Is(err, backoffice.ErrNotFound):
		return apierr.NotFound.Wrap(err)
	case errors.Is(err, backoffice.ErrForbidden):
		return apierr.Forbidden.Wrap(err)
	case errors.Is(err, backoffice.ErrAuditFailed):
		return apierr.AuditFailed.Wrap(err)
	case errors.Is(err, backoffice.ErrUnavailable):
		return apierr.Unavailable.Wrap(err)
	}
	return err
}
