package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/blindgate/blindgate/internal/browsertest"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/passkeys"
)

// screenshotDir is where BLINDGATE_SCREENSHOTS=1 writes the README's images.
const screenshotDir = "../../docs/screenshots"

// TestDemoPayInBrowser is the README's first-run promise: the demo starts
// with no Redis and no Docker, a shopper pays with a test card in the shop's
// page (real Chromium, checkout in a cross-origin iframe), and the shop shows
// the masked card it got back through the merchant API.
func TestDemoPayInBrowser(t *testing.T) {
	testenv.SkipShort(t, "browser test")
	browser := browsertest.Browser(t)
	ctx, cancel := context.WithCancel(context.Background())
	dc := demoConfig{
		dir:      t.TempDir(),
		ksAddr:   fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		gwAddr:   fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		shopAddr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		logLevel: "error",
	}
	if os.Getenv(browsertest.ScreenshotEnv) == "1" {
		// The README's pictures show the shop page as a user sees it, with
		// the URLs it names: the demo's default ports.
		dc.ksAddr, dc.gwAddr, dc.shopAddr = "127.0.0.1:8443", "127.0.0.1:8080", "127.0.0.1:8081"
	}
	d, err := startDemo(ctx, dc, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := d.wait(); err != nil {
			t.Errorf("demo stopped with: %v", err)
		}
	})
	var welcome strings.Builder
	d.printWelcome(&welcome)
	for _, want := range []string{d.shopURL, d.backofficeURL + "/backoffice/login", "revealer", "TOTP secret",
		"go run ./cmd/keyservice passkeys approve -passkeys " + filepath.Join(dc.dir, "passkeys.json") + " -audit-log " + filepath.Join(dc.dir, "keyservice-audit.log") + " <fingerprint>"} {
		if !strings.Contains(welcome.String(), want) {
			t.Fatalf("welcome text lacks %q:\n%s", want, welcome.String())
		}
	}
	if !strings.HasPrefix(d.shopURL, "http://localhost:") || !strings.HasPrefix(d.gatewayURL, "http://127.0.0.1:") {
		t.Fatalf("shop %s and gateway %s must be different origins", d.shopURL, d.gatewayURL)
	}

	// The shop waits on the demo's gateway and key service: allow more than
	// the default per step.
	tab := browsertest.NewTab(t, browser, browsertest.WithTimeout(30*time.Second))
	tab.Do(t, browsertest.Navigate(d.shopURL), chromedp.WaitVisible(chromedp.ID("pay")), chromedp.Click(chromedp.ID("pay")))

	frame := browsertest.AttachFrame(t, tab, d.gatewayURL+"/checkout/")
	frame.Do(t, chromedp.WaitEnabled(chromedp.ID("bg-number")))
	// "Pay with card" leaves the shopper in the card number, and the button
	// names the shop's amount.
	frame.WaitFor(t, `document.activeElement && document.activeElement.id === "bg-number"`, 15*time.Second)
	if b := browsertest.Eval[string](t, frame, `document.getElementById("bg-submit").textContent`); b != "Pay €25.00" {
		t.Errorf("the checkout's button says %q, want Pay €25.00", b)
	}
	frame.Do(t,
		chromedp.SendKeys(chromedp.ID("bg-number"), "4242424242424242"),
		chromedp.SendKeys(chromedp.ID("bg-exp"), "12"+fmt.Sprint(time.Now().Year()%100+3)),
		chromedp.SendKeys(chromedp.ID("bg-cvc"), "123"),
		chromedp.SendKeys(chromedp.ID("bg-name"), "Demo Shopper"),
	)
	tab.Screenshot(t, filepath.Join(screenshotDir, "demo-shop-checkout.png"))
	frame.Do(t, chromedp.Click(chromedp.ID("bg-submit")))
	tab.Do(t, chromedp.WaitVisible(chromedp.ID("result")))
	masked := browsertest.Run(t, tab, chromedp.Text(chromedp.ID("masked")))
	token := browsertest.Run(t, tab, chromedp.Text(chromedp.ID("token")))
	tab.Screenshot(t, filepath.Join(screenshotDir, "demo-shop-paid.png"))
	if !strings.HasPrefix(token, "tok_") || masked != "visa •••• 4242" {
		t.Fatalf("shop shows token %q, card %q", token, masked)
	}
	// The merchant API answers for that token with the masked card only.
	req, _ := http.NewRequest(http.MethodGet, d.gatewayURL+"/v1/tokens/"+token, nil)
	req.Header.Set("Authorization", "Bearer "+d.state.SecretKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(body), "4242424242424242") || !strings.Contains(string(body), `"last4":"4242"`) {
		t.Fatalf("merchant API: %d %s", resp.StatusCode, body)
	}

	// The printed revealer logs in (password + TOTP) at the back office's
	// localhost address, enrols a passkey (a DevTools virtual
	// authenticator), has it approved in the key zone as the welcome text
	// says, finds the card by its token and reveals it with a reason: the
	// second half of the README's demo.
	var rev demoOperator
	for _, o := range d.state.Operators {
		if o.Role == "revealer" {
			rev = o
		}
	}
	// The demo confirmed enrolment with the previous step's code; the
	// current one logs in, the next one (within the accepted skew)
	// re-confirms for the passkey enrolment.
	code := func(at time.Time) string {
		c, err := totp.GenerateCode(rev.TOTPSecret, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	now := time.Now()
	bo := browsertest.NewTab(t, browser, browsertest.WithTimeout(30*time.Second))
	bo.VirtualAuthenticator(t)
	bo.Do(t, browsertest.Navigate(d.backofficeURL+"/backoffice/login"), chromedp.WaitVisible(chromedp.ID("bo-username")),
		chromedp.SendKeys(chromedp.ID("bo-username"), rev.Username),
		chromedp.SendKeys(chromedp.ID("bo-password"), rev.Password),
		chromedp.SendKeys(chromedp.ID("bo-code"), code(now)+"\r"))
	bo.WaitFor(t, `location.pathname === "/backoffice/tokens"`, 15*time.Second)
	bo.Do(t, browsertest.Navigate(d.backofficeURL+"/backoffice/passkeys"), chromedp.WaitVisible(chromedp.ID("bo-pk-password")),
		chromedp.SendKeys(chromedp.ID("bo-pk-password"), rev.Password),
		chromedp.SendKeys(chromedp.ID("bo-pk-code"), code(now.Add(30*time.Second))),
		chromedp.Click(chromedp.ID("bo-passkey-btn")))
	bo.WaitFor(t, `!document.getElementById("bo-passkey-result").hidden || !document.getElementById("bo-passkey-error").hidden`, 15*time.Second)
	fp := browsertest.Eval[string](t, bo, `document.getElementById("bo-pk-fingerprint").textContent`)
	if fp == "" {
		t.Fatalf("enrolment: %s", browsertest.Eval[string](t, bo, `document.getElementById("bo-passkey-error").textContent`))
	}
	// The key-zone admin's `keyservice passkeys approve <fingerprint>`.
	reg, err := passkeys.Open(filepath.Join(dc.dir, "passkeys.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Approve(fp, "demo-test", time.Now()); err != nil {
		t.Fatalf("approve %s: %v", fp, err)
	}
	bo.Do(t, browsertest.Navigate(d.backofficeURL+"/backoffice/tokens/"+token), chromedp.WaitVisible(chromedp.ID("bo-reason")),
		chromedp.SendKeys(chromedp.ID("bo-reason"), "Demo: customer asked"), chromedp.Click(chromedp.ID("bo-reveal-btn")))
	bo.WaitFor(t, `document.getElementById("bo-reveal").dataset.state === "shown" || !document.getElementById("bo-reveal-error").hidden`, 15*time.Second)
	if got := strings.ReplaceAll(browsertest.Eval[string](t, bo, `document.getElementById("bo-pan").textContent`), " ", ""); got != "4242424242424242" {
		t.Fatalf("revealed %q (%s)", got, browsertest.Eval[string](t, bo, `document.getElementById("bo-reveal-error").textContent`))
	}
}
