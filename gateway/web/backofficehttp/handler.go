// Package backofficehttp is the back office's HTTP layer: operator login
// with TOTP or a passkey, passkey enrolment, masked token search, the
// role-gated, end-to-end encrypted reveal through the key service, and the
// key service's audit trail for admins. Pages are rendered on the server
// from templates/ with no inline script or style; every answer of a page
// route, errors included, is an HTML page sent with Cache-Control:
// no-store. The few routes the pages' own script calls (the reveal, passkey
// enrolment and the passkey login challenge) take and answer JSON, errors
// as {"error":{"code","message"}} with the stable codes the script reads.
//
// The policy of search, reveal and the audit view (roles, merchant scope,
// the reason rule, re-authentication, lockout, audit before access, and
// reading the key service's answers by code) is gateway/backoffice's; the
// handlers here bind the form, call it, and render. gateway/web mounts
// Routes at Prefix.
//
// A reveal's card never passes here in clear: the page's script makes a key
// pair, the key service answers a JWE to it, and this layer relays that
// ciphertext (backoffice.Revealed has no other card field).
//
// Files: handler.go (routes, session and CSRF checks, page, JSON and error
// rendering), login.go (login, TOTP enrolment, logout), passkeys.go (passkey
// enrolment and login challenge), tokens.go (search, detail, reveal),
// audit.go (the audit view), assets.go (the pages' own CSS and JS).
package backofficehttp

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/clientip"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/gateway/web/clientaddr"
	"github.com/blindgate/blindgate/gateway/websession"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/httpapi"
	"github.com/blindgate/blindgate/internal/panshape"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/ratelimit"
)

// Office is the back office's policy (gateway/backoffice).
type Office interface {
	Resume(ctx context.Context, sessionID, origin string) (backoffice.Actor, error)
	Search(ctx context.Context, a backoffice.Actor, f backoffice.SearchForm) ([]tokens.Token, error)
	SearchIndexBuilding(ctx context.Context, a backoffice.Actor) bool
	Token(ctx context.Context, a backoffice.Actor, id string) (tokens.Token, error)
	RevealChallenge(ctx context.Context, a backoffice.Actor, r backoffice.ChallengeRequest) (backoffice.Challenge, error)
	Reveal(ctx context.Context, a backoffice.Actor, r backoffice.RevealRequest) (backoffice.Revealed, error)
	PasskeyChallenge(ctx context.Context, a backoffice.Actor) (backoffice.EnrolChallenge, error)
	EnrolPasskey(ctx context.Context, a backoffice.Actor, r backoffice.EnrolRequest) (backoffice.Enrolled, error)
	PasskeyList(ctx context.Context, a backoffice.Actor) ([]backoffice.PasskeyView, error)
	RequireSecondFactor(a backoffice.Actor) error
	AuditView(ctx context.Context, a backoffice.Actor, f backoffice.AuditFilter) (backoffice.AuditPage, error)
	MerchantNames(ctx context.Context, a backoffice.Actor, ids ...string) map[string]string
}

var _ Office = (*backoffice.Service)(nil)

// Operators is the part of the operator service the login pages use.
type Operators interface {
	Login(ctx context.Context, username, password string, f operators.Factor, now time.Time) (operators.Operator, error)
	LoginActor(ctx context.Context, username string) (string, error)
	LoginChallenge(ctx context.Context) ([]byte, error)
	SecondFactorDone(op operators.Operator) bool
	LoginFactors(op operators.Operator) (totp, passkey bool)
	MFA() operators.MFAMode
	PasskeysEnabled() bool
	Passkeys() *passkey.Verifier
	EnrollTOTP(ctx context.Context, id string) (secret, otpauthURL string, qrPNG []byte, err error)
	ConfirmTOTP(ctx context.Context, id, code string) error
}

var _ Operators = (*operators.Service)(nil)

