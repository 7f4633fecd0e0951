package backofficehttp

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"image/png"
	"net/http"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/pquerna/otp"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/web/clientaddr"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
)

// loginFailedMsg is the one answer to every failed login, whether the name
// exists or not, the password or the code was wrong, or the account is
// disabled: the page must not help anyone find a valid name or password.
const loginFailedMsg = "Invalid username, password or code."

// loginPage is the data of backoffice_login.html.
type loginPage struct {
	pageBase
	Error    string
	Info     string
	Username string
	MFA      string // the MFA mode: totp, passkey or any
	Passkey  bool   // offer the passkey login
}

func (h *Handler) newLoginPage(c *fiber.Ctx) loginPage {
	p := loginPage{pageBase: h.base(c.UserContext(), "Log in", "", nil), MFA: string(h.d.Operators.MFA())}
	p.Passkey = h.d.Operators.PasskeysEnabled() && h.d.Operators.MFA() != operators.MFATOTP
	p.CSRF = h.loginToken(c)
	return p
}

// newFormToken returns 256 random bits, base64url (43 characters).
func newFormToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// loginToken returns the pre-session CSRF token, reusing the cookie's so
// that two open login tabs both keep working.
func (h *Handler) loginToken(c *fiber.Ctx) string {
	if tok := c.Cookies(h.loginCookieName()); len(tok) == 43 {
		return strings.Clone(tok)
	}
	tok := newFormToken()
	h.setCookie(c, h.loginCookieName(), tok, loginCSRFMaxAge)
	return tok
}

// loginForm shows the login form, or, to an operator who is signed in
// (the browser's Back to the page it logged in from), the page the session
// is good for: a login form there would ask for a login that is not needed.
func (h *Handler) loginForm(c *fiber.Ctx) error {
	if id := c.Cookies(h.cookieName()); id != "" {
		if a, err := h.d.Office.Resume(c.UserContext(), strings.Clone(id), clientaddr.Of(c, h.d.ClientIP)); err == nil {
			to := Prefix + "/tokens"
			if h.d.Office.RequireSecondFactor(a) != nil {
				to = Prefix + "/enroll"
			}
			return c.Redirect(to, fiber.StatusSeeOther)
		}
	}
	p := h.newLoginPage(c)
	switch {
	case c.Query("expired") != "":
		p.Info = "Your session expired after 15 minutes without activity. Please log in again."
	case c.Query("out") != "":
		p.Info = "You are logged out."
	}
	return h.render(c, http.StatusOK, "backoffice_login.html", p)
}

// login checks username, password and the second factor (a TOTP code, or a
// passkey assertion over a challenge from POST /login/passkey) in one step
// (operators.Service.Login: lockout first, constant work for unknown
// names, code and challenge single use), then starts a new session.
func (h *Handler) login(c *fiber.Ctx) error {
	if !h.checkLoginCSRF(c) {
		return apierr.CSRFFailed
	}
	if err := h.allowLogin(c); err != nil {
		return err
	}
	ctx := c.UserContext()
	username := strings.Clone(c.FormValue("username"))
	password := strings.Clone(c.FormValue("password"))
	f := operators.Factor{Code: strings.Clone(c.FormValue("code"))}
	if a := c.FormValue("assertion"); a != "" {
		f = operators.Factor{Assertion: []byte(a)} // FormValue's bytes are copied here
	}
	now := h.now()

	op, err := h.d.Operators.Login(ctx, username, password, f, now)
	if err != nil {
		return h.loginFailed(c, username, err)
	}
	// Always a new session id at login, and the old one (if any) ended, so
	// a session id planted before login is worth nothing after it.
	if old := c.Cookies(h.cookieName()); old != "" {
		_ = h.d.Sessions.Delete(ctx, strings.Clone(old))
	}
	sess, err := h.d.Sessions.Create(ctx, op.ID, now)
	if err != nil {
		return apierr.Unavailable.Wrap(err)
	}
	done := h.d.Operators.SecondFactorDone(op)
	reason := "login"
	switch {
	case len(f.Assertion) > 0:
		reason = "login with passkey"
	case !done:
		reason = "login (second factor enrolment required)"
	}
	if err := h.record(c, audit.Event{Event: audit.EventLogin, Actor: op.ID, Outcome: audit.OutcomeSuccess, Reason: reason}); err != nil {
		// No audit record, no access (PCI DSS 10.2.1).
		_ = h.d.Sessions.Delete(ctx, sess.ID)
		return err
	}
	h.setCookie(c, h.cookieName(), sess.ID, 0)
	h.setCookie(c, h.loginCookieName(), "", -1)
	if !done {
		return c.Redirect(Prefix+"/enroll", fiber.StatusSeeOther)
	}
	return c.Redirect(Prefix+"/tokens", fiber.StatusSeeOther)
}

