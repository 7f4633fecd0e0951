package backofficehttp_test

import (
	"net"
	"net/http"
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

// TestBackofficeBrowser drives real Chromium through login (TOTP code from
// pquerna/otp) -> search -> token detail -> reveal with a reason ->
// automatic hide, then the admin's audit view. The hide delay is 2 s here
// (the page's template knob); production is 60 s.
func TestBackofficeBrowser(t *testing.T) {
	browser := browsertest.Browser(t)
	f := newFixture(t, fixtureOpts{reveals: 2, hideAfter: "2"})
	rita := f.addOperator(t, "rita", operators.RoleRevealer, "", true)
	f.addOperator(t, "adam", operators.RoleAdmin, "", true)
	f.addOperator(t, "nina", operators.RoleViewer, merchA, false)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = f.app.Listener(ln) }()
	t.Cleanup(func() { _ = f.app.Shutdown() })
	base := "http://" + ln.Addr().String()

	// Uncaught exceptions fail the test when it ends.
	tb := browsertest.NewTab(t, browser, browsertest.WithCSPProbe(), browsertest.FailOnExceptions())
	tb.Do(t, chromedp.EmulateViewport(1280, 860))

	// Login: username, password and the current TOTP code in one form.
	tb.Do(t, browsertest.Navigate(base+"/backoffice/login"), chromedp.WaitVisible(chromedp.ID("bo-username")))
	tb.NoCSPViolations(t)
	tb.Screenshot(t, filepath.Join(screenshotDir, "backoffice-login.png"))
	tb.Do(t,
		chromedp.SendKeys(chromedp.ID("bo-username"), "rita"),
		chromedp.SendKeys(chromedp.ID("bo-password"), testPassword),
		chromedp.SendKeys(chromedp.ID("bo-code"), f.code(t, "rita")+"\r"),
	)
	tb.WaitFor(t, `location.pathname === "/backoffice/tokens" && document.getElementById("bo-search")`, 10*time.Second)

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

	// Reveal with a typed reason.
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bo-reason"), "Chargeback ticket #4711"), chromedp.Click(chromedp.ID("bo-reveal-btn")))
	tb.WaitFor(t, `document.getElementById("bo-pan") !== null`, 10*time.Second)
	shownAt := time.Now()
	if got := browsertest.Eval[string](t, tb, `document.getElementById("bo-pan").textContent`); got != testPANShown {
		t.Fatalf("revealed number %q", got)
	}
	if state := browsertest.Eval[string](t, tb, `document.getElementById("bo-reveal").dataset.state`); state != "shown" {
		t.Fatalf("reveal state %q", state)
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

	// The key service recorded the reveal with the operator and the reason.
	evs := f.kz.Events(t, audit.Filter{Event: audit.EventReveal})
	if len(evs) != 1 || evs[0].Actor != rita.ID || evs[0].Reason != "Chargeback ticket #4711" || evs[0].Resource != f.tokA.ID {
		t.Fatalf("key service audit: %+v", evs)
	}

	// Two more reveals (through the HTTP client) hit the limit of two and
	// raise an alarm, so the audit page has something to highlight.
	f.clock.Advance(31 * time.Second)
	c := f.client()
	c.login(t, "rita")
	if r := c.reveal(t, f.tokA2.ID, "Refund check"); r.status != http.StatusOK {
		t.Fatalf("second reveal: %d", r.status)
	}
	if r := c.reveal(t, f.tokB.ID, "Fraud review"); r.status != http.StatusTooManyRequests {
		t.Fatalf("third reveal: %d", r.status)
	}

	// Log out in the browser; the admin logs in and opens the audit trail.
	tb.Do(t, browsertest.Navigate(base+"/backoffice/tokens"), chromedp.WaitVisible(chromedp.CSS(".bo-who button")))
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
}
