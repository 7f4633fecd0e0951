package web_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/testenv"
)

// screenshotDir is where BLINDGATE_SCREENSHOTS=1 writes the README's images.
const screenshotDir = "../../docs/screenshots"

// boCSPProbe records CSP violations of every page the tab loads.
const boCSPProbe = `document.addEventListener("securitypolicyviolation", function (e) {
  (window.__csp = window.__csp || []).push(e.violatedDirective + " " + e.blockedURI);
});`

type boTab struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string
	logs []string
}

func (tb *boTab) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

func boEval[T any](t *testing.T, tb *boTab, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %.80q: %v", expr, err)
	}
	return v
}

// boWait polls a JS expression from Go (the page's CSP has no
// 'unsafe-eval', so chromedp's Poll, built on new Function, cannot run).
func boWait(t *testing.T, tb *boTab, expr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("Boolean("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error: %v)", expr, err)
		}
		time.Sleep(40 * time.Millisecond)
	}
}

func (tb *boTab) shot(t *testing.T, name string) {
	t.Helper()
	if os.Getenv("BLINDGATE_SCREENSHOTS") != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", filepath.Join(screenshotDir, name))
}

func (tb *boTab) noCSPViolations(t *testing.T) {
	t.Helper()
	if v := boEval[[]string](t, tb, `window.__csp || []`); len(v) > 0 {
		t.Errorf("CSP violations: %v", v)
	}
}