// Sessions is the part of the web-session store the login pages use.
type Sessions interface {
	Create(ctx context.Context, operatorID string, now time.Time) (websession.Session, error)
	Reauth(ctx context.Context, id string, now time.Time) (websession.Session, error)
	Delete(ctx context.Context, id string) error
}

// Auditor appends to the gateway's own audit log.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Deps are the back office pages' collaborators.
type Deps struct {
	Office    Office
	Operators Operators
	Sessions  Sessions
	Limiter   ratelimit.Limiter // optional: no per-IP login limit
	Audit     Auditor           // optional: no gateway audit log
	Pages     *template.Template
	Log       *slog.Logger
	// TLS: served over HTTPS, so cookies are Secure and __Host- prefixed.
	TLS bool
	// ClientIP picks the client address (see gateway/web/clientaddr).
	ClientIP *clientip.Resolver
	Now      func() time.Time
}

// Handler serves the back office's pages.
type Handler struct{ d Deps }

// New returns the pages over d; a nil Log discards and a nil Now is time.Now.
func New(d Deps) *Handler {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Handler{d: d}
}

// The pages' constants.
const (
	// Prefix is where gateway/web mounts the back office (server.go).
	Prefix = "/backoffice"

	// Cookie names. The __Host- prefix makes the browser refuse the cookie
	// unless it is Secure, host-only and Path=/, so a sibling subdomain
	// cannot plant or shadow it; it needs HTTPS, hence the plain names for
	// a development server over HTTP.
	cookieSessionTLS   = "__Host-bg_session"
	cookieSessionPlain = "bg_session"
	cookieLoginTLS     = "__Host-bg_login"
	cookieLoginPlain   = "bg_login"

	// loginCSRFMaxAge bounds the pre-session double-submit cookie.
	loginCSRFMaxAge = time.Hour

	// csrfField is the hidden form field of every back-office form.
	csrfField = "csrf"

	// pageCSP: pages load only our own script and style; the script talks
	// only to us; the enrolment QR code is a data: image; forms post only
	// to us; nobody may frame us; and no script may write HTML (Trusted
	// Types with no policy: the reveal page writes the number only as text).
	pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

	// apiCSP: a JSON answer is no document; if one is ever rendered as a
	// page, it may do nothing.
	apiCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
)

// loginLimit bounds login attempts (and TOTP enrolment confirmations) per
// client IP, on top of the per-account lockout: the lockout stops guessing
// one account, this stops spraying many.
func loginLimit() ratelimit.Limit {
	return ratelimit.Limit{Name: "backoffice-login", Rate: 20, Period: time.Minute, Burst: 20}
}

// Routes registers every back-office route on r, which gateway/web mounts
// at Prefix. Each handler is wrapped by page, which sets the page headers
// and renders any error as an HTML page.
func (h *Handler) Routes(r fiber.Router) {
	// Public: the login form and the page assets.
	r.Get("/login", h.page(h.loginForm))
	r.Post("/login", h.page(h.login))
	r.Get("/assets/:name", h.serveAsset)

	// The passkey login's challenge (script, pre-session CSRF).
	r.Post("/login/passkey", h.api(h.loginChallenge))

	// Signed in, possibly before the second factor is enrolled.
	r.Get("/enroll", h.page(h.signedIn(h.enrollForm)))
	r.Post("/enroll", h.page(h.signedIn(h.enroll)))
	r.Get("/passkeys", h.page(h.signedIn(h.passkeysPage)))
	r.Post("/passkeys/challenge", h.api(h.signedIn(h.passkeyChallenge)))
	r.Post("/passkeys", h.api(h.signedIn(h.enrolPasskey)))
	r.Post("/logout", h.page(h.signedIn(h.logout)))

	// Signed in with the second factor.
	r.Get("/", h.page(h.authed(func(c *fiber.Ctx, _ *backoffice.Actor) error {
		return c.Redirect(Prefix+"/tokens", fiber.StatusSeeOther)
	})))
	r.Get("/tokens", h.page(h.authed(h.search)))
	r.Get("/tokens/:id", h.page(h.authed(h.tokenDetail)))
	r.Post("/tokens/:id/reveal/challenge", h.api(h.authed(h.revealChallenge)))
	// The reveal is the script's JSON call; a form posted without the
	// script gets a page saying why nothing can be shown.
	revealJSON, revealForm := h.api(h.authed(h.reveal)), h.page(h.authed(h.revealWithoutScript))
	r.Post("/tokens/:id/reveal", func(c *fiber.Ctx) error {
		if isJSON(c) {
			return revealJSON(c)
		}
		return revealForm(c)
	})
	r.Get("/audit", h.page(h.authed(h.auditView)))

	// Anything else under the prefix is an HTML 404, not the API's JSON.
	r.All("/*", h.page(func(*fiber.Ctx) error { return apierr.NotFound }))
}

