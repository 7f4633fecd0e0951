package backofficehttp

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

// brands lists the brands the search form offers, with their names; an
// icon for each is under /assets/brands/.
func brands() []wire.BrandInfo { return wire.Brands() }

// tokenRow is a token as the back office shows it: masked fields only
// (PCI DSS 3.4.1: at most the BIN and the last four digits).
type tokenRow struct {
	ID, Merchant           string
	Brand, BrandName, Icon string
	Masked                 string // "42424242 •••• 4242"
	Last4                  string
	Exp                    string // "12/2030"
	Created                string // "2026-11-27 05:44 UTC"
	Kid, Fingerprint       string // detail page only
	DupesURL               string
}

func rowOf(t tokens.Token) tokenRow {
	r := tokenRow{
		ID: t.ID, Merchant: t.MerchantID, Brand: t.Brand, BrandName: "Card", Icon: "/assets/brands/unknown.svg",
		Masked: t.BIN + " •••• " + t.Last4, Last4: t.Last4,
		Exp:     fmt.Sprintf("%02d/%d", t.ExpMonth, t.ExpYear),
		Created: t.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"),
		Kid:     t.Kid, Fingerprint: t.Fingerprint,
		DupesURL: Prefix + "/tokens?" + url.Values{"dupes": {t.ID}}.Encode(),
	}
	for _, b := range brands() {
		if strings.EqualFold(t.Brand, b.ID) {
			r.BrandName, r.Icon = b.Name, "/assets/brands/"+b.ID+".svg"
		}
	}
	return r
}

// tokensPage is the data of backoffice_tokens.html.
type tokensPage struct {
	pageBase
	Form     backoffice.SearchForm
	Brands   []wire.BrandInfo
	Rows     []tokenRow
	Error    string
	Filtered bool
	Limit    int
	// IndexBuilding: some merchant's tokens are not in the search index
	// yet, so this search read them whole.
	IndexBuilding bool
}

func (h *Handler) search(c *fiber.Ctx, a *backoffice.Actor) error {
	f := backoffice.SearchForm{
		Token: c.Query("token"), Last4: c.Query("last4"), BIN: c.Query("bin"), Brand: c.Query("brand"),
		Fingerprint: c.Query("fingerprint"), Dupes: c.Query("dupes"), From: c.Query("from"), To: c.Query("to"),
	}.Normalize()
	p := tokensPage{pageBase: h.base("Tokens", "tokens", a), Form: f, Brands: brands(), Limit: backoffice.SearchLimit,
		Filtered: f != backoffice.SearchForm{}}
	found, err := h.d.Office.Search(c.UserContext(), *a, f)
	var ie *backoffice.InvalidError
	if errors.As(err, &ie) {
		p.Error = ie.Msg
		return h.render(c, http.StatusBadRequest, "backoffice_tokens.html", p)
	}
	if err != nil {
		return domainError(err)
	}
	for _, t := range found {
		p.Rows = append(p.Rows, rowOf(t))
	}
	p.IndexBuilding = h.d.Office.SearchIndexBuilding(c.UserContext(), *a)
	return h.render(c, http.StatusOK, "backoffice_tokens.html", p)
}

// tokenPage is the data of backoffice_token.html (detail and reveal form).
type tokenPage struct {
	pageBase
	Token  tokenRow
	Reason string
	Error  string
}

func (h *Handler) tokenDetail(c *fiber.Ctx, a *backoffice.Actor) error {
	t, err := h.d.Office.Token(c.UserContext(), *a, strings.Clone(c.Params("id")))
	if err != nil {
		return domainError(err)
	}
	return h.render(c, http.StatusOK, "backoffice_token.html", tokenPage{pageBase: h.base("Token", "tokens", a), Token: rowOf(t)})
}

// reauthPage is the data of backoffice_reauth.html.
type reauthPage struct {
	pageBase
	Token  tokenRow
	Reason string
	Error  string
}

// revealedPage is the data of backoffice_revealed.html. PAN is the full
// number; this struct is rendered once and never logged.
type revealedPage struct {
	pageBase
	Token  tokenRow
	PAN    string // grouped in fours
	Exp    string
	Name   string
	Reason string
}

// reveal binds the reveal form, lets backoffice.Service.Reveal apply the
// policy (role, scope, reason, fresh authentication, lockout, audit, then
// the key service) and renders its answer.
func (h *Handler) reveal(c *fiber.Ctx, a *backoffice.Actor) error {
	res, err := h.d.Office.Reveal(c.UserContext(), *a, backoffice.RevealRequest{
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
		return h.render(c, http.StatusBadRequest, "backoffice_token.html",
			tokenPage{pageBase: h.base("Token", "tokens", a), Token: rowOf(res.Token), Reason: res.Reason, Error: msg})
	case errors.Is(err, backoffice.ErrReauthRequired), errors.Is(err, backoffice.ErrReauthFailed):
		msg := ""
		if errors.Is(err, backoffice.ErrReauthFailed) {
			msg = "Wrong password or code."
		}
		return h.render(c, http.StatusUnauthorized, "backoffice_reauth.html",
			reauthPage{pageBase: h.base("Confirm it is you", "tokens", a), Token: rowOf(res.Token), Reason: res.Reason, Error: msg})
	case errors.Is(err, backoffice.ErrLocked):
		h.setCookie(c, h.cookieName(), "", -1)
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code, Err: err,
			Message: "Too many failed attempts: your account is locked and you have been logged out. Ask an administrator, or try again later."}
	case err != nil:
		return revealError(err)
	}
	p := revealedPage{
		pageBase: h.base("Card number", "tokens", a),
		Token:    rowOf(res.Token),
		PAN:      groupsOf(res.Card.PAN, 4),
		Exp:      fmt.Sprintf("%02d/%d", res.Card.ExpMonth, res.Card.ExpYear),
		Name:     res.Card.Name,
		Reason:   res.Reason,
	}
	// The page is the only copy: no-store (set by bo) keeps it out of every
	// cache and the back/forward cache; the script hides it after 60 s.
	c.Set(fiber.HeaderExpires, "0")
	return h.render(c, http.StatusOK, "backoffice_revealed.html", p)
}

// revealError says what a failed reveal means and that nothing was
// revealed. The domain classified the key service's answer by its code;
// the messages are ours, the key service's text is not shown.
func revealError(err error) error {
	var ke *backoffice.KeyServiceError
	if !errors.As(err, &ke) {
		return domainError(err)
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
			Message: "The key service is unavailable (sealed, its audit log or a dependency is down, or its clock and the gateway's disagree). Nothing was revealed; try again later."}
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

// domainError maps the back office's domain errors that every page shares.
func domainError(err error) error {
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
