package backofficehttp_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
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

// grantClipboard lets the tab's pages at origin read and write the
// clipboard, so a test can read back what a page copied.
func grantClipboard(t *testing.T, tb *browsertest.Tab, origin string) {
	t.Helper()
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(tb.Context(), browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    browser.PermissionSettingGranted, Origin: origin,
		}); err != nil {
			t.Fatalf("Browser.setPermission %s: %v", name, err)
		}
	}
}

// TestBackofficeTOTPSecretCopies (Chromium): the enrolment page shows the
// TOTP secret in groups of four that a line never splits, yet what an
// operator copies (a selection, or the copy button) is the secret as
// authenticator apps and `blindgate totp` take it: no spaces. The copied
// secret's code confirms the enrolment.
func TestBackofficeTOTPSecretCopies(t *testing.T) {
	browserCtx := browsertest.Browser(t)
	f, base := serveBrowser(t, fixtureOpts{noKS: true})
	f.addOperator(t, "nina", operators.RoleViewer, "", false)
	tb := browsertest.NewTab(t, browserCtx, browsertest.WithCSPProbe(), browsertest.FailOnExceptions())
	// A phone's width, where the secret must wrap.
	tb.Do(t, chromedp.EmulateViewport(320, 700))
	grantClipboard(t, tb, base)
	tb.Do(t, browsertest.Navigate(base+"/backoffice/login"), chromedp.WaitVisible(chromedp.ID("bo-username")))
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bo-username"), "nina"), chromedp.SendKeys(chromedp.ID("bo-password"), testPassword+"\r"))
	tb.WaitFor(t, `location.pathname === "/backoffice/enroll" && !document.getElementById("bo-totp-copy").hidden`, 10*time.Second)
	want := f.pendingTOTP(t, "nina")

	// A selection of the whole secret (one click selects it all) copies
	// it without the gaps between the groups.
	sel := browsertest.Eval[string](t, tb, `(function () {
		var r = document.createRange();
		r.selectNodeContents(document.getElementById("bo-totp-secret"));
		var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
		return String(s);
	})()`)
	if sel != want {
		t.Fatalf("a selection of the secret is %q, want %q", sel, want)
	}
	if got := browsertest.Eval[string](t, tb, `getComputedStyle(document.getElementById("bo-totp-secret")).userSelect`); got != "all" {
		t.Errorf("user-select %q: a click does not select the whole secret", got)
	}
	// Shown in groups: apart on screen, each on one line, the lines
	// breaking between groups only, nothing sticking out.
	layout := browsertest.Eval[map[string]any](t, tb, `(function () {
		var el = document.getElementById("bo-totp-secret");
		var groups = Array.from(el.querySelectorAll(".bo-secret-group"));
		var tops = new Set(), split = 0, gap = Infinity;
		groups.forEach(function (g, i) {
			var rects = g.getClientRects();
			if (rects.length !== 1) { split++; }
			tops.add(Math.round(rects[0].top));
			if (i > 0 && Math.round(groups[i - 1].getClientRects()[0].top) === Math.round(rects[0].top)) {
				gap = Math.min(gap, rects[0].left - groups[i - 1].getClientRects()[0].right);
			}
		});
		return {groups: groups.length, split: split, lines: tops.size, gap: gap, overflow: el.scrollWidth > el.clientWidth};
	})()`)
	if layout["groups"].(float64) != 8 || layout["split"].(float64) != 0 || layout["lines"].(float64) < 2 || layout["gap"].(float64) < 4 || layout["overflow"].(bool) {
		t.Errorf("secret layout at 320 px: %v (want 8 groups, none split, 2+ lines, a visible gap, no overflow)", layout)
	}

	// The copy button copies the same.
	tb.Do(t, chromedp.Click(chromedp.ID("bo-totp-copy")))
	tb.WaitFor(t, `document.getElementById("bo-totp-copied").textContent !== ""`, 5*time.Second)
	if got := browsertest.Eval[string](t, tb, `navigator.clipboard.readText()`); got != want {
		t.Fatalf("the copy button copied %q, want %q", got, want)
	}
	// What was copied works as the secret (`blindgate totp -secret <it>`
	// computes the code this way).
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bo-code"), f.codeAt(t, sel, f.clock.Now())+"\r"))
	tb.WaitFor(t, `location.pathname === "/backoffice/tokens"`, 10*time.Second)
	tb.NoCSPViolations(t)
}

