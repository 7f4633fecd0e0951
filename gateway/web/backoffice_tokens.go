package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/client"
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

// boSearch is the search form, echoed back into the page.
type boSearch struct {
	Token, Last4, BIN, Brand, Fingerprint, Dupes, From, To string
}

// boTokensPage is the data of backoffice_tokens.html.
type boTokensPage struct {
	boBase
	Form     boSearch
	Brands   []wire.BrandInfo
	Rows     []boTokenRow
	Error    string
	Filtered bool
	Limit    int
}

const boSearchLimit = 100

// parseSearch turns the form into a Query scoped to the operator. The
// returned message, when not "", is shown on the page (400).
func (s *Server) parseSearch(c *fiber.Ctx, a *boActor) (boSearch, tokens.Query, string, error) {
	f := boSearch{
		Token: strings.ToLower(strings.TrimSpace(c.Query("token"))), Last4: strings.TrimSpace(c.Query("last4")),
		BIN: strings.TrimSpace(c.Query("bin")), Brand: strings.ToLower(strings.TrimSpace(c.Query("brand"))),
		Fingerprint: strings.TrimSpace(c.Query("fingerprint")), Dupes: strings.ToLower(strings.TrimSpace(c.Query("dupes"))),
		From: strings.TrimSpace(c.Query("from")), To: strings.TrimSpace(c.Query("to")),
	}
	// An operator of one merchant searches that merchant only; the store
	// enforces it through the query, and results are re-checked below.
	q := tokens.Query{MerchantID: a.Op.MerchantID, TokenID: f.Token, Last4: f.Last4, BIN: f.BIN,
		Brand: f.Brand, Fingerprint: f.Fingerprint, Limit: boSearchLimit}
	switch {
	case f.Token != "" && !tokens.ValidID(f.Token):
		return f, q, "A token id looks like tok_ followed by 26 letters and digits.", nil
	case f.Last4 != "" && !(len(f.Last4) == 4 && allDigits(f.Last4)):
		return f, q, "Last 4 must be exactly four digits.", nil
	case f.BIN != "" && !(len(f.BIN) <= 8 && allDigits(f.BIN)):
		return f, q, "BIN must be up to eight digits.", nil
	case len(f.Fingerprint) > 256:
		return f, q, "That fingerprint is too long.", nil
	}
	if f.Brand != "" && !knownBrand(f.Brand) {
		return f, q, "Unknown brand.", nil
	}
	var err error
	if f.From != "" {
		if q.From, err = time.Parse(time.DateOnly, f.From); err != nil {
			return f, q, "From must be a date (YYYY-MM-DD).", nil
		}
	}
	if f.To != "" {
		if q.To, err = time.Parse(time.DateOnly, f.To); err != nil {
			return f, q, "To must be a date (YYYY-MM-DD).", nil
		}
		q.To = q.To.AddDate(0, 0, 1) // the "to" day is included
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return f, q, "From must not be after To.", nil
	}
	// "Paste a token to find its duplicates": the same card under other
	// tokens shares the keyed fingerprint.
	if f.Dupes != "" {
		t, err := s.visibleToken(c, a, f.Dupes)
		if err != nil {
			var ae *apierr.Error
			if errors.As(err, &ae) && ae.Code == apierr.NotFound.Code {
				return f, q, "No token " + f.Dupes + " is visible to you.", nil
			}
			return f, q, "", err
		}
		if t.Fingerprint == "" {
			return f, q, "That token has no fingerprint to compare.", nil
		}
		if q.Fingerprint != "" && q.Fingerprint != t.Fingerprint {
			return f, q, "Fingerprint and duplicates-of disagree; use one of them.", nil
		}
		q.Fingerprint = t.Fingerprint
		// Fingerprints are per merchant: duplicates exist only within the
		// token's own merchant, so a platform operator searches that one.
		q.MerchantID = t.MerchantID
	}
	return f, q, "", nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func knownBrand(b string) bool {
	for _, x := range boBrands() {
		if x.ID == b {
			return true
		}
	}
	return false
}

// describe names the criteria of a search for the audit trail: which
// fields were used, never the digits searched for.
func (f boSearch) describe() string {
	var parts []string
	add := func(name, v string, show bool) {
		if v == "" {
			return
		}
		if show {
			name += "=" + v
		}
		parts = append(parts, name)
	}
	add("token", f.Token, true)
	add("last4", f.Last4, false)
	add("bin", f.BIN, false)
	add("brand", f.Brand, true)
	add("fingerprint", f.Fingerprint, false)
	add("duplicates_of", f.Dupes, true)
	add("from", f.From, true)
	add("to", f.To, true)
	if len(parts) == 0 {
		return "list (no filter)"
	}
	return strings.Join(parts, " ")
}

func (s *Server) boTokens(c *fiber.Ctx, a *boActor) error {
	f, q, msg, err := s.parseSearch(c, a)
	if err != nil {
		return err
	}
	p := boTokensPage{boBase: s.base("Tokens", "tokens", a), Form: f, Brands: boBrands(), Limit: boSearchLimit,
		Filtered: f != boSearch{}}
	if msg != "" {
		p.Error = msg
		return s.render(c, http.StatusBadRequest, "backoffice_tokens.html", p)
	}
	// Recorded before the results are shown: no audit, no access.
	if err := s.boAudit(c, audit.Event{Event: audit.EventTokenSearch, Actor: a.Op.ID, Outcome: audit.OutcomeSuccess, Reason: f.describe()}); err != nil {
		return err
	}
	found, err := s.deps.Tokens.Search(c.UserContext(), q)
	if err != nil {
		if errors.Is(err, tokens.ErrInvalid) {
			p.Error = "The search is not valid: check the fields."
			return s.render(c, http.StatusBadRequest, "backoffice_tokens.html", p)
		}
		return apierr.Unavailable.Wrap(err)
	}
	for _, t := range found {
		if a.Op.MaySee(t.MerchantID) { // belt and braces over Query.MerchantID
			p.Rows = append(p.Rows, tokenRow(t))
		}
	}
	return s.render(c, http.StatusOK, "backoffice_tokens.html", p)
}

// visibleToken returns token id if the operator may see it. A token of
// another merchant answers exactly like a missing one (404), so ids cannot
// be probed across merchants.
func (s *Server) visibleToken(c *fiber.Ctx, a *boActor, id string) (tokens.Token, error) {
	if !tokens.ValidID(id) {
		return tokens.Token{}, apierr.NotFound
	}
	var t tokens.Token
	var err error
	if a.Op.Platform() {
		t, err = s.deps.Tokens.Lookup(c.UserContext(), id)
	} else {
		t, err = s.deps.Tokens.Get(c.UserContext(), a.Op.MerchantID, id)
	}
	switch {
	case errors.Is(err, tokens.ErrNotFound), errors.Is(err, tokens.ErrInvalid):
		return tokens.Token{}, apierr.NotFound.Wrap(err)
	case err != nil:
		return tokens.Token{}, apierr.Unavailable.Wrap(err)
	case !a.Op.MaySee(t.MerchantID):
		return tokens.Token{}, apierr.NotFound
	}
	return t, nil
}

// boTokenPage is the data of backoffice_token.html (detail and reveal form).
type boTokenPage struct {
	boBase
	Token  boTokenRow
	Reason string
	Error  string
}

func (s *Server) boToken(c *fiber.Ctx, a *boActor) error {
	t, err := s.visibleToken(c, a, strings.Clone(c.Params("id")))
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "backoffice_token.html", boTokenPage{boBase: s.base("Token", "tokens", a), Token: tokenRow(t)})
}

