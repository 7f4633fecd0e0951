package backofficehttp_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/passkey/passkeytest"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// loginPasskey logs name in with the password and a passkey assertion over
// a challenge from POST /backoffice/login/passkey, as the login page's
// script does. It returns the login's answer.
func (c *webClient) loginPasskey(t *testing.T, name string, a *passkeytest.Authenticator) response {
	t.Helper()
	page := c.get(t, "/backoffice/login")
	csrf := csrfOf(t, page.body)
	ch := c.postJSON(t, "/backoffice/login/passkey", csrf, map[string]any{})
	if ch.status != http.StatusOK {
		return ch
	}
	var opts struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rp_id"`
	}
	if err := json.Unmarshal([]byte(ch.body), &opts); err != nil {
		t.Fatal(err)
	}
	challenge, _ := base64.RawURLEncoding.DecodeString(opts.Challenge)
	as, err := a.Get(challenge)
	if err != nil {
		t.Fatal(err)
	}
	return c.post(t, "/backoffice/login", url.Values{"csrf": {csrf}, "username": {name}, "password": {testPassword}, "assertion": {string(as)}})
}

// TestBackofficePasskeyEnrolment: a passkey is enrolled with the care of a
// TOTP enrolment (password and current factor in the registering request,
// CSRF, audit), verified by the gateway and the key service, kept pending
// there until a key-zone admin approves it, and listed with its status.
func TestBackofficePasskeyEnrolment(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	op := f.addOperator(t, "rita", operators.RoleRevealer, "", true)
	c := f.client()
	c.login(t, "rita")

	page := c.get(t, "/backoffice/passkeys")
	if page.status != 200 || !strings.Contains(page.body, `id="bo-passkey-form"`) || !strings.Contains(page.body, `id="bo-pk-code"`) {
		t.Fatalf("passkeys page: %d\n%.600s", page.status, page.body)
	}
	csrf := csrfOf(t, page.body)

	t.Run("challenge/commits-to-the-key-services-nonce-and-the-operator", func(t *testing.T) {
		r := c.postJSON(t, "/backoffice/passkeys/challenge", csrf, map[string]any{})
		var ch struct {
			Nonce, Challenge, Factor string
			RP                       struct{ ID string }
			User                     struct{ ID, Name string }
		}
		if err := json.Unmarshal([]byte(r.body), &ch); r.status != 200 || err != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		want := base64.RawURLEncoding.EncodeToString(wire.EnrolChallenge(ch.Nonce, op.ID))
		if ch.Challenge != want || ch.RP.ID != "pay.example" || ch.Factor != "totp" || ch.User.Name != "rita" ||
			ch.User.ID != base64.RawURLEncoding.EncodeToString(wire.UserHandle(op.ID)) || !strings.HasPrefix(ch.Nonce, wire.PasskeyNoncePrefix) {
			t.Fatalf("challenge %+v", ch)
		}
	})
	t.Run("401/wrong-code-nothing-kept", func(t *testing.T) {
		f.secrets["rita-real"] = f.secrets["rita"]
		f.secrets["rita"] = "JBSWY3DPEHPK3PXP" // a code from another secret
		_, r := c.enrolPasskey(t, "rita")
		f.secrets["rita"] = f.secrets["rita-real"]
		if r.status != http.StatusUnauthorized || errCode(r) != "reauth_required" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if got, _ := f.ops.Get(t.Context(), op.ID); len(got.Passkeys) != 0 {
			t.Fatal("a passkey was kept")
		}
		if evs := f.gwEvents(t, audit.Filter{Event: audit.EventLogin, Outcome: audit.OutcomeFailure}); len(evs) != 1 || evs[0].Reason != "re-authentication for passkey enrolment" {
			t.Errorf("failed re-authentication not audited: %+v", evs)
		}
	})
	var a *passkeytest.Authenticator
	t.Run("201/enrolled-pending", func(t *testing.T) {
		var r response
		a, r = c.enrolPasskey(t, "rita")
		var res struct {
			Credential     string `json:"credential"`
			Fingerprint    string `json:"fingerprint"`
			Status         string `json:"status"`
			ApproveCommand string `json:"approve_command"`
		}
		if err := json.Unmarshal([]byte(r.body), &res); r.status != http.StatusCreated || err != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		got, _ := f.ops.Get(t.Context(), op.ID)
		if len(got.Passkeys) != 1 || res.Credential != a.ID() || res.Fingerprint != passkey.Fingerprint(got.Passkeys[0].Credential) ||
			res.Status != wire.PasskeyPending || res.ApproveCommand != "keyservice passkeys approve "+res.Fingerprint {
			t.Fatalf("enrolled %+v, kept %d", res, len(got.Passkeys))
		}
		evs := f.gwEvents(t, audit.Filter{Event: audit.EventPasskeyEnrolled})
		if len(evs) != 1 || evs[0].Actor != op.ID || evs[0].Credential != a.ID() || !strings.Contains(evs[0].Reason, res.Fingerprint) {
			t.Errorf("passkey.enrolled: %+v", evs)
		}
		if evs := f.kz.Events(t, audit.Filter{Event: audit.EventPasskeyRegister}); len(evs) != 1 || evs[0].Credential != a.ID() {
			t.Errorf("key service passkey.register: %+v", evs)
		}
		if list := c.get(t, "/backoffice/passkeys"); !strings.Contains(list.body, res.Fingerprint) || !strings.Contains(list.body, "bo-status-pending") {
			t.Errorf("list does not show it pending\n%.800s", list.body)
		}
		// Pending: it approves no reveal (and rita has no other passkey).
		if r := c.reveal(t, f.tokA.ID, "before approval", revealOpts{auth: a}); r.status != 403 || r.code != "passkey_required" {
			t.Errorf("reveal with a pending passkey: %d %s", r.status, r.code)
		}
		f.kz.ApprovePending(t, op.ID)
		if list := c.get(t, "/backoffice/passkeys"); !strings.Contains(list.body, "bo-status-approved") {
			t.Errorf("list does not show it approved")
		}
		if r := c.reveal(t, f.tokA.ID, "after approval", revealOpts{auth: a}); r.status != 200 || r.card.PAN != testPAN {
			t.Errorf("reveal with the approved passkey: %d %s", r.status, r.body)
		}
	})
	t.Run("403/registration-for-another-operator", func(t *testing.T) {
		other := f.addOperator(t, "otto", operators.RoleRevealer, "", true)
		r := c.postJSON(t, "/backoffice/passkeys/challenge", c.csrf(t), map[string]any{})
		var ch struct{ Nonce string }
		_ = json.Unmarshal([]byte(r.body), &ch)
		b := passkeytestNew(t, f)
		att, _ := b.Create(wire.EnrolChallenge(ch.Nonce, other.ID), wire.UserHandle(other.ID))
		r = c.postJSON(t, "/backoffice/passkeys", c.csrf(t), map[string]any{"nonce": ch.Nonce, "attestation": json.RawMessage(att),
			"password": testPassword, "code": f.code(t, "rita")})
		f.clock.Advance(30 * time.Second)
		if r.status != http.StatusForbidden || errCode(r) != "passkey_invalid" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("403/registration-nonce-spent", func(t *testing.T) {
		r := c.postJSON(t, "/backoffice/passkeys/challenge", c.csrf(t), map[string]any{})
		var ch struct{ Nonce string }
		_ = json.Unmarshal([]byte(r.body), &ch)
		register := func() response {
			b := passkeytestNew(t, f)
			att, _ := b.Create(wire.EnrolChallenge(ch.Nonce, op.ID), wire.UserHandle(op.ID))
			defer f.clock.Advance(30 * time.Second)
			return c.postJSON(t, "/backoffice/passkeys", c.csrf(t), map[string]any{"nonce": ch.Nonce, "attestation": json.RawMessage(att),
				"password": testPassword, "code": f.code(t, "rita")})
		}
		if r := register(); r.status != http.StatusCreated {
			t.Fatalf("first: %d %s", r.status, r.body)
		}
		before, _ := f.ops.Get(t.Context(), op.ID)
		r = register()
		if r.status != http.StatusForbidden || errCode(r) != "reveal_nonce_invalid" {
			t.Fatalf("second with the same nonce: %d %s", r.status, r.body)
		}
		if after, _ := f.ops.Get(t.Context(), op.ID); len(after.Passkeys) != len(before.Passkeys) {
			t.Error("the gateway kept a passkey the key service refused")
		}
	})
	t.Run("403/cross-site", func(t *testing.T) {
		c.header["Sec-Fetch-Site"] = "cross-site"
		defer delete(c.header, "Sec-Fetch-Site")
		if r := c.postJSON(t, "/backoffice/passkeys/challenge", c.csrf(t), map[string]any{}); r.status != 403 || errCode(r) != "csrf_failed" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

func passkeytestNew(t *testing.T, f *fixture) *passkeytest.Authenticator {
	t.Helper()
	a, err := passkeytest.New(f.rp.ID, f.rp.Origins[0])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestBackofficePasskeyLogin: with a passkey enrolled, the password and an
// assertion over a single-use challenge log in; a replay, a challenge the
// gateway did not issue, or the passkey where the mode wants TOTP do not.
func TestBackofficePasskeyLogin(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.addRevealer(t, "rita", "")
	a := f.passkeys["rita"]

	t.Run("303/password-and-passkey", func(t *testing.T) {
		c := f.client()
		if r := c.loginPasskey(t, "rita", a); r.status != 303 || r.header.Get("Location") != "/backoffice/tokens" {
			t.Fatalf("%d %s", r.status, r.header.Get("Location"))
		}
		if evs := f.gwEvents(t, audit.Filter{Event: audit.EventLogin, Outcome: audit.OutcomeSuccess}); evs[0].Reason != "login with passkey" {
			t.Errorf("login audit %+v", evs[0])
		}
	})
	t.Run("401/replayed-assertion", func(t *testing.T) {
		c := f.client()
		page := c.get(t, "/backoffice/login")
		csrf := csrfOf(t, page.body)
		ch := c.postJSON(t, "/backoffice/login/passkey", csrf, map[string]any{})
		var opts struct{ Challenge string }
		_ = json.Unmarshal([]byte(ch.body), &opts)
		challenge, _ := base64.RawURLEncoding.DecodeString(opts.Challenge)
		as, _ := a.Get(challenge)
		form := url.Values{"csrf": {csrf}, "username": {"rita"}, "password": {testPassword}, "assertion": {string(as)}}
		if r := c.post(t, "/backoffice/login", form); r.status != 303 {
			t.Fatalf("first use: %d", r.status)
		}
		d := f.client()
		page = d.get(t, "/backoffice/login")
		form.Set("csrf", csrfOf(t, page.body))
		if r := d.post(t, "/backoffice/login", form); r.status != 401 || !strings.Contains(r.body, loginFailedText) {
			t.Fatalf("replay: %d", r.status)
		}
	})
	t.Run("401/challenge-not-issued", func(t *testing.T) {
		c := f.client()
		page := c.get(t, "/backoffice/login")
		as, _ := a.Get([]byte("a challenge the gateway never gave"))
		r := c.post(t, "/backoffice/login", url.Values{"csrf": {csrfOf(t, page.body)}, "username": {"rita"}, "password": {testPassword}, "assertion": {string(as)}})
		if r.status != 401 {
			t.Fatalf("%d", r.status)
		}
	})
	t.Run("401/password-alone", func(t *testing.T) {
		if r := f.client().loginWith(t, "rita", testPassword, ""); r.status != 401 {
			t.Fatalf("%d", r.status)
		}
	})
	t.Run("403/challenge-without-login-csrf", func(t *testing.T) {
		c := f.client()
		c.get(t, "/backoffice/login")
		if r := c.postJSON(t, "/backoffice/login/passkey", "", map[string]any{}); r.status != 403 || errCode(r) != "csrf_failed" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("totp-mode/no-passkey-login", func(t *testing.T) {
		g := newFixture(t, fixtureOpts{mfa: operators.MFATOTP, noKS: true})
		g.addOperator(t, "rita", operators.RoleRevealer, "", true)
		c := g.client()
		page := c.get(t, "/backoffice/login")
		if strings.Contains(page.body, "bo-passkey-login") {
			t.Error("the login page offers a passkey under -operator-mfa totp")
		}
		if r := c.postJSON(t, "/backoffice/login/passkey", csrfOf(t, page.body), map[string]any{}); r.status != 404 {
			t.Fatalf("challenge under totp: %d", r.status)
		}
	})
}

// TestBackofficePasskeyFirstFactor: under -operator-mfa passkey, a new
// operator's first login (password alone) leads to the passkeys page, and
// nothing else, until a passkey is enrolled; the password is asked for
// again in the registering request. An operator who has only TOTP logs in
// with it once more, to enrol a passkey.
func TestBackofficePasskeyFirstFactor(t *testing.T) {
	f := newFixture(t, fixtureOpts{mfa: operators.MFAPasskey})
	f.addOperator(t, "newbie", operators.RoleViewer, "", false)
	f.addOperator(t, "olga", operators.RoleViewer, "", true)

	c := f.client()
	r := c.loginWith(t, "newbie", testPassword, "")
	if r.status != 303 || r.header.Get("Location") != "/backoffice/enroll" {
		t.Fatalf("first login: %d %s", r.status, r.header.Get("Location"))
	}
	if r := c.get(t, "/backoffice/enroll"); r.status != 303 || r.header.Get("Location") != "/backoffice/passkeys" {
		t.Fatalf("enrol page under passkey mode: %d %s", r.status, r.header.Get("Location"))
	}
	if r := c.get(t, "/backoffice/tokens"); r.status != 303 || r.header.Get("Location") != "/backoffice/enroll" {
		t.Fatalf("tokens before a passkey: %d %s", r.status, r.header.Get("Location"))
	}
	page := c.get(t, "/backoffice/passkeys")
	if page.status != 200 || !strings.Contains(page.body, "needs a passkey before you can continue") || strings.Contains(page.body, `id="bo-pk-code"`) {
		t.Fatalf("passkeys page: %d\n%.600s", page.status, page.body)
	}
	a, res := c.enrolPasskey(t, "newbie")
	if res.status != http.StatusCreated {
		t.Fatalf("enrol: %d %s", res.status, res.body)
	}
	if r := c.get(t, "/backoffice/tokens"); r.status != 200 {
		t.Fatalf("tokens after enrolment: %d", r.status)
	}
	if r := f.client().loginWith(t, "newbie", testPassword, ""); r.status != 401 {
		t.Fatalf("password alone after enrolment: %d", r.status)
	}
	if r := f.client().loginPasskey(t, "newbie", a); r.status != 303 || r.header.Get("Location") != "/backoffice/tokens" {
		t.Fatalf("passkey login: %d %s", r.status, r.header.Get("Location"))
	}

	// TOTP only, passkey mode: the code still logs in, to the enrolment.
	d := f.client()
	r = d.loginWith(t, "olga", testPassword, f.code(t, "olga"))
	f.clock.Advance(30 * time.Second)
	if r.status != 303 || r.header.Get("Location") != "/backoffice/enroll" {
		t.Fatalf("TOTP-only login under passkey mode: %d %s", r.status, r.header.Get("Location"))
	}
	if r := d.get(t, "/backoffice/passkeys"); !strings.Contains(r.body, `id="bo-pk-code"`) {
		t.Error("the TOTP operator's enrolment does not ask for the code")
	}
}
