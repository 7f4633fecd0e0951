package web

// The back office: operator login with TOTP, masked token search, the
// role-gated reveal through the key service, and the key service's audit
// trail for admins. Pages are rendered on the server from templates/ with
// no inline script or style; every answer, errors included, is an HTML page
// (never the JSON of the merchant API) sent with Cache-Control: no-store.
//
// The policy of search, reveal and the audit view (roles, merchant scope,
// the reason rule, re-authentication, lockout, audit before access, and
// reading the key service's answers by code) is gateway/backoffice's; the
// handlers here bind the form, call it, and render.
//
// Files: backoffice.go (routes, session and CSRF checks, page and error
// rendering), backoffice_login.go (login, TOTP enrolment, logout),
// backoffice_tokens.go (search, detail, reveal), backoffice_audit.go (the
// audit view), backoffice_assets.go (the page's own CSS and JS).

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/websession"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/httpapi"
	"github.com/blindgate/blindgate/internal/panshape"
	"github.com/blindgate/blindgate/internal/ratelimit"
)

// Back-office policy.
const (
	// boPrefix is where the back office is mounted (server.go routes()).
	boPrefix = "/backoffice"

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

	// boCSP: pages load only our own script and style; the enrolment QR
	// code is a data: image; forms post only to us; nobody may frame us.
	boCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// loginLimit bounds login attempts (and TOTP enrolment confirmations) per
// client IP, on top of the per-account lockout: the lockout stops guessing
// one account, this stops spraying many.
func loginLimit() ratelimit.Limit {
	return ratelimit.Limit{Name: "backoffice-login", Rate: 20, Period: time.Minute, Burst: 20}
}

// backofficeRoutes registers every back-office route on r (mounted at
// /backoffice). Routes are listed here only; each handler is wrapped by bo,
// which sets the page headers and renders any error as an HTML page.
func (s *Server) backofficeRoutes(r fiber.Router) {
	// Public: the login form and the page assets.
	r.Get("/login", s.bo(s.boLoginForm))
	r.Post("/login", s.bo(s.boLogin))
	r.Get("/assets/:name", s.serveBoAsset)

	// Signed in, possibly before TOTP enrolment (authed lets these two through).
	r.Get("/enroll", s.bo(s.authed(s.boEnrollForm)))
	r.Post("/enroll", s.bo(s.authed(s.boEnroll)))
	r.Post("/logout", s.bo(s.authed(s.boLogout)))

	// Signed in with TOTP.
	r.Get("/", s.bo(s.authed(func(c *fiber.Ctx, _ *boActor) error {
		return c.Redirect(boPrefix+"/tokens", fiber.StatusSeeOther)
	})))
	r.Get("/tokens", s.bo(s.authed(s.boTokens)))
	r.Get("/tokens/:id", s.bo(s.authed(s.boToken)))
	r.Post("/tokens/:id/reveal", s.bo(s.authed(s.boReveal)))
	r.Get("/audit", s.bo(s.authed(s.boAuditView)))

	// Anything else under /backoffice is an HTML 404, not the API's JSON.
	r.All("/*", s.bo(func(*fiber.Ctx) error { return apierr.NotFound }))
}

// boActor is the signed-in operator of a request.
type boActor struct{ backoffice.Actor }

// bo wraps a back-office handler: page headers first (so error pages carry
// them too), then the handler; an error becomes an HTML page here, the one
// place that renders back-office errors.
func (s *Server) bo(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentSecurityPolicy, boCSP)
		c.Set(fiber.HeaderXFrameOptions, "DENY")
		// Nothing of the back office may be stored by the browser or a proxy:
		// masked card data, audit lines, and above all a revealed number.
		c.Set(fiber.HeaderCacheControl, "no-store")
		c.Set(fiber.HeaderPragma, "no-cache")
		if formHasPAN(c) {
			return s.boError(c, apierr.PANInText)
		}
		if err := h(c); err != nil {
			return s.boError(c, err)
		}
		return nil
	}
}

// secretFields are the form fields never written anywhere, and so exempt
// from the card-number check (a password may be all digits).
var secretFields = map[string]bool{"password": true, "code": true, csrfField: true}

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

func (s *Server) now() time.Time { return s.deps.Config.Now() }