// loginFailed audits a failed login and answers the login page again. The
// audit names the operator by id when the name is an operator's, and any
// other name only by its keyed hash (operators.Service.NameTag): a name
// typed wrong is often a password.
func (h *Handler) loginFailed(c *fiber.Ctx, username string, err error) error {
	actor, aerr := h.d.Operators.LoginActor(c.UserContext(), username)
	if aerr != nil {
		return apierr.Unavailable.Wrap(aerr)
	}
	p := h.newLoginPage(c)
	if u, nerr := operators.NormalizeUsername(username); nerr == nil {
		p.Username = u
	}

	var locked *operators.LockedError
	switch {
	case errors.As(err, &locked):
		h.recordBestEffort(c, audit.Event{Event: audit.EventLogin, Actor: actor, Outcome: audit.OutcomeDenied, Code: "locked"})
		// Usernames that do not exist lock exactly like real ones (operators
		// keeps counters per name), so this message reveals nothing either.
		p.Error = fmt.Sprintf("Too many failed attempts: logins for this name are locked. Try again in %s, or ask an administrator.",
			humanDuration(locked.Until.Sub(h.now())))
		return h.render(c, http.StatusForbidden, "backoffice_login.html", p)
	case errors.Is(err, operators.ErrBadCredentials), errors.Is(err, operators.ErrMFARequired),
		errors.Is(err, operators.ErrDisabled), errors.Is(err, operators.ErrInvalid):
		h.recordBestEffort(c, audit.Event{Event: audit.EventLogin, Actor: actor, Outcome: audit.OutcomeFailure, Code: backoffice.LoginCode(err)})
		p.Error = loginFailedMsg
		return h.render(c, http.StatusUnauthorized, "backoffice_login.html", p)
	default:
		return apierr.Unavailable.Wrap(err)
	}
}

func (h *Handler) logout(c *fiber.Ctx, a *backoffice.Actor) error {
	if err := h.d.Sessions.Delete(c.UserContext(), a.Sess.ID); err != nil {
		return apierr.Unavailable.Wrap(err)
	}
	h.setCookie(c, h.cookieName(), "", -1)
	h.recordBestEffort(c, audit.Event{Event: audit.EventLogout, Actor: a.Op.ID, Outcome: audit.OutcomeSuccess})
	return c.Redirect(Prefix+"/login?out=1", fiber.StatusSeeOther)
}

// ---- TOTP enrolment ----

// enrollPage is the data of backoffice_enroll.html.
type enrollPage struct {
	pageBase
	QR       template.URL // data:image/png;base64,... of the otpauth:// URL
	Secret   string       // base32, as authenticator apps and `blindgate totp` take it
	Groups   []string     // Secret in groups of four, for reading off the screen
	Error    string
	Passkeys bool // offer a passkey instead
}