// normReason folds whitespace (a reason is one line in the audit trail).
func normReason(s string) string { return strings.Join(strings.Fields(s), " ") }

// reasonProblem checks a reason with the key service's own rule
// (wire.ValidateReason), so the operator hears about it here and a reason
// accepted here is never refused there.
func reasonProblem(r string) string {
	err := wire.ValidateReason(r)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, wire.ErrPANInText):
		return apierr.PANInText.Message
	case errors.Is(err, wire.ErrReasonCharacters):
		return "The reason contains characters that are not allowed."
	}
	return fmt.Sprintf("Type the reason for this reveal (%d to %d characters), e.g. the ticket number.", wire.MinReasonLen, wire.MaxReasonLen)
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

// boReveal asks the key service for the full number. Checks, in order:
// role (a viewer or admin is refused and audited, and the key service is
// not called), scope (404), a reason, a fresh authentication within
// ReauthWindow (else a password+TOTP form that continues the reveal), then
// the signed call, whose per-actor limits and audit are the key service's.
func (s *Server) boReveal(c *fiber.Ctx, a *boActor) error {
	ctx := c.UserContext()
	id := strings.Clone(c.Params("id"))
	reason := normReason(c.FormValue("reason"))
	now := s.now()

	if !a.Op.Role.Can(operators.ActionReveal) {
		resource := id
		if !tokens.ValidID(id) {
			resource = "invalid-token-id"
		}
		auditReason := reason
		if reasonProblem(reason) != "" {
			auditReason = ""
		}
		s.boAuditBestEffort(c, audit.Event{Event: audit.EventRevealDenied, Actor: a.Op.ID, Resource: resource,
			Reason: auditReason, Outcome: audit.OutcomeDenied, Code: apierr.Forbidden.Code})
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code,
			Message: fmt.Sprintf("Your role (%s) may not reveal card numbers. This attempt has been recorded.", a.Op.Role)}
	}
	t, err := s.visibleToken(c, a, id)
	if err != nil {
		return err
	}
	row := tokenRow(t)
	if msg := reasonProblem(reason); msg != "" {
		return s.render(c, http.StatusBadRequest, "backoffice_token.html",
			boTokenPage{boBase: s.base("Token", "tokens", a), Token: row, Reason: reason, Error: msg})
	}

	if !a.Sess.FreshFor(ReauthWindow, now) {
		password := strings.Clone(c.FormValue("password"))
		reauth := func(status int, msg string) error {
			return s.render(c, status, "backoffice_reauth.html",
				boReauthPage{boBase: s.base("Confirm it is you", "tokens", a), Token: row, Reason: reason, Error: msg})
		}
		if password == "" {
			return reauth(http.StatusUnauthorized, "")
		}
		op, err := s.deps.Operators.Authenticate(ctx, a.Op.Username, password, strings.Clone(c.FormValue("code")), now)
		var locked *operators.LockedError
		switch {
		case errors.As(err, &locked):
			s.boAuditBestEffort(c, audit.Event{Event: audit.EventLogin, Actor: a.Op.ID, Outcome: audit.OutcomeDenied, Code: "locked", Reason: "re-authentication for reveal"})
			_ = s.deps.WebSessions.Delete(ctx, a.Sess.ID)
			s.setCookie(c, s.cookieName(), "", -1)
			return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code,
				Message: "Too many failed attempts: your account is locked and you have been logged out. Ask an administrator, or try again later."}
		case errors.Is(err, operators.ErrBadCredentials), errors.Is(err, operators.ErrMFARequired), errors.Is(err, operators.ErrDisabled):
			s.boAuditBestEffort(c, audit.Event{Event: audit.EventLogin, Actor: a.Op.ID, Outcome: audit.OutcomeFailure, Code: loginCode(err), Reason: "re-authentication for reveal"})
			return reauth(http.StatusUnauthorized, "Wrong password or code.")
		case err != nil:
			return apierr.Unavailable.Wrap(err)
		case op.ID != a.Op.ID:
			return apierr.Forbidden
		}
		if _, err := s.deps.WebSessions.Reauth(ctx, a.Sess.ID, now); err != nil {
			return apierr.Unavailable.Wrap(err)
		}
		s.boAuditBestEffort(c, audit.Event{Event: audit.EventLogin, Actor: a.Op.ID, Outcome: audit.OutcomeSuccess, Reason: "re-authentication for reveal"})
	}

	if s.deps.KeyService == nil {
		return apierr.KeyServiceDown
	}
	card, err := s.deps.KeyService.Reveal(ctx, wire.RevealRequest{JWE: t.JWE, Actor: a.Op.ID, Reason: reason, Token: t.ID})
	if err != nil {
		return revealError(err)
	}
	p := boRevealedPage{
		boBase: s.base("Card number", "tokens", a),
		Token:  row,
		PAN:    groupsOf(card.PAN, 4),
		Exp:    fmt.Sprintf("%02d/%d", card.ExpMonth, card.ExpYear),
		Name:   card.Name,
		Reason: reason,
	}
	// The page is the only copy: no-store (set by bo) keeps it out of every
	// cache and the back/forward cache; the script hides it after 60 s.
	c.Set(fiber.HeaderExpires, "0")
	return s.render(c, http.StatusOK, "backoffice_revealed.html", p)
}