// TestBackofficeAuditReasonsWrap (Chromium): a long reason in the audit
// view wraps between words (after a space or a hyphen), never inside one
// that fits on a line, and a word too long for its column wraps inside the
// column rather than widening the table past the page.
func TestBackofficeAuditReasonsWrap(t *testing.T) {
	browserCtx := browsertest.Browser(t)
	f, base := serveBrowser(t, fixtureOpts{reveals: 5})
	rita := f.addRevealer(t, "rita", "")
	f.addOperator(t, "adam", operators.RoleAdmin, "", true)
	long := "Chargeback dispute opened by the cardholder's bank for order " + testRef +
		": the customer says the parcel never arrived and asks for the card used, so that the issuer can match the authorisation and the refund."
	unbroken := "see https://support.example/tickets/" + strings.Repeat("a1b2c3d4", 12)
	for _, reason := range []string{long, unbroken} {
		if r := rita.reveal(t, f.tokA.ID, reason); r.status != 200 {
			t.Fatalf("reveal: %d", r.status)
		}
	}
	tb := browsertest.NewTab(t, browserCtx, browsertest.WithCSPProbe(), browsertest.FailOnExceptions())
	tb.Do(t, chromedp.EmulateViewport(1280, 860))
	tb.Do(t, browsertest.Navigate(base+"/backoffice/login"), chromedp.WaitVisible(chromedp.ID("bo-username")))
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bo-username"), "adam"), chromedp.SendKeys(chromedp.ID("bo-password"), testPassword),
		chromedp.SendKeys(chromedp.ID("bo-code"), f.code(t, "adam")+"\r"))
	tb.WaitFor(t, `location.pathname === "/backoffice/tokens"`, 10*time.Second)
	tb.Do(t, browsertest.Navigate(base+"/backoffice/audit?actor=rita"), chromedp.WaitVisible(chromedp.ID("bo-audit")))

	measure := func(reason string) map[string]any {
		t.Helper()
		b, _ := json.Marshal(reason)
		return browsertest.Eval[map[string]any](t, tb, `(function (reason) {
			var cell = Array.from(document.querySelectorAll("#bo-audit td.bo-reason")).find(function (td) { return td.textContent === reason; });
			if (!cell) { return {found: false}; }
			// The places a line may break: after a space or a hyphen.
			var text = cell.firstChild, split = [], tops = new Set();
			Array.from(reason.matchAll(/[^ -]+-?/g)).forEach(function (m) {
				var r = document.createRange();
				r.setStart(text, m.index); r.setEnd(text, m.index + m[0].length);
				var rects = Array.from(r.getClientRects()).filter(function (x) { return x.width > 0; });
				rects.forEach(function (x) { tops.add(Math.round(x.top)); });
				if (rects.length > 1) { split.push(m[0]); }
			});
			var table = document.getElementById("bo-audit"), panel = table.parentElement;
			var inner = panel.getBoundingClientRect().right - parseFloat(getComputedStyle(panel).paddingRight);
			return {found: true, split: split, lines: tops.size, width: cell.getBoundingClientRect().width,
				overflow: table.getBoundingClientRect().right > inner + 1};
		})(`+string(b)+`)`)
	}
	m := measure(long)
	if !m["found"].(bool) {
		t.Fatal("the long reason is not in the audit view")
	}
	if n := len(m["split"].([]any)); n != 0 || m["lines"].(float64) < 2 || m["overflow"].(bool) {
		t.Errorf("long reason: %v (want several lines, no word split, no overflow)", m)
	}
	m = measure(unbroken)
	if !m["found"].(bool) || m["overflow"].(bool) || m["lines"].(float64) < 2 {
		t.Errorf("unbroken reason: %v (want it wrapped inside its column)", m)
	}
	if n := len(m["split"].([]any)); n != 1 {
		t.Errorf("unbroken reason: %v (want only the over-long word broken)", m)
	}
	tb.NoCSPViolations(t)
}

// pendingTOTP is the TOTP secret name is enrolling, as the store keeps it.
func (f *fixture) pendingTOTP(t *testing.T, name string) string {
	t.Helper()
	op, err := f.ops.Get(context.Background(), f.operators[name].ID)
	if err != nil || op.TOTPPending == "" {
		t.Fatalf("no pending TOTP secret for %s: %v", name, err)
	}
	return op.TOTPPending
}