// TestBackofficeBrowser drives real Chromium through login (TOTP code from
// pquerna/otp) -> search -> token detail -> reveal with a reason ->
// automatic hide, then the admin's audit view. The hide delay is 2 s here
// (the page's template knob); production is 60 s.
func TestBackofficeBrowser(t *testing.T) {
	chromium := testenv.ChromiumPath(t)
	f := newBoFix(t, boOpts{reveals: 2, hideAfter: "2"})
	rita := f.addOperator(t, "rita", operators.RoleRevealer, "", true)
	f.addOperator(t, "adam", operators.RoleAdmin, "", true)
	f.addOperator(t, "nina", operators.RoleViewer, boMerchA, false)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = f.srv.App().Listener(ln) }()
	t.Cleanup(func() { _ = f.srv.App().Shutdown() })
	base := "http://" + ln.Addr().String()

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("password-store", "basic"),
	)
	defer cancelAlloc()
	tb := &boTab{}
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			tb.errs = append(tb.errs, ev.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			for _, a := range ev.Args {
				tb.logs = append(tb.logs, string(a.Value)+" "+a.Description)
			}
		}
	}))
	defer cancel()
	tb.ctx = ctx
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: boCSPProbe})
		return err
	})); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tb.do(t, chromedp.EmulateViewport(1280, 860))

	// Login: username, password and the current TOTP code in one form.
	tb.do(t, chromedp.Navigate(base+"/backoffice/login"), chromedp.WaitVisible(chromedp.ID("bo-username")))
	tb.noCSPViolations(t)
	tb.shot(t, "backoffice-login.png")
	tb.do(t,
		chromedp.SendKeys(chromedp.ID("bo-username"), "rita"),
		chromedp.SendKeys(chromedp.ID("bo-password"), boPassword),
		chromedp.SendKeys(chromedp.ID("bo-code"), f.code(t, "rita")+"\r"),
	)
	boWait(t, tb, `location.pathname === "/backoffice/tokens" && document.getElementById("bo-search")`, 10*time.Second)

	// Search by last 4: the two tokens of that card, masked, with brand icons.
	tb.do(t, chromedp.SendKeys(chromedp.ID("f-last4"), "4242"), chromedp.Click(chromedp.ID("bo-search")))
	boWait(t, tb, `location.search.includes("last4=4242") && document.querySelectorAll("#bo-results tbody tr").length === 2`, 10*time.Second)
	boWait(t, tb, `[...document.images].every(function (i) { return i.complete && i.naturalWidth > 0; })`, 5*time.Second)
	if body := boEval[string](t, tb, `document.body.innerText`); strings.Contains(body, boPANShown) || !strings.Contains(body, "42424242 •••• 4242") {
		t.Fatalf("token list is not masked as expected:\n%s", body)
	}
	tb.noCSPViolations(t)
	tb.shot(t, "backoffice-tokens.png")

	// Detail page of the older token.
	tb.do(t, chromedp.Navigate(base+"/backoffice/tokens/"+f.tokA.ID), chromedp.WaitVisible(chromedp.ID("bo-reason")))
	tb.noCSPViolations(t)
	tb.shot(t, "backoffice-token.png")

	// Reveal with a typed reason.
	tb.do(t, chromedp.SendKeys(chromedp.ID("bo-reason"), "Chargeback ticket #4711"), chromedp.Click(chromedp.ID("bo-reveal-btn")))
	boWait(t, tb, `document.getElementById("bo-pan") !== null`, 10*time.Second)
	shownAt := time.Now()
	if got := boEval[string](t, tb, `document.getElementById("bo-pan").textContent`); got != boPANShown {
		t.Fatalf("revealed number %q", got)
	}
	if state := boEval[string](t, tb, `document.getElementById("bo-reveal").dataset.state`); state != "shown" {
		t.Fatalf("reveal state %q", state)
	}
	// Copy guard: the number cannot be selected, so select-all does not take it.
	if sel := boEval[string](t, tb, `document.execCommand("selectAll"), String(window.getSelection())`); strings.Contains(sel, "4242 4242") {
		t.Error("select-all copies the card number")
	}
	boEval[bool](t, tb, `window.getSelection().removeAllRanges(), true`)
	tb.shot(t, "backoffice-revealed.png")
	// The copy button works once.
	if boEval[bool](t, tb, `document.getElementById("bo-copy").disabled`) {
		t.Log("clipboard API unavailable in this browser; copy button stays disabled")
	} else {
		tb.do(t, chromedp.Click(chromedp.ID("bo-copy")))
		boWait(t, tb, `document.getElementById("bo-copy").disabled`, 5*time.Second)
	}

	// Auto-hide: gone from the DOM after the delay, not only from view.
	boWait(t, tb, `document.getElementById("bo-reveal").dataset.state === "hidden"`, 8*time.Second)
	if el := time.Since(shownAt); el < time.Second || el > 6*time.Second {
		t.Errorf("hidden after %s, want about 2 s", el)
	}
	if html := boEval[string](t, tb, `document.documentElement.outerHTML`); strings.Contains(html, boPANShown) || strings.Contains(html, boPAN) {
		t.Fatal("the card number is still in the DOM after hiding")
	}
	if !boEval[bool](t, tb, `document.getElementById("bo-copy").disabled && document.getElementById("bo-hide").disabled`) {
		t.Error("buttons still enabled after hiding")
	}
	tb.noCSPViolations(t)

	// The key service recorded the reveal with the operator and the reason.
	evs := f.kz.events(t, audit.Filter{Event: audit.EventReveal})
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
	tb.do(t, chromedp.Navigate(base+"/backoffice/tokens"), chromedp.WaitVisible(chromedp.CSS(".bo-who button")))
	tb.do(t, chromedp.Click(chromedp.CSS(".bo-who button")))
	boWait(t, tb, `location.pathname === "/backoffice/login" && location.search === "?out=1"`, 10*time.Second)
	tb.do(t,
		chromedp.SendKeys(chromedp.ID("bo-username"), "adam"),
		chromedp.SendKeys(chromedp.ID("bo-password"), boPassword),
		chromedp.SendKeys(chromedp.ID("bo-code"), f.code(t, "adam")+"\r"),
	)
	boWait(t, tb, `location.pathname === "/backoffice/tokens"`, 10*time.Second)
	tb.do(t, chromedp.Navigate(base+"/backoffice/audit"), chromedp.WaitVisible(chromedp.ID("bo-audit")))
	if !boEval[bool](t, tb, `document.querySelector("#bo-chain.bo-chain-ok") !== null && document.querySelectorAll("#bo-audit tr.bo-row-alarm").length >= 1`) {
		t.Fatal("audit page: chain status or alarm highlight missing")
	}
	// The alarm row really is highlighted (a computed colour, not just a class).
	if bg := boEval[string](t, tb, `getComputedStyle(document.querySelector("#bo-audit tr.bo-row-alarm td")).backgroundColor`); bg == "rgba(0, 0, 0, 0)" || bg == "" {
		t.Errorf("alarm row background %q", bg)
	}
	tb.noCSPViolations(t)
	tb.shot(t, "backoffice-audit.png")

	// First login of an operator without a second factor: the QR code (a
	// data: image under the CSP) and the secret, then confirmation.
	tb.do(t, chromedp.Click(chromedp.CSS(".bo-who button")))
	boWait(t, tb, `location.pathname === "/backoffice/login"`, 10*time.Second)
	tb.do(t,
		chromedp.SendKeys(chromedp.ID("bo-username"), "nina"),
		chromedp.SendKeys(chromedp.ID("bo-password"), boPassword+"\r"),
	)
	boWait(t, tb, `location.pathname === "/backoffice/enroll"`, 10*time.Second)
	boWait(t, tb, `document.querySelector("img.bo-qr").complete && document.querySelector("img.bo-qr").naturalWidth === 256`, 5*time.Second)
	tb.noCSPViolations(t)
	tb.shot(t, "backoffice-enroll.png")
	secret := strings.ReplaceAll(boEval[string](t, tb, `document.getElementById("bo-totp-secret").textContent`), " ", "")
	tb.do(t, chromedp.SendKeys(chromedp.ID("bo-code"), f.codeAt(t, secret, f.clock.Now())+"\r"))
	boWait(t, tb, `location.pathname === "/backoffice/tokens" && document.querySelectorAll("#bo-results tbody tr").length === 2`, 10*time.Second)

	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, e := range tb.errs {
		t.Errorf("uncaught exception in the page: %s", e)
	}
	for _, l := range tb.logs {
		if strings.Contains(l, "4242") {
			t.Errorf("the page logged the card number")
		}
	}
}