// page wraps a back-office handler: page headers first (so error pages carry
// them too), then the handler; an error becomes an HTML page here, the one
// place that renders back-office errors.
func (h *Handler) page(next fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		for _, hv := range pageHeaders() {
			c.Set(hv[0], hv[1])
		}
		if formHasPAN(c) {
			return h.renderError(c, apierr.PANInText)
		}
		if err := next(c); err != nil {
			return h.renderError(c, err)
		}
		return nil
	}
}

// secretFields are the form fields never written anywhere, and so exempt
// from the card-number check (a password may be all digits; an assertion is
// base64url that could hold a digit run by chance).
var secretFields = map[string]bool{"password": true, "code": true, csrfField: true, "assertion": true}

// formHasPAN reports whether any query or form field other than a secret
// one looks like a card number. Every back-office text (login name, search
// boxes, audit filter, reveal reason) may reach the audit trail, a store or
// the page, so a card number typed into one is refused before any handler.
func formHasPAN(c *fiber.Ctx) bool {
	found := false
	check := func(k, v []byte) {
		if !found && !secretFields[string(k)] && panshape.Contains(string(v)) {
			found = true
		}
	}
	c.Context().QueryArgs().VisitAll(check)
	c.Context().PostArgs().VisitAll(check)
	if mf, err := c.Context().MultipartForm(); err == nil {
		for k, vs := range mf.Value {
			for _, v := range vs {
				check([]byte(k), []byte(v))
			}
		}
	}
	return found
}

func (h *Handler) now() time.Time { return h.d.Now() }

// cookieName is the session cookie's name for this deployment.
func (h *Handler) cookieName() string {
	if h.d.TLS {
		return cookieSessionTLS
	}
	return cookieSessionPlain
}

func (h *Handler) loginCookieName() string {
	if h.d.TLS {
		return cookieLoginTLS
	}
	return cookieLoginPlain
}

// setCookie writes a back-office cookie: HttpOnly (no script reads it),
// SameSite=Strict (no cross-site request carries it), Secure over TLS,
// Path=/ (required by the __Host- prefix). maxAge 0 makes a browser-session
// cookie; < 0 deletes it.
func (h *Handler) setCookie(c *fiber.Ctx, name, value string, maxAge time.Duration) {
	ck := &fiber.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HTTPOnly: true,
		Secure:   h.d.TLS,
		SameSite: fiber.CookieSameSiteStrictMode,
	}
	switch {
	case maxAge < 0:
		ck.Value = ""
		ck.MaxAge = -1
		ck.Expires = time.Unix(1, 0)
	case maxAge > 0:
		ck.MaxAge = int(maxAge / time.Second)
	}
	c.Cookie(ck)
}

