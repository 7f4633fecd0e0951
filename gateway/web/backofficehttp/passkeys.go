package backofficehttp

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/apierr"
)

// passkeyTimeout is how long the browser's passkey prompt waits, in ms;
// within the key service's nonce lifetime (2 minutes).
const passkeyTimeout = 110_000

// rpName is the relying party's name an authenticator shows.
const rpName = "Blindgate back office"

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// loginChallenge issues a single-use challenge for a passkey login. It is
// a pre-session route: the login form's double-submit CSRF check (token in
// X-CSRF-Token) and the per-IP login limit apply.
func (h *Handler) loginChallenge(c *fiber.Ctx) error {
	if !h.d.Operators.PasskeysEnabled() || h.d.Operators.MFA() == operators.MFATOTP {
		return apierr.NotFound
	}
	if !h.checkLoginCSRF(c) {
		return apierr.CSRFFailed
	}
	if err := h.allowLogin(c); err != nil {
		return err
	}
	ch, err := h.d.Operators.LoginChallenge(c.UserContext())
	if err != nil {
		return apierr.Unavailable.Wrap(err)
	}
	return c.JSON(fiber.Map{"challenge": b64u(ch), "rp_id": h.d.Operators.Passkeys().RP().ID, "timeout": passkeyTimeout})
}

// passkeysPageData is the data of backoffice_passkeys.html.
type passkeysPageData struct {
	pageBase
	MFA       string
	Enabled   bool
	Required  bool // the account may do nothing else until it has one
	Keys      []passkeyRow
	ListError string
}

type passkeyRow struct {
	ID, Fingerprint, Created, LastUsed, Status string
}

// passkeysPage lists the operator's passkeys with their status at the key
// service and offers enrolment. It is open before the second factor is
// done: where the MFA mode requires a passkey, this is the enrolment page.
func (h *Handler) passkeysPage(c *fiber.Ctx, a *backoffice.Actor) error {
	p := passkeysPageData{
		pageBase: h.base(c.UserContext(), "Passkeys", "passkeys", a),
		MFA:      string(h.d.Operators.MFA()),
		Enabled:  h.d.Operators.PasskeysEnabled(),
		Required: h.d.Office.RequireSecondFactor(*a) != nil,
	}
	views, err := h.d.Office.PasskeyList(c.UserContext(), *a)
	if err != nil {
		p.ListError = "The key service could not be asked for your passkeys' approval status; try again later."
	}
	for _, v := range views {
		r := passkeyRow{ID: v.ID, Fingerprint: v.Fingerprint, Created: v.Created.UTC().Format("2006-01-02 15:04 UTC"), Status: v.Status}
		if !v.LastUsed.IsZero() {
			r.LastUsed = v.LastUsed.UTC().Format("2006-01-02 15:04 UTC")
		}
		p.Keys = append(p.Keys, r)
	}
	return h.render(c, http.StatusOK, "backoffice_passkeys.html", p)
}

// emptyBody is the (empty) JSON body of a challenge request.
type emptyBody struct{}

func (emptyBody) Validate() error { return nil }