// cookieName is the session cookie's name for this deployment.
func (s *Server) cookieName() string {
	if s.deps.Config.TLS {
		return cookieSessionTLS
	}
	return cookieSessionPlain
}

func (s *Server) loginCookieName() string {
	if s.deps.Config.TLS {
		return cookieLoginTLS
	}
	return cookieLoginPlain
}

// setCookie writes a back-office cookie: HttpOnly (no script reads it),
// SameSite=Strict (no cross-site request carries it), Secure over TLS,
// Path=/ (required by the __Host- prefix). maxAge 0 makes a browser-session
// cookie; < 0 deletes it.
func (s *Server) setCookie(c *fiber.Ctx, name, value string, maxAge time.Duration) {
	ck := &fiber.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HTTPOnly: true,
		Secure:   s.deps.Config.TLS,
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

// errLoginRequired carries whether an existing session expired, so the
// login page can say why the operator is back there.
type errLoginRequired struct{ expired bool }

func (e errLoginRequired) Error() string { return "backoffice: login required" }

// authed resolves the session cookie to a signed-in operator, checks the
// CSRF token of every POST, and sends an operator without a second factor
// to TOTP enrolment. Order matters: the session is checked before CSRF (a
// CSRF token is per session), and the operator record is re-read on every
// request so a disabled or locked account stops at once.
func (s *Server) authed(h func(*fiber.Ctx, *boActor) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx := c.UserContext()
		now := s.now()
		id := c.Cookies(s.cookieName())
		if id == "" {
			return errLoginRequired{}
		}
		sess, err := s.deps.WebSessions.Get(ctx, strings.Clone(id), now)
		switch {
		case errors.Is(err, websession.ErrNotFound), errors.Is(err, websession.ErrExpired):
			s.setCookie(c, s.cookieName(), "", -1)
			return errLoginRequired{expired: errors.Is(err, websession.ErrExpired)}
		case err != nil:
			return apierr.Unavailable.Wrap(err)
		}
		op, err := s.deps.Operators.Get(ctx, sess.OperatorID)
		if err != nil && !errors.Is(err, operators.ErrNotFound) {
			return apierr.Unavailable.Wrap(err)
		}
		if err != nil || op.Disabled || op.Locked(now) {
			// The account went away under a live session: end it.
			_ = s.deps.WebSessions.Delete(ctx, sess.ID)
			s.setCookie(c, s.cookieName(), "", -1)
			return errLoginRequired{}
		}
		if c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
			if !sameSiteRequest(c) || !sess.CheckCSRF(csrfToken(c)) {
				return apierr.CSRFFailed
			}
		}
		if !op.TOTPEnabled {
			switch c.Route().Path {
			case boPrefix + "/enroll", boPrefix + "/logout":
			default:
				// Until a second factor is confirmed the session is good for
				// enrolment only (PCI DSS 8.4.2: MFA for all non-console access).
				if c.Method() == fiber.MethodGet {
					return c.Redirect(boPrefix+"/enroll", fiber.StatusSeeOther)
				}
				return apierr.Forbidden
			}
		}
		return h(c, &boActor{backoffice.Actor{Op: op, Sess: sess, Origin: s.clientIP(c)}})
	}
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
func (s *Server) checkLoginCSRF(c *fiber.Ctx) bool {
	ck := c.Cookies(s.loginCookieName())
	f := csrfToken(c)
	if !sameSiteRequest(c) || len(ck) != 43 || len(f) != 43 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(ck), []byte(f)) == 1
}

// boAudit appends a gateway audit event. Unlike the checkout path, the back
// office fails closed where the event records access (a login, a search, an
// audit view): the caller turns the error into a 503 and withholds the page.
func (s *Server) boAudit(c *fiber.Ctx, e audit.Event) error {
	if s.deps.Audit == nil {
		return nil
	}
	if e.Origin == "" {
		e.Origin = s.clientIP(c)
	}
	if _, err := s.deps.Audit.Append(c.UserContext(), e); err != nil {
		s.deps.Log.Error("backoffice: gateway audit append failed", "event", e.Event, "err", err)
		return apierr.AuditFailed.Wrap(err)
	}
	return nil
}

