package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/blindgate/blindgate/internal/browsertest"
)

// newBrowser starts a headless Chromium on the host (where a shopper's
// browser is: outside every container network) for the life of t and
// returns a tab's context. Pages must be loaded from http://127.0.0.1:<port>
// or http://localhost:<port> (published ports): WebCrypto needs a secure
// context, which a container alias is not. If t fails, a screenshot of the
// tab is saved among t's artifacts as <name>.png.
func newBrowser(t *testing.T, name string) context.Context {
	t.Helper()
	ctx := browsertest.Browser(t, chromedp.WindowSize(1280, 900))
	// Registered after Browser's own cleanup, so it runs first (LIFO), while
	// the browser is still up.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		defer scancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Logf("screenshot %s: %v", name, err)
			return
		}
		saveArtifact(t, name+".png", png)
	})
	return ctx
}

// pageText navigates the tab to url and returns the document's text, or the
// navigation error (a refused or unroutable address), within timeout.
func pageText(ctx context.Context, url string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, browsertest.Navigate(url)); err != nil {
		return "", err
	}
	return chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement ? document.documentElement.innerText : ""`))
}