// passkeyChallenge starts an enrolment: the options of
// navigator.credentials.create, with the key service's nonce.
func (h *Handler) passkeyChallenge(c *fiber.Ctx, a *backoffice.Actor) error {
	if err := bindJSON(c, &emptyBody{}); err != nil {
		return err
	}
	ch, err := h.d.Office.PasskeyChallenge(c.UserContext(), *a)
	if err != nil {
		return passkeyError(err)
	}
	out := fiber.Map{
		"nonce":      ch.Nonce,
		"challenge":  b64u(ch.Challenge),
		"rp":         fiber.Map{"id": ch.RPID, "name": rpName},
		"user":       fiber.Map{"id": b64u(ch.UserHandle), "name": ch.Username, "display_name": ch.Username},
		"exclude":    nonNil(ch.Exclude),
		"timeout":    passkeyTimeout,
		"expires_at": ch.ExpiresAt.Unix(),
		"factor":     ch.Factor,
	}
	if ch.Factor == backoffice.FactorPasskey {
		out["assert"] = fiber.Map{"challenge": b64u(ch.Assert), "rp_id": ch.RPID, "credentials": nonNil(ch.Exclude)}
	}
	return c.JSON(out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// enrolBody is the registering request of the passkeys page.
type enrolBody struct {
	Nonce       string          `json:"nonce"`
	Attestation json.RawMessage `json:"attestation"`
	Password    string          `json:"password"`
	Code        string          `json:"code,omitempty"`
	Assertion   json.RawMessage `json:"assertion,omitempty"`
}

func (enrolBody) Validate() error { return nil } // the domain checks each field

// enrolPasskey registers a passkey (backoffice.Service.EnrolPasskey): a
// password check, so the per-IP login limit applies.
func (h *Handler) enrolPasskey(c *fiber.Ctx, a *backoffice.Actor) error {
	if err := h.allowLogin(c); err != nil {
		return err
	}
	var b enrolBody
	if err := bindJSON(c, &b); err != nil {
		return err
	}
	res, err := h.d.Office.EnrolPasskey(c.UserContext(), *a, backoffice.EnrolRequest{
		Nonce: b.Nonce, Attestation: b.Attestation, Password: b.Password, Code: b.Code, Assertion: b.Assertion,
	})
	if errors.Is(err, backoffice.ErrLocked) {
		h.setCookie(c, h.cookieName(), "", -1)
	}
	if err != nil {
		return passkeyError(err)
	}
	return c.Status(http.StatusCreated).JSON(fiber.Map{
		"credential":      res.Credential,
		"fingerprint":     res.Fingerprint,
		"status":          res.Status,
		"approve_command": "keyservice passkeys approve " + res.Fingerprint,
	})
}

// passkeyError maps enrolment failures to codes and sentences.
func passkeyError(err error) error {
	var ie *backoffice.InvalidError
	switch {
	case errors.Is(err, backoffice.ErrPasskeysOff):
		return &apierr.Error{Status: http.StatusNotFound, Code: apierr.NotFound.Code, Err: err,
			Message: "Passkeys are not configured for this back office."}
	case errors.Is(err, backoffice.ErrReauthRequired), errors.Is(err, backoffice.ErrReauthFailed):
		return &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.ReauthRequired.Code, Err: err,
			Message: "Wrong password, code or passkey. Nothing was changed."}
	case errors.Is(err, backoffice.ErrLocked):
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code, Err: err,
			Message: "Too many failed attempts: your account is locked and you have been logged out."}
	case errors.Is(err, backoffice.ErrPasskeyRejected):
		return &apierr.Error{Status: apierr.PasskeyInvalid.Status, Code: apierr.PasskeyInvalid.Code, Err: err,
			Message: "The passkey registration did not verify (it must use your screen lock or PIN, on this site). Nothing was changed."}
	case errors.Is(err, backoffice.ErrPasskeyExists):
		return &apierr.Error{Status: http.StatusBadRequest, Code: apierr.InvalidField.Code, Err: err,
			Message: "This passkey is already enrolled."}
	case errors.Is(err, backoffice.ErrPasskeyLimit):
		return &apierr.Error{Status: http.StatusBadRequest, Code: apierr.InvalidField.Code, Err: err,
			Message: "You have the most passkeys allowed; ask an administrator to remove one."}
	case errors.As(err, &ie):
		return &apierr.Error{Status: http.StatusBadRequest, Code: apierr.InvalidField.Code, Message: ie.Msg, Err: err}
	case errors.Is(err, backoffice.ErrApprovalRefused):
		// The key service's verdict on the registration, with its code.
		var ke *backoffice.KeyServiceError
		errors.As(err, &ke)
		base := apierr.Unavailable
		for _, c := range []*apierr.Error{apierr.RevealNonceInvalid, apierr.PasskeyInvalid, apierr.PasskeyUnknown, apierr.PasskeyRequired} {
			if c.Code == ke.Code {
				base = c
			}
		}
		return &apierr.Error{Status: base.Status, Code: base.Code, Err: err,
			Message: "The key service refused the registration (its challenge expired or was used, or the passkey did not verify). Nothing was changed; start again."}
	}
	return revealError(err)
}
