package backofficehttp

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/checkout"
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
	ID                     string
	Merchant, MerchantID   string // the merchant's name (its id when it has none we can read), and its id
	Brand, BrandName, Icon string
	Masked                 string // "42424242 •••• 4242" (checkout.MaskPAN: the length is not stored)
	Last4                  string
	PANGroups              string // "4,6,5": how the reveal's script spaces the number (checkout.PANGroups)
	Exp                    string // "12/2030"
	Created                string // "2026-11-27 05:44 UTC"
	Reference              string // the merchant's order reference
	ReferenceURL           string // the search for it
	Metadata               []metaItem
	Kid, Fingerprint       string // detail page only
	DupesURL               string
}

// metaItem is one entry of a token's metadata, in key order.
type metaItem struct{ Key, Value string }

// rowOf renders t; names maps merchant ids to names (MerchantNames).
func rowOf(t tokens.Token, names map[string]string) tokenRow {
	r := tokenRow{
		ID: t.ID, Merchant: cmp.Or(names[t.MerchantID], t.MerchantID), MerchantID: t.MerchantID,
		Brand: t.Brand, BrandName: "Card", Icon: "/assets/brands/unknown.svg",
		Masked: checkout.MaskPAN(strings.ToLower(t.Brand), t.BIN, t.Last4, 0), Last4: t.Last4,
		PANGroups: checkout.PANGroups(strings.ToLower(t.Brand)),
		Exp:       fmt.Sprintf("%02d/%d", t.ExpMonth, t.ExpYear),
		Created:   t.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"),
		Reference: t.Reference,
		Kid:       t.Kid, Fingerprint: t.Fingerprint,
		DupesURL: Prefix + "/tokens?" + url.Values{"dupes": {t.ID}}.Encode(),
	}
	if t.Reference != "" {
		r.ReferenceURL = Prefix + "/tokens?" + url.Values{"reference": {t.Reference}}.Encode()
	}
	for _, k := range slices.Sorted(maps.Keys(t.Metadata)) {
		r.Metadata = append(r.Metadata, metaItem{Key: k, Value: t.Metadata[k]})
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
		Reference: c.Query("reference"),
	}.Normalize()
	p := tokensPage{pageBase: h.base(c.UserContext(), "Tokens", "tokens", a), Form: f, Brands: brands(), Limit: backoffice.SearchLimit,
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
	ids := make([]string, 0, len(found))
	for _, t := range found {
		ids = append(ids, t.MerchantID)
	}
	names := h.d.Office.MerchantNames(c.UserContext(), *a, ids...)
	for _, t := range found {
		p.Rows = append(p.Rows, rowOf(t, names))
	}
	p.IndexBuilding = h.d.Office.SearchIndexBuilding(c.UserContext(), *a)
	return h.render(c, http.StatusOK, "backoffice_tokens.html", p)
}

// tokenPage is the data of backoffice_token.html (detail, reveal form and
// the panel the script shows the decrypted card in).
type tokenPage struct {
	pageBase
	Token tokenRow
	// PasskeyReauth: the reveal's passkey approval may stand for the
	// re-authentication of a stale session (MFA mode permitting).
	PasskeyReauth bool
}

func (h *Handler) tokenDetail(c *fiber.Ctx, a *backoffice.Actor) error {
	t, err := h.d.Office.Token(c.UserContext(), *a, strings.Clone(c.Params("id")))
	if err != nil {
		return domainError(err)
	}
	_, pk := h.d.Operators.LoginFactors(a.Op)
	names := h.d.Office.MerchantNames(c.UserContext(), *a, t.MerchantID)
	return h.render(c, http.StatusOK, "backoffice_token.html", tokenPage{pageBase: h.base(c.UserContext(), "Token", "tokens", a), Token: rowOf(t, names), PasskeyReauth: pk})
}

// challengeBody is the script's first reveal call.
type challengeBody struct {
	Reason     string          `json:"reason"`
	BrowserKey wire.BrowserKey `json:"browser_key"`
}

func (challengeBody) Validate() error { return nil } // the domain checks each field, in its order

// revealBody is the script's second reveal call.
type revealBody struct {
	Reason     string          `json:"reason"`
	BrowserKey wire.BrowserKey `json:"browser_key"`
	Nonce      string          `json:"nonce"`
	Assertion  json.RawMessage `json:"assertion,omitempty"`
	Password   string          `json:"password,omitempty"`
	Code       string          `json:"code,omitempty"`
}

func (revealBody) Validate() error { return nil } // the domain checks each field, in its order

// revealChallenge binds the script's first call and lets
// backoffice.Service.RevealChallenge check it and ask the key service for
// the reveal's nonce.
func (h *Handler) revealChallenge(c *fiber.Ctx, a *backoffice.Actor) error {
	var b challengeBody
	if err := bindJSON(c, &b); err != nil {
		return err
	}
	ch, err := h.d.Office.RevealChallenge(c.UserContext(), *a, backoffice.ChallengeRequest{
		TokenID: strings.Clone(c.Params("id")), Reason: b.Reason, BrowserKey: b.BrowserKey,
	})
	if err != nil {
		return h.revealRefusal(c, a, err)
	}
	return c.JSON(fiber.Map{
		"nonce":            ch.KS.Nonce,
		"expires_at":       ch.KS.ExpiresAt,
		"rp_id":            ch.KS.RPID,
		"credentials":      nonNil(ch.KS.Credentials),
		"passkey_required": ch.KS.PasskeyRequired,
		"reauth_required":  ch.ReauthRequired,
	})
}

// reveal binds the script's reveal, lets backoffice.Service.Reveal apply
// the policy (role, scope, reason, the request's shape, fresh
// authentication, lockout, audit, then the key service) and answers the
// key service's JWE: ciphertext to the browser's key, which only the
// page's script can open.
func (h *Handler) reveal(c *fiber.Ctx, a *backoffice.Actor) error {
	var b revealBody
	if err := bindJSON(c, &b); err != nil {
		return err
	}
	res, err := h.d.Office.Reveal(c.UserContext(), *a, backoffice.RevealRequest{
		TokenID: strings.Clone(c.Params("id")), Reason: b.Reason, BrowserKey: b.BrowserKey,
		Nonce: b.Nonce, Assertion: b.Assertion, Password: b.Password, Code: b.Code,
	})
	if err != nil {
		return h.revealRefusal(c, a, err)
	}
	c.Set(fiber.HeaderExpires, "0")
	return c.JSON(fiber.Map{"jwe": res.JWE, "credential": res.Credential})
}

// revealWithoutScript answers the reveal form posted with scripts off:
// the card can only be decrypted by the page's script.
func (h *Handler) revealWithoutScript(c *fiber.Ctx, _ *backoffice.Actor) error {
	return &apierr.Error{Status: http.StatusBadRequest, Code: apierr.BadRequest.Code,
		Message: "Revealing needs JavaScript: the card is encrypted to a key made by the page's script and decrypted only in your browser. Nothing was revealed."}
}

// revealRefusal maps a refused reveal (or its challenge) to its code.
func (h *Handler) revealRefusal(c *fiber.Ctx, a *backoffice.Actor, err error) error {
	var ie *backoffice.InvalidError
	switch {
	case errors.Is(err, backoffice.ErrForbidden):
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code, Err: err,
			Message: fmt.Sprintf("Your role (%s) may not reveal card numbers. This attempt has been recorded.", a.Op.Role)}
	case errors.As(err, &ie):
		switch {
		case errors.Is(err, wire.ErrPANInText):
			return apierr.PANInText.Wrap(err)
		case ie.Field == "browser_key":
			return apierr.BrowserKeyInvalid.Wrap(err)
		}
		return &apierr.Error{Status: http.StatusBadRequest, Code: apierr.InvalidField.Code, Message: ie.Msg, Err: err}
	case errors.Is(err, backoffice.ErrReauthRequired):
		return &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.ReauthRequired.Code, Err: err,
			Message: "Revealing needs a login within the last 5 minutes: enter your password and code, then reveal again."}
	case errors.Is(err, backoffice.ErrReauthFailed):
		return &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.ReauthRequired.Code, Err: err,
			Message: "Wrong password, code or passkey. Nothing was revealed."}
	case errors.Is(err, backoffice.ErrLocked):
		h.setCookie(c, h.cookieName(), "", -1)
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code, Err: err,
			Message: "Too many failed attempts: your account is locked and you have been logged out. Ask an administrator, or try again later."}
	}
	return revealError(err)
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
	case errors.Is(err, backoffice.ErrApprovalRefused):
		return approvalError(ke, err)
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