// signedIn resolves the session cookie to a signed-in operator
// (backoffice.Service.Resume) and checks the CSRF token of every POST. The
// session is checked before CSRF: a CSRF token is per session.
func (h *Handler) signedIn(next func(*fiber.Ctx, *backoffice.Actor) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := strings.Clone(c.Cookies(h.cookieName()))
		a, err := h.d.Office.Resume(c.UserContext(), id, clientaddr.Of(c, h.d.ClientIP))
		if err != nil {
			if id != "" && errors.Is(err, backoffice.ErrLoginRequired) {
				h.setCookie(c, h.cookieName(), "", -1)
			}
			return err
		}
		if c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
			if !sameSiteRequest(c) || !a.Sess.CheckCSRF(csrfToken(c)) {
				return apierr.CSRFFailed
			}
		}
		return next(c, &a)
	}
}

// authed is signedIn for every page but enrolment and logout: an operator
// without the second factor the MFA mode requires is sent to enrolment
// (backoffice.Service.RequireSecondFactor).
func (h *Handler) authed(next func(*fiber.Ctx, *backoffice.Actor) error) fiber.Handler {
	return h.signedIn(func(c *fiber.Ctx, a *backoffice.Actor) error {
		if err := h.d.Office.RequireSecondFactor(*a); err != nil {
			if c.Method() == fiber.MethodGet {
				return c.Redirect(Prefix+"/enroll", fiber.StatusSeeOther)
			}
			return apierr.Forbidden.Wrap(err)
		}
		return next(c, a)
	})
}

// sameSiteRequest refuses a POST that the browser says came from another
// site (Fetch Metadata). It adds to the CSRF token, it does not replace it:
// older browsers send no Sec-Fetch-Site, and those requests pass here.
func sameSiteRequest(c *fiber.Ctx) bool {
	switch c.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// csrfHeader carries the CSRF token of a script's request.
const csrfHeader = "X-CSRF-Token"

// csrfToken reads the CSRF token from the form body or the header, never
// from the query string: a URL is logged by proxies, kept in history and
// sent in links, so a token there would leak and could be replayed.
func csrfToken(c *fiber.Ctx) string {
	if h := c.Get(csrfHeader); h != "" {
		return h
	}
	if v := c.Context().PostArgs().Peek(csrfField); v != nil {
		return string(v)
	}
	if mf, err := c.Context().MultipartForm(); err == nil && len(mf.Value[csrfField]) > 0 {
		return mf.Value[csrfField][0]
	}
	return ""
}

// checkLoginCSRF is the double-submit check of the login form, which has no
// session yet: the hidden field must equal the HttpOnly, SameSite=Strict
// pre-session cookie set when the form was served.
func (h *Handler) checkLoginCSRF(c *fiber.Ctx) bool {
	ck := c.Cookies(h.loginCookieName())
	f := csrfToken(c)
	if !sameSiteRequest(c) || len(ck) != 43 || len(f) != 43 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(ck), []byte(f)) == 1
}

// record appends a gateway audit event. Unlike the checkout path, the back
// office fails closed where the event records access (a login, a search, an
// audit view): the caller turns the error into a 503 and withholds the page.
func (h *Handler) record(c *fiber.Ctx, e audit.Event) error {
	if h.d.Audit == nil {
		return nil
	}
	if e.Origin == "" {
		e.Origin = clientaddr.Of(c, h.d.ClientIP)
	}
	if _, err := h.d.Audit.Append(c.UserContext(), e); err != nil {
		h.d.Log.Error("backoffice: gateway audit append failed", "event", e.Event, "err", err)
		return apierr.AuditFailed.Wrap(err)
	}
	return nil
}

// recordBestEffort records an event whose request fails anyway (a failed
// login, a refused reveal): a broken log must not change the answer.
func (h *Handler) recordBestEffort(c *fiber.Ctx, e audit.Event) {
	_ = h.record(c, e)
}

