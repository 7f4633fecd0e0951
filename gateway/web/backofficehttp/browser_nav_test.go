package backofficehttp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/browsertest"
)

// browserRevealer logs name (a revealer with TOTP) in through the login
// page, enrols a passkey on tb's virtual authenticator through the passkeys
// page, and has it approved in the key zone, as TestBackofficeBrowser does
// step by step.
func browserRevealer(t *testing.T, f *fixture, tb *browsertest.Tab, base, name string) operators.Operator {
	t.Helper()
	op := f.addOperator(t, name, operators.RoleRevealer, "", true)
	tb.VirtualAuthenticator(t)
	tb.Do(t, browsertest.Navigate(base+"/backoffice/login"), chromedp.WaitVisible(chromedp.ID("bo-username")))
	tb.Do(t,
		chromedp.SendKeys(chromedp.ID("bo-username"), name),
		chromedp.SendKeys(chromedp.ID("bo-password"), testPassword),
		chromedp.SendKeys(chromedp.ID("bo-code"), f.code(t, name)+"\r"),
	)
	tb.WaitFor(t, `location.pathname === "/backoffice/tokens" && document.getElementById("bo-search")`, 10*time.Second)
	f.clock.Advance(30 * time.Second)
	tb.Do(t, browsertest.Navigate(base+"/backoffice/passkeys"), chromedp.WaitVisible(chromedp.ID("bo-pk-password")))
	tb.Do(t,
		chromedp.SendKeys(chromedp.ID("bo-pk-password"), testPassword),
		chromedp.SendKeys(chromedp.ID("bo-pk-code"), f.code(t, name)),
		chromedp.Click(chromedp.ID("bo-passkey-btn")),
	)
	tb.WaitFor(t, `!document.getElementById("bo-passkey-result").hidden || !document.getElementById("bo-passkey-error").hidden`, 15*time.Second)
	if e := browsertest.Eval[string](t, tb, `document.getElementById("bo-passkey-error").hidden ? "" : document.getElementById("bo-passkey-error").textContent`); e != "" {
		t.Fatalf("enrolment failed in the page: %s", e)
	}
	f.clock.Advance(30 * time.Second)
	if ids := f.kz.ApprovePending(t, op.ID); len(ids) != 1 {
		t.Fatalf("approved %v", ids)
	}
	return op
}

// TestBackofficeHistoryAfterReveal (Chromium): a reveal adds nothing to
// the browser's history (it is the page script's JSON calls, not a form
// post), so Back from the token page after a reveal is the search the
// operator came from, and Forward the token page again, freshly loaded with
// nothing revealed; leaving by a link and coming Back is the token page,
// never a resubmission prompt, an error or a login form; and the login page
// of an operator who is signed in (where Back ends up after a login) goes
// on to the tokens instead of asking for a login. No page the history
// brings back holds the number.
func TestBackofficeHistoryAfterReveal(t *testing.T) {
	browser := browsertest.Browser(t)
	f, base := serveBrowser(t, fixtureOpts{reveals: 5})
	tb := browsertest.NewTab(t, browser, browsertest.WithCSPProbe(), browsertest.FailOnExceptions())
	tb.Do(t, chromedp.EmulateViewport(1280, 860))
	browserRevealer(t, f, tb, base, "rita")

	tokenPage := "/backoffice/tokens/" + f.tokA.ID
	search := "/backoffice/tokens?reference=" + testRef
	tb.Do(t, browsertest.Navigate(base+search))
	tb.WaitFor(t, `document.querySelectorAll("#bo-results tbody tr").length === 1`, 10*time.Second)
	tb.Do(t, chromedp.Click(chromedp.CSS("#bo-results a.bo-tok")))
	tb.WaitFor(t, `location.pathname === "`+tokenPage+`" && !document.getElementById("bo-reveal-btn").disabled`, 10*time.Second)

	reveal := func() {
		t.Helper()
		browsertest.Eval[bool](t, tb, `document.getElementById("bo-reason").value = "", true`)
		tb.Do(t, chromedp.SendKeys(chromedp.ID("bo-reason"), "Chargeback ticket #4711"), chromedp.Click(chromedp.ID("bo-reveal-btn")))
		tb.WaitFor(t, `document.getElementById("bo-reveal").dataset.state === "shown" || !document.getElementById("bo-reveal-error").hidden`, 15*time.Second)
		if got := browsertest.Eval[string](t, tb, `document.getElementById("bo-pan").textContent`); got != testPANShown {
			t.Fatalf("reveal: %q, error %q", got, browsertest.Eval[string](t, tb, `document.getElementById("bo-reveal-error").textContent`))
		}
	}
	// go runs a history step and waits for the document it lands on (a new
	// one: the pages are no-store, so none is kept in the back/forward
	// cache).
	step := func(js, wantPath, wantH1 string) {
		t.Helper()
		browsertest.Eval[bool](t, tb, `window.__left = true, `+js+`, true`)
		tb.WaitFor(t, `window.__left === undefined && document.readyState === "complete"`, 10*time.Second)
		got := browsertest.Eval[string](t, tb, `location.pathname + location.search + " | " + document.querySelector("h1").textContent.trim()`)
		if !strings.HasPrefix(got, wantPath+" | "+wantH1) {
			t.Fatalf("%s: landed on %q, want %s, heading %q", js, got, wantPath, wantH1)
		}
		if html := browsertest.Eval[string](t, tb, `document.documentElement.outerHTML`); strings.Contains(html, testPANShown) || strings.Contains(html, testPAN) {
			t.Fatalf("%s: the card number is in the page", js)
		}
	}

	before := browsertest.Eval[int](t, tb, `history.length`)
	reveal()
	if after := browsertest.Eval[int](t, tb, `history.length`); after != before {
		t.Fatalf("the reveal added %d history entries", after-before)
	}
	step(`history.back()`, search, "Tokens")
	if n := browsertest.Eval[int](t, tb, `document.querySelectorAll("#bo-results tbody tr").length`); n != 1 {
		t.Fatalf("the search came back with %d rows", n)
	}
	step(`history.forward()`, tokenPage, "Token "+f.tokA.ID)
	if !browsertest.Eval[bool](t, tb, `document.getElementById("bo-reveal").hidden && document.getElementById("bo-pan").textContent === "" && !document.getElementById("bo-reveal-btn").disabled`) {
		t.Fatal("Forward to the token page did not bring a fresh page, ready to reveal again")
	}

	// Away by a link, then Back.
	reveal()
	step(`document.querySelector('a[href^="/backoffice/tokens?dupes="]').click()`, "/backoffice/tokens?dupes="+f.tokA.ID, "Tokens")
	step(`history.back()`, tokenPage, "Token "+f.tokA.ID)

	// The login page, signed in: on to the tokens, no login asked for.
	step(`location.assign("/backoffice/login")`, "/backoffice/tokens", "Tokens")
	tb.NoCSPViolations(t)
}