// enrollForm is the first-login enrolment: the pending TOTP secret
// (starting an enrolment if none is pending, so a reload does not
// invalidate a code already scanned), with a passkey offered instead where
// the MFA mode accepts one; where it requires one, the passkeys page.
func (h *Handler) enrollForm(c *fiber.Ctx, a *backoffice.Actor) error {
	switch {
	case h.d.Operators.SecondFactorDone(a.Op):
		return c.Redirect(Prefix+"/tokens", fiber.StatusSeeOther)
	case h.d.Operators.MFA() == operators.MFAPasskey:
		return c.Redirect(Prefix+"/passkeys", fiber.StatusSeeOther)
	case a.Op.TOTPEnabled:
		// TOTP is done; what is missing is not TOTP.
		return c.Redirect(Prefix+"/passkeys", fiber.StatusSeeOther)
	}
	return h.renderEnroll(c, a, http.StatusOK, "")
}

func (h *Handler) renderEnroll(c *fiber.Ctx, a *backoffice.Actor, status int, msg string) error {
	secret := a.Op.TOTPPending
	var qr []byte
	var err error
	if secret == "" {
		secret, _, qr, err = h.d.Operators.EnrollTOTP(c.UserContext(), a.Op.ID)
	} else {
		qr, err = totpQR(a.Op.Username, secret)
	}
	if err != nil {
		return apierr.Unavailable.Wrap(err)
	}
	p := enrollPage{
		pageBase: h.base(c.UserContext(), "Set up two-factor authentication", "", a),
		QR:       template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(qr)), //nolint:gosec // our own PNG bytes
		Secret:   secret,
		Groups:   groupsOf(secret, 4),
		Error:    msg,
		Passkeys: h.d.Operators.PasskeysEnabled() && h.d.Operators.MFA() != operators.MFATOTP,
	}
	return h.render(c, status, "backoffice_enroll.html", p)
}

// enroll confirms the pending secret with a code from the authenticator.
func (h *Handler) enroll(c *fiber.Ctx, a *backoffice.Actor) error {
	if a.Op.TOTPEnabled || h.d.Operators.MFA() == operators.MFAPasskey {
		return c.Redirect(Prefix+"/enroll", fiber.StatusSeeOther)
	}
	if err := h.allowLogin(c); err != nil {
		return err
	}
	ctx := c.UserContext()
	err := h.d.Operators.ConfirmTOTP(ctx, a.Op.ID, strings.Clone(c.FormValue("code")))
	switch {
	case errors.Is(err, operators.ErrBadCredentials):
		return h.renderEnroll(c, a, http.StatusUnauthorized, "That code does not match. Check the clock of your device and enter the current code.")
	case errors.Is(err, operators.ErrInvalid):
		return c.Redirect(Prefix+"/enroll", fiber.StatusSeeOther)
	case err != nil:
		return apierr.Unavailable.Wrap(err)
	}
	h.recordBestEffort(c, audit.Event{Event: audit.EventMFAEnroll, Actor: a.Op.ID, Resource: a.Op.ID, Outcome: audit.OutcomeSuccess, Reason: "totp"})
	// Password and a code from the new factor were both just checked.
	if _, err := h.d.Sessions.Reauth(ctx, a.Sess.ID, h.now()); err != nil {
		return apierr.Unavailable.Wrap(err)
	}
	return c.Redirect(Prefix+"/tokens", fiber.StatusSeeOther)
}

// totpIssuer labels the account in authenticator apps (operators' default).
const totpIssuer = "Blindgate"

// totpQR renders the otpauth:// URL of a pending secret as a PNG, for a
// page reload during enrolment (EnrollTOTP made the first one).
func totpQR(username, secret string) ([]byte, error) {
	v := url.Values{}
	v.Set("secret", secret)
	v.Set("issuer", totpIssuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", "6")
	v.Set("period", "30")
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + totpIssuer + ":" + username, RawQuery: v.Encode()}
	key, err := otp.NewKeyFromURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("backoffice: totp url: %w", err)
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return nil, fmt.Errorf("backoffice: totp qr: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("backoffice: totp png: %w", err)
	}
	return buf.Bytes(), nil
}

// groupsOf cuts s into groups of n. The page shows them apart with CSS,
// not spaces, so what is copied is the secret as apps take it.
func groupsOf(s string, n int) []string {
	var out []string
	for i := 0; i < len(s); i += n {
		out = append(out, s[i:min(i+n, len(s))])
	}
	return out
}