// allowLogin applies the per-IP login limit; a limiter failure refuses
// (fail closed), since the lockout alone does not stop password spraying.
func (h *Handler) allowLogin(c *fiber.Ctx) error {
	if h.d.Limiter == nil {
		return nil
	}
	err := ratelimit.Check(c.UserContext(), h.d.Limiter, loginLimit(), "bo-login:"+clientaddr.Of(c, h.d.ClientIP))
	var rf *ratelimit.Refused
	switch {
	case errors.As(err, &rf):
		return &apierr.Error{Status: http.StatusTooManyRequests, Code: apierr.RateLimited.Code,
			Message: "Too many login attempts from your network. Wait a minute and try again.", RetryAfter: rf.RetryAfter, Err: err}
	case err != nil:
		return apierr.Unavailable.Wrap(err)
	}
	return nil
}

// ---- JSON routes of the pages' script ----

// isJSON reports whether the request body is JSON (the script's calls).
func isJSON(c *fiber.Ctx) bool {
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(c.Get(fiber.HeaderContentType), ";", 2)[0]))
	return ct == fiber.MIMEApplicationJSON
}

// api wraps a route the pages' script calls: the body must be JSON, the
// answer is JSON, never stored, and an error is {"error":{"code","message"}}
// (the script shows the message and reads the code). A missing session is a
// 401 login_required here, not a redirect.
func (h *Handler) api(next fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentSecurityPolicy, apiCSP)
		c.Set(fiber.HeaderXFrameOptions, "DENY")
		c.Set(fiber.HeaderCacheControl, "no-store")
		c.Set(fiber.HeaderPragma, "no-cache")
		var err error = apierr.BadRequest
		if isJSON(c) {
			err = next(c)
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, backoffice.ErrLoginRequired) {
			err = apierr.LoginRequired.Wrap(err)
		}
		ae := httpapi.From(err)
		httpapi.LogRequest(h.d.Log, c, ae)
		if ae.RetryAfter > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((ae.RetryAfter+time.Second-1)/time.Second)))
		}
		var b httpapi.ErrorBody
		b.Error.Code, b.Error.Message = ae.Code, ae.Message
		return c.Status(ae.Status).JSON(b)
	}
}

// bindJSON decodes the script's request strictly (httpapi.Bind).
func bindJSON(c *fiber.Ctx, v httpapi.Validator) error {
	return httpapi.Bind(c.Body(), v)
}

// ---- pages ----

// pageBase is what every page's layout needs.
type pageBase struct {
	Title   string
	Nav     string      // active menu entry: "tokens", "audit", "passkeys"
	Op      *opView     // nil when signed out
	CSRF    string      // this session's (or the login form's) CSRF token
	CSS     styleRef    // the back office's stylesheet, with its SRI hash
	Scripts []scriptRef // the back office's scripts, in order, with their SRI hashes
}

type opView struct {
	ID, Username, Role, Scope string
	ScopeID                   string // the merchant's id under its name; "" for the platform
	CanReveal, CanAudit       bool
	HasTOTP                   bool
}

func (h *Handler) base(ctx context.Context, title, nav string, a *backoffice.Actor) pageBase {
	b := pageBase{Title: title, Nav: nav}
	assets := loadAssets()
	b.CSS = styleRef{Href: Prefix + "/assets/" + styleFile, Integrity: assets.sri(styleFile)}
	for _, name := range scriptFiles {
		b.Scripts = append(b.Scripts, scriptRef{Src: Prefix + "/assets/" + name, Integrity: assets.sri(name)})
	}
	if a != nil {
		scope, scopeID := "all merchants", ""
		if !a.Op.Platform() {
			scope, scopeID = a.Op.MerchantID, a.Op.MerchantID
			if n := h.d.Office.MerchantNames(ctx, *a, a.Op.MerchantID)[a.Op.MerchantID]; n != "" {
				scope = n
			}
		}
		b.Op = &opView{
			ID: a.Op.ID, Username: a.Op.Username, Role: string(a.Op.Role), Scope: scope, ScopeID: scopeID,
			CanReveal: a.Op.Role.Can(operators.ActionReveal), CanAudit: a.Op.Role.Can(operators.ActionAudit),
			HasTOTP: a.Op.TOTPEnabled,
		}
		b.CSRF = a.Sess.CSRF
	}
	return b
}

