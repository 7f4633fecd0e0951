package backofficehttp_test

import (
	"encoding/base64"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/browsertest"
)

// screenshotDir is where BLINDGATE_SCREENSHOTS=1 writes the README's images.
const screenshotDir = "../../../docs/screenshots"

// serveBrowser starts the fixture's gateway on a loopback listener and
// returns it with its base URL, http://localhost:<port>: a secure context
// whose host is a valid WebAuthn relying party id (an IP address is not).
func serveBrowser(t *testing.T, o fixtureOpts) (*fixture, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	o.origin = base
	f := newFixture(t, o)
	go func() { _ = f.app.Listener(ln) }()
	t.Cleanup(func() { _ = f.app.Shutdown() })
	return f, base
}

// TestBackofficeBrowser drives real Chromium, with a DevTools virtual
// authenticator as the operator's passkey, through: login (TOTP code from
// pquerna/otp) -> passkey enrolment (approved as a key-zone admin would) ->
// logout and login with the passkey -> search -> token detail -> reveal
// with a reason, approved by the passkey and decrypted by the page ->
// automatic hide; a reveal dropped on pagehide; the key service's limit as
// the page shows it; the admin's audit view; a first login's TOTP
// enrolment. Every answer the browser got from the gateway's reveal routes
// holds ciphertext only. The hide delay is 2 s here (the page's template
// knob); production is 60 s.
func TestBackofficeBrowser(t *testing.T) {
	browser := browsertest.Browser(t)
	f, base := serveBrowser(t, fixtureOpts{reveals: 2, hideAfter: "2"})
	rita := f.addOperator(t, "rita", operators.RoleRevealer, "", true)
	f.addOperator(t, "adam", operators.RoleAdmin, "", true)
	f.addOperator(t, "nina", operators.RoleViewer, merchA, false)

	// Uncaught exceptions fail the test when it ends.
	tb := browsertest.NewTab(t, browser, browsertest.WithCSPProbe(), browsertest.FailOnExceptions())
	tb.Do(t, chromedp.EmulateViewport(1280, 860))
	authID := tb.VirtualAuthenticator(t)
	// The browser's view of the reveal routes' answers (challenge and reveal).
	rec := tb.RecordResponses(t, func(u string) bool {
		return strings.HasPrefix(u, base+"/backoffice/tokens/") && strings.Contains(u, "/reveal")
	})

	// Login: username, password and the current TOTP code in one form.
	tb.Do(t, browsertest.Navigate(base+"/backoffice/login"), chromedp.WaitVisible(chromedp.ID("bo-username")))
	tb.WaitFor(t, `!document.getElementById("bo-passkey-login").hidden`, 5*time.Second)
	tb.NoCSPViolations(t)
	tb.Screenshot(t, filepath.Join(screenshotDir, "backoffice-login.png"))
	tb.Do(t,
		chromedp.SendKeys(chromedp.ID("bo-username"), "rita"),
		chromedp.SendKeys(chromedp.ID("bo-password"), testPassword),
		chromedp.SendKeys(chromedp.ID("bo-code"), f.code(t, "rita")+"\r"),
	)
	tb.WaitFor(t, `location.pathname === "/backoffice/tokens" && document.getElementById("bo-search")`, 10*time.Second)
	f.clock.Advance(30 * time.Second)

	// Passkey enrolment: password and a fresh code, then the authenticator.
	tb.Do(t, browsertest.Navigate(base+"/backoffice/passkeys"), chromedp.WaitVisible(chromedp.ID("bo-pk-password")))
	tb.Do(t,
		chromedp.SendKeys(chromedp.ID("bo-pk-password"), testPassword),
		chromedp.SendKeys(chromedp.ID("bo-pk-code"), f.code(t, "rita")),
		chromedp.Click(chromedp.ID("bo-passkey-btn")),
	)
	tb.WaitFor(t, `!document.getElementById("bo-passkey-result").hidden || !document.getElementById("bo-passkey-error").hidden`, 15*time.Second)
	if e := browsertest.Eval[string](t, tb, `document.getElementById("bo-passkey-error").hidden ? "" : document.getElementById("bo-passkey-error").textContent`); e != "" {
		t.Fatalf("enrolment failed in the page: %s", e)
	}
	f.clock.Advance(30 * time.Second)
	fp := browsertest.Eval[string](t, tb, `document.getElementById("bo-pk-fingerprint").textContent`)
	cmd := browsertest.Eval[string](t, tb, `document.getElementById("bo-pk-command").textContent`)
	if cmd != "keyservice passkeys approve "+fp || len(fp) != 14 {
		t.Fatalf("enrolment result: fingerprint %q, command %q", fp, cmd)
	}
	tb.NoCSPViolations(t)
	tb.Screenshot(t, filepath.Join(screenshotDir, "backoffice-passkeys.png"))
	creds := tb.Credentials(t, authID)
	if len(creds) != 1 || !creds[0].IsResidentCredential {
		t.Fatalf("virtual authenticator holds %d credentials", len(creds))
	}
	credID := base64.RawURLEncoding.EncodeToString(creds[0].CredentialID)
	// The key-zone admin compares the fingerprint and approves.
	if ids := f.kz.ApprovePending(t, rita.ID); len(ids) != 1 || ids[0] != credID {
		t.Fatalf("approved %v, want %s", ids, credID)
	}

	// Log out, and in again with the passkey instead of a code.
	tb.Do(t, chromedp.Click(chromedp.CSS(".bo-who button")))
	tb.WaitFor(t, `location.pathname === "/backoffice/login"`, 10*time.Second)
	tb.WaitFor(t, `!document.getElementById("bo-passkey-login").hidden`, 5*time.Second)
	tb.Do(t,
		chromedp.SendKeys(chromedp.ID("bo-username"), "rita"),
		chromedp.SendKeys(chromedp.ID("bo-password"), testPassword),
		chromedp.Click(chromedp.ID("bo-passkey-login")),
	)
	tb.WaitFor(t, `location.pathname === "/backoffice/tokens" && document.getElementById("bo-search")`, 10*time.Second)
	if evs := f.gwEvents(t, audit.Filter{Event: audit.EventLogin, Outcome: audit.OutcomeSuccess}); evs[0].Reason != "login with passkey" {
		t.Fatalf("passkey login not recorded: %+v", evs[0])
	}

	// Search by last 4: the two tokens of that card, masked, with brand icons.
	tb.Do(t, chromedp.SendKeys(chromedp.ID("f-last4"), "4242"), chromedp.Click(chromedp.ID("bo-search")))
	tb.WaitFor(t, `location.search.includes("last4=4242") && document.querySelectorAll("#bo-results tbody tr").length === 2`, 10*time.Second)
	tb.WaitFor(t, `[...document.images].every(function (i) { return i.complete && i.naturalWidth > 0; })`, 5*time.Second)
	if body := browsertest.Eval[string](t, tb, `document.body.innerText`); strings.Contains(body, testPANShown) || !strings.Contains(body, "42424242 •••• 4242") {
		t.Fatalf("token list is not masked as expected:\n%s", body)
	}
	tb.NoCSPViolations(t)
	tb.Screenshot(t, filepath.Join(screenshotDir, "backoffice-tokens.png"))

	// Detail page of the older token.
	tb.Do(t, browsertest.Navigate(base+"/backoffice/tokens/"+f.tokA.ID), chromedp.WaitVisible(chromedp.ID("bo-reason")))
	tb.NoCSPViolations(t)
	tb.Screenshot(t, filepath.Join(screenshotDir, "backoffice-token.png"))

	// Reveal with a typed reason: the passkey approves, the page decrypts.
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bo-reason"), "Chargeback ticket #4711"), chromedp.Click(chromedp.ID("bo-reveal-btn")))
	tb.WaitFor(t, `document.getElementById("bo-reveal").dataset.state === "shown" || !document.getElementById("bo-reveal-error").hidden`, 15*time.Second)
	if e := browsertest.Eval[string](t, tb, `document.getElementById("bo-reveal-error").hidden ? "" : document.getElementById("bo-reveal-error").textContent`); e != "" {
		t.Fatalf("reveal failed in the page: %s", e)
	}
	shownAt := time.Now()
	if got := browsertest.Eval[string](t, tb, `document.getElementById("bo-pan").textContent`); got != testPANShown {
		t.Fatalf("revealed number %q", got)
	}
	if got := browsertest.Eval[string](t, tb, `document.getElementById("bo-reveal-cred").textContent`); got != credID {
		t.Errorf("approving passkey shown as %q, want %s", got, credID)
	}
	// Copy guard: the number cannot be selected, so select-all does not take it.
	if sel := browsertest.Eval[string](t, tb, `document.execCommand("selectAll"), String(window.getSelection())`); strings.Contains(sel, "4242 4242") {
		t.Error("select-all copies the card number")
	}
	browsertest.Eval[bool](t, tb, `window.getSelection().removeAllRanges(), true`)
	tb.Screenshot(t, filepath.Join(screenshotDir, "backoffice-revealed.png"))
	// The copy button works once.
	if browsertest.Eval[bool](t, tb, `document.getElementById("bo-copy").disabled`) {
		t.Log("clipboard API unavailable in this browser; copy button stays disabled")
	} else {
		tb.Do(t, chromedp.Click(chromedp.ID("bo-copy")))
		tb.WaitFor(t, `document.getElementById("bo-copy").disabled`, 5*time.Second)
	}

	// What the browser received from the gateway for this reveal: the
	// challenge and a JWE, never the card.
	if answers := noCardInAnswers(t, rec); len(answers) != 2 || !strings.Contains(answers[1].Body, `"jwe":"eyJ`) || answers[1].Status != 200 {
		t.Fatalf("the browser's network answers do not show the challenge and the JWE: %+v", answers)
	}

	// Auto-hide: gone from the DOM after the delay, not only from view.
	tb.WaitFor(t, `document.getElementById("bo-reveal").dataset.state === "hidden"`, 30*time.Second)
	// Not before its delay; the upper bound only catches "never", not speed.
	if el := time.Since(shownAt); el < time.Second {
		t.Errorf("hidden after %s, before its 2 s delay", el)
	}
	if html := browsertest.Eval[string](t, tb, `document.documentElement.outerHTML`); strings.Contains(html, testPANShown) || strings.Contains(html, testPAN) {
		t.Fatal("the card number is still in the DOM after hiding")
	}
	if !browsertest.Eval[bool](t, tb, `document.getElementById("bo-copy").disabled && document.getElementById("bo-hide").disabled`) {
		t.Error("buttons still enabled after hiding")
	}
	tb.NoCSPViolations(t)

	// The key service recorded the reveal with the operator, the reason and
	// the passkey.
	evs := f.kz.Events(t, audit.Filter{Event: audit.EventReveal})
	if len(evs) != 1 || evs[0].Actor != rita.ID || evs[0].Reason != "Chargeback ticket #4711" || evs[0].Resource != f.tokA.ID || evs[0].Credential != credID {
		t.Fatalf("key service audit: %+v", evs)
	}

	// Leaving the page drops the number at once: pagehide, dispatched in
	// the same task as the check, so the 2 s timer cannot be what hid it.
	tb.Do(t, browsertest.Navigate(base+"/backoffice/tokens/"+f.tokA2.ID), chromedp.WaitVisible(chromedp.ID("bo-reason")))
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bo-reason"), "Refund check"), chromedp.Click(chromedp.ID("bo-reveal-btn")))
	tb.WaitFor(t, `document.getElementById("bo-reveal").dataset.state === "shown" || !document.getElementById("bo-reveal-error").hidden`, 15*time.Second)
	dropped := browsertest.Eval[string](t, tb, `(function () {
		var shown = document.getElementById("bo-pan").textContent;
		window.dispatchEvent(new PageTransitionEvent("pagehide", {persisted: false}));
		return shown + "|" + document.getElementById("bo-reveal").dataset.state + "|" + document.getElementById("bo-pan").textContent;
	})()`)
	if dropped != testPANShown+"|hidden|" {
		t.Fatalf("pagehide: %q, want the number shown, then hidden and gone", dropped)
	}
	noCardInAnswers(t, rec)

	// A third reveal within the hour: the key service's limit, as the page says it.
	tb.Do(t, browsertest.Navigate(base+"/backoffice/tokens/"+f.tokB.ID), chromedp.WaitVisible(chromedp.ID("bo-reason")))
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bo-reason"), "Fraud review"), chromedp.Click(chromedp.ID("bo-reveal-btn")))
	tb.WaitFor(t, `!document.getElementById("bo-reveal-error").hidden`, 15*time.Second)
	if msg := browsertest.Eval[string](t, tb, `document.getElementById("bo-reveal-error").textContent`); !strings.Contains(msg, "Reveal limit reached") {
		t.Fatalf("limit message %q", msg)
	}
	if browsertest.Eval[bool](t, tb, `document.getElementById("bo-reveal").dataset.state === "shown"`) {
		t.Fatal("a refused reveal shows a card")
	}
	if answers := noCardInAnswers(t, rec); len(answers) != 2 || answers[1].Status != 429 {
		t.Fatalf("answers of the refused reveal: %+v", answers)
	}

	// Log out; the admin logs in and opens the audit trail.
	tb.Do(t, chromedp.Click(chromedp.CSS(".bo-who button")))
	tb.WaitFor(t, `location.pathname === "/backoffice/login" && location.search === "?out=1"`, 10*time.Second)
	tb.Do(t,
		chromedp.SendKeys(chromedp.ID("bo-username"), "adam"),
		chromedp.SendKeys(chromedp.ID("bo-password"), testPassword),
		chromedp.SendKeys(chromedp.ID("bo-code"), f.code(t, "adam")+"\r"),
	)
	tb.WaitFor(t, `location.pathname === "/backoffice/tokens"`, 10*time.Second)
	tb.Do(t, browsertest.Navigate(base+"/backoffice/audit"), chromedp.WaitVisible(chromedp.ID("bo-audit")))
	if !browsertest.Eval[bool](t, tb, `document.querySelector("#bo-chain.bo-chain-ok") !== null && document.querySelectorAll("#bo-audit tr.bo-row-alarm").length >= 1`) {
		t.Fatal("audit page: chain status or alarm highlight missing")
	}
	// The alarm row really is highlighted (a computed colour, not just a class).
	if bg := browsertest.Eval[string](t, tb, `getComputedStyle(document.querySelector("#bo-audit tr.bo-row-alarm td")).backgroundColor`); bg == "rgba(0, 0, 0, 0)" || bg == "" {
		t.Errorf("alarm row background %q", bg)
	}
	tb.NoCSPViolations(t)
	tb.Screenshot(t, filepath.Join(screenshotDir, "backoffice-audit.png"))

	// First login of an operator without a second factor: the QR code (a
	// data: image under the CSP) and the secret, then confirmation.
	tb.Do(t, chromedp.Click(chromedp.CSS(".bo-who button")))
	tb.WaitFor(t, `location.pathname === "/backoffice/login"`, 10*time.Second)
	tb.Do(t,
		chromedp.SendKeys(chromedp.ID("bo-username"), "nina"),
		chromedp.SendKeys(chromedp.ID("bo-password"), testPassword+"\r"),
	)
	tb.WaitFor(t, `location.pathname === "/backoffice/enroll"`, 10*time.Second)
	tb.WaitFor(t, `document.querySelector("img.bo-qr").complete && document.querySelector("img.bo-qr").naturalWidth === 256`, 5*time.Second)
	tb.NoCSPViolations(t)
	tb.Screenshot(t, filepath.Join(screenshotDir, "backoffice-enroll.png"))
	secret := strings.ReplaceAll(browsertest.Eval[string](t, tb, `document.getElementById("bo-totp-secret").textContent`), " ", "")
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bo-code"), f.codeAt(t, secret, f.clock.Now())+"\r"))
	tb.WaitFor(t, `location.pathname === "/backoffice/tokens" && document.querySelectorAll("#bo-results tbody tr").length === 2`, 10*time.Second)

	for _, l := range tb.Console() {
		if strings.Contains(l, "4242") {
			t.Errorf("the page logged the card number")
		}
	}
	if strings.Contains(f.logs.String(), testPAN) {
		t.Error("the gateway logged the card number")
	}
}

// noCardInAnswers fails t if an answer the browser received from the reveal
// routes since the last call holds a trace of the card; it returns them.
func noCardInAnswers(t *testing.T, rec *browsertest.Responses) []browsertest.Response {
	t.Helper()
	answers := rec.Bodies(t)
	for _, a := range answers {
		for _, trace := range cardTraces() {
			if strings.Contains(a.Body, trace) {
				t.Errorf("the gateway's answer from %s holds %q", a.URL, trace)
			}
		}
	}
	return answers
}