// approvalError passes on the key service's verdict on a reveal's approval
// with its code (the page's script reads it) and our sentence.
func approvalError(ke *backoffice.KeyServiceError, err error) error {
	base := apierr.Unavailable
	msg := "The key service refused the approval. Nothing was revealed."
	switch ke.Code {
	case apierr.PasskeyRequired.Code:
		base, msg = apierr.PasskeyRequired, "This reveal needs your approved passkey: add one under Passkeys and have it approved by a key-service administrator. Nothing was revealed."
	case apierr.PasskeyInvalid.Code:
		base, msg = apierr.PasskeyInvalid, "The passkey approval does not match this reveal. Nothing was revealed; start again."
	case apierr.PasskeyUnknown.Code:
		base, msg = apierr.PasskeyUnknown, "This passkey is not approved for reveals (unknown, awaiting approval, or revoked). Nothing was revealed."
	case apierr.RevealNonceInvalid.Code:
		base, msg = apierr.RevealNonceInvalid, "This reveal's challenge expired or was already used. Nothing was revealed; start again."
	case apierr.BrowserKeyInvalid.Code:
		base, msg = apierr.BrowserKeyInvalid, "The key service refused this browser's key. Nothing was revealed; reload the page."
	}
	return &apierr.Error{Status: base.Status, Code: base.Code, Message: msg, Err: err}
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