// boAuditBestEffort records an event whose request fails anyway (a failed
// login, a refused reveal): a broken log must not change the answer.
func (s *Server) boAuditBestEffort(c *fiber.Ctx, e audit.Event) {
	_ = s.boAudit(c, e)
}

// allowLogin applies the per-IP login limit; a limiter failure refuses
// (fail closed), since the lockout alone does not stop password spraying.
func (s *Server) allowLogin(c *fiber.Ctx) error {
	if s.deps.Limiter == nil {
		return nil
	}
	err := ratelimit.Check(c.UserContext(), s.deps.Limiter, loginLimit(), "bo-login:"+s.clientIP(c))
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

// ---- pages ----

// boBase is what every page's layout needs.
type boBase struct {
	Title string
	Nav   string      // active menu entry: "tokens", "audit"
	Op    *boOpView   // nil when signed out
	CSRF  string      // this session's (or the login form's) CSRF token
	CSS   boStyleRef  // the back office's stylesheet, with its SRI hash
	JS    boScriptRef // the back office's script, with its SRI hash
}

type boOpView struct {
	ID, Username, Role, Scope string
	CanReveal, CanAudit       bool
}

func (s *Server) base(title, nav string, a *boActor) boBase {
	b := boBase{Title: title, Nav: nav}
	assets := boAssetSet()
	b.CSS = boStyleRef{Href: boPrefix + "/assets/" + boStyle, Integrity: assets.sri(boStyle)}
	b.JS = boScriptRef{Src: boPrefix + "/assets/" + boScript, Integrity: assets.sri(boScript)}
	if a != nil {
		scope := "all merchants"
		if !a.Op.Platform() {
			scope = a.Op.MerchantID
		}
		b.Op = &boOpView{
			ID: a.Op.ID, Username: a.Op.Username, Role: string(a.Op.Role), Scope: scope,
			CanReveal: a.Op.Role.Can(operators.ActionReveal), CanAudit: a.Op.Role.Can(operators.ActionAudit),
		}
		b.CSRF = a.Sess.CSRF
	}
	return b
}

// render executes a page into a buffer first, so a template error becomes a
// clean error page instead of half a page.
func (s *Server) render(c *fiber.Ctx, status int, page string, data any) error {
	if s.deps.Pages == nil {
		return apierr.Internal.Wrap(errors.New("backoffice: no templates"))
	}
	var buf bytes.Buffer
	if err := s.deps.Pages.ExecuteTemplate(&buf, page, data); err != nil {
		return apierr.Internal.Wrap(fmt.Errorf("backoffice: render %s: %w", page, err))
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}

// boErrorPage is the data of backoffice_error.html.
type boErrorPage struct {
	boBase
	Status  int
	Code    string
	Heading string
	Message string
	Retry   string // "3 minutes", when the caller may retry
	Login   bool   // offer the login link
}

// boError renders err as an HTML page. A missing or expired session on a
// GET is sent to the login page instead.
func (s *Server) boError(c *fiber.Ctx, err error) error {
	var lr errLoginRequired
	if errors.As(err, &lr) {
		if c.Method() == fiber.MethodGet {
			to := boPrefix + "/login"
			if lr.expired {
				to += "?expired=1"
			}
			return c.Redirect(to, fiber.StatusSeeOther)
		}
		err = apierr.LoginRequired
		if lr.expired {
			err = &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.LoginRequired.Code,
				Message: "Your session expired after 15 minutes without activity. Log in again; nothing was done."}
		}
	}
	ae := httpapi.From(err)
	httpapi.LogRequest(s.deps.Log, c, ae)
	p := boErrorPage{
		boBase:  s.base(headingOf(ae), "", nil),
		Status:  ae.Status,
		Code:    ae.Code,
		Heading: headingOf(ae),
		Message: ae.Message,
		Login:   ae.Status == http.StatusUnauthorized || ae.Code == apierr.CSRFFailed.Code,
	}
	if ae.RetryAfter > 0 {
		secs := int((ae.RetryAfter + time.Second - 1) / time.Second)
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		p.Retry = humanDuration(ae.RetryAfter)
	}
	var buf bytes.Buffer
	if s.deps.Pages == nil || s.deps.Pages.ExecuteTemplate(&buf, "backoffice_error.html", p) != nil {
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
