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

	"github.com/blindgate/blindgate/internal/testenv"
)

// TestDemoPayInBrowser is the README's first-run promise: the demo starts
// with no Redis and no Docker, a shopper pays with a test card in the shop's
// page (real Chromium, checkout in a cross-origin iframe), and the shop shows
// the masked card it got back through the merchant API.
func TestDemoPayInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	chromium := testenv.ChromiumPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	dc := demoConfig{
		dir:      t.TempDir(),
		ksAddr:   fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		gwAddr:   fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		shopAddr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		logLevel: "error",
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
	for _, want := range []string{d.shopURL, d.gatewayURL + "/backoffice/login", "revealer", "TOTP secret"} {
		if !strings.Contains(welcome.String(), want) {
			t.Fatalf("welcome text lacks %q:\n%s", want, welcome.String())
		}
	}
	if !strings.HasPrefix(d.shopURL, "http://localhost:") || !strings.HasPrefix(d.gatewayURL, "http://127.0.0.1:") {
		t.Fatalf("shop %s and gateway %s must be different origins", d.shopURL, d.gatewayURL)
	}

	actx, acancel := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true))
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	// The first Do starts the browser and binds it to the context it gets: give
	// it the long-lived one, not a per-step timeout.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatal(err)
	}
	run := func(c context.Context, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tc, cancel := context.WithTimeout(c, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(tc, actions...); err != nil {
			t.Fatal(err)
		}
	}
	text := func(c context.Context, id string) string {
		t.Helper()
		tc, cancel := context.WithTimeout(c, 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(tc, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	run(bctx, chromedp.Navigate(d.shopURL), chromedp.WaitVisible(chromedp.ID("pay")), chromedp.Click(chromedp.ID("pay")))

	frame := attachFrame(t, bctx, d.gatewayURL+"/checkout/")
	run(frame, chromedp.WaitEnabled(chromedp.ID("bg-number")))
	shot := func(name string) {
		if os.Getenv("BLINDGATE_SCREENSHOTS") != "1" {
			return
		}
		tc, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		png, err := chromedp.Run(tc, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "screenshots", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(frame,
		chromedp.SendKeys(chromedp.ID("bg-number"), "4242424242424242"),
		chromedp.SendKeys(chromedp.ID("bg-exp"), "12"+fmt.Sprint(time.Now().Year()%100+3)),
		chromedp.SendKeys(chromedp.ID("bg-cvc"), "123"),
		chromedp.SendKeys(chromedp.ID("bg-name"), "Demo Shopper"),
	)
	shot("demo-shop-checkout.png")
	run(frame, chromedp.Click(chromedp.ID("bg-submit")))
	run(bctx, chromedp.WaitVisible(chromedp.ID("result")))
	masked, token := text(bctx, "masked"), text(bctx, "token")
	shot("demo-shop-paid.png")
	if !strings.HasPrefix(token, "tok_") || !strings.Contains(masked, "visa 42424242…4242") {
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
}

// attachFrame attaches to the checkout iframe: Chromium runs a cross-site
// frame as a target of its own.
func attachFrame(t *testing.T, parent context.Context, prefix string) context.Context {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		infos, err := chromedp.Targets(parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range infos {
			if info.Type == "iframe" && strings.HasPrefix(info.URL, prefix) {
				ctx, cancel := chromedp.NewContext(parent, chromedp.WithTargetID(info.TargetID), chromedp.WithDetachOnCancel())
				t.Cleanup(cancel)
				if err := chromedp.Do(ctx); err != nil {
					t.Fatalf("attach iframe: %v", err)
				}
				return ctx
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no checkout iframe under %s", prefix)
	return nil
}