// revealError turns a key-service refusal into a page that says what
// happened and that nothing was revealed. Messages are ours: the key
// service's text is not shown.
func revealError(err error) error {
	var ke *client.Error
	if !errors.As(err, &ke) {
		if errors.Is(err, wire.ErrInvalidRequest) {
			return &apierr.Error{Status: http.StatusBadRequest, Code: apierr.InvalidField.Code, Message: "The reveal request is not valid; check the reason.", Err: err}
		}
		// Transport failure: the key service did not answer.
		return &apierr.Error{Status: http.StatusServiceUnavailable, Code: apierr.KeyServiceDown.Code,
			Message: "The key service cannot be reached. Nothing was revealed; try again later.", Err: err}
	}
	switch ke.Status {
	case http.StatusTooManyRequests:
		return &apierr.Error{Status: http.StatusTooManyRequests, Code: apierr.RateLimited.Code, RetryAfter: ke.RetryAfter, Err: err,
			Message: "Reveal limit reached: the key service allows each operator only a few reveals in a short window and per day. Nothing was revealed."}
	case http.StatusServiceUnavailable:
		return &apierr.Error{Status: http.StatusServiceUnavailable, Code: apierr.KeyServiceDown.Code, RetryAfter: ke.RetryAfter, Err: err,
			Message: "The key service is unavailable (sealed, or its audit log or a dependency is down). Nothing was revealed; try again later."}
	case http.StatusForbidden:
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code, Err: err,
			Message: "The key service refused this reveal. Nothing was revealed."}
	case http.StatusUnprocessableEntity:
		return &apierr.Error{Status: http.StatusUnprocessableEntity, Code: apierr.CardUndecryptable.Code, Err: err,
			Message: "The stored card cannot be decrypted (its key may have been retired). Nothing was revealed."}
	}
	return &apierr.Error{Status: http.StatusBadGateway, Code: apierr.Unavailable.Code, Err: err,
		Message: "The key service did not accept the request. Nothing was revealed."}
}