// render executes a page into a buffer first, so a template error becomes a
// clean error page instead of half a page.
func (h *Handler) render(c *fiber.Ctx, status int, page string, data any) error {
	if h.d.Pages == nil {
		return apierr.Internal.Wrap(errors.New("backoffice: no templates"))
	}
	var buf bytes.Buffer
	if err := h.d.Pages.ExecuteTemplate(&buf, page, data); err != nil {
		return apierr.Internal.Wrap(fmt.Errorf("backoffice: render %s: %w", page, err))
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}

// errorPage is the data of backoffice_error.html.
type errorPage struct {
	pageBase
	Status  int
	Code    string
	Heading string
	Message string
	Retry   string // "3 minutes", when the caller may retry
	Login   bool   // offer the login link
}

// renderError renders err as an HTML page. A missing or expired session on a
// GET is sent to the login page instead.
func (h *Handler) renderError(c *fiber.Ctx, err error) error {
	if errors.Is(err, backoffice.ErrLoginRequired) {
		expired := errors.Is(err, backoffice.ErrSessionExpired)
		if c.Method() == fiber.MethodGet {
			to := Prefix + "/login"
			if expired {
				to += "?expired=1"
			}
			return c.Redirect(to, fiber.StatusSeeOther)
		}
		err = apierr.LoginRequired
		if expired {
			err = &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.LoginRequired.Code,
				Message: "Your session expired after 15 minutes without activity. Log in again; nothing was done."}
		}
	}
	ae := httpapi.From(err)
	httpapi.LogRequest(h.d.Log, c, ae)
	p := errorPage{
		pageBase: h.base(c.UserContext(), headingOf(ae), "", nil),
		Status:   ae.Status,
		Code:     ae.Code,
		Heading:  headingOf(ae),
		Message:  ae.Message,
		Login:    ae.Status == http.StatusUnauthorized || ae.Code == apierr.CSRFFailed.Code,
	}
	if ae.RetryAfter > 0 {
		secs := int((ae.RetryAfter + time.Second - 1) / time.Second)
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		p.Retry = humanDuration(ae.RetryAfter)
	}
	var buf bytes.Buffer
	if h.d.Pages == nil || h.d.Pages.ExecuteTemplate(&buf, "backoffice_error.html", p) != nil {
		// Last resort: a fixed text, never err's text.
		return c.Status(ae.Status).SendString(http.StatusText(ae.Status))
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(ae.Status).Send(buf.Bytes())
}

func headingOf(ae *apierr.Error) string {
	switch ae.Code {
	case apierr.CSRFFailed.Code:
		return "Form expired"
	case apierr.LoginRequired.Code:
		return "Please log in"
	case apierr.Forbidden.Code:
		return "Not allowed"
	case apierr.NotFound.Code:
		return "Not found"
	case apierr.RateLimited.Code:
		return "Limit reached"
	case apierr.KeyServiceDown.Code:
		return "Key service unavailable"
	case apierr.AuditFailed.Code:
		return "Audit log unavailable"
	}
	switch {
	case ae.Status >= 500:
		return "Service unavailable"
	case ae.Status == http.StatusBadRequest:
		return "Invalid request"
	}
	return http.StatusText(ae.Status)
}

// humanDuration rounds up to whole minutes (or seconds under a minute):
// "limit reached, try again in 3 minutes".
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		n := int((d + time.Second - 1) / time.Second)
		return plural(n, "second")
	}
	if d < 2*time.Hour {
		return plural(int((d+time.Minute-1)/time.Minute), "minute")
	}
	return plural(int((d+time.Hour-1)/time.Hour), "hour")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}
