// Package browsertest drives a real headless Chromium from package tests: one
// browser per test, tabs that record uncaught exceptions and console output,
// and helpers that turn every browser error into a test failure with a
// bounded wait. It exists so that the checkout, back-office and demo tests
// share one copy of this plumbing and its chromedp pitfalls.
//
// Two pitfalls shape the API. The first chromedp.Do on a new browser, tab or
// frame context binds the browser process or target to the context it gets,
// so NewTab and AttachFrame make that call with the long-lived context and
// only later actions get a timeout. And the pages under test forbid
// 'unsafe-eval', which chromedp.Poll needs (it builds its predicate with new
// Function), so WaitFor polls from Go instead.
package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/blindgate/blindgate/internal/testenv"
)

// DefaultTimeout bounds each Do, Eval, Run and Screenshot call unless the tab
// was opened WithTimeout.
const DefaultTimeout = 20 * time.Second

// ScreenshotEnv names the variable that must be "1" for Screenshot to write
// files: the README's images are refreshed on demand, not by every test run.
const ScreenshotEnv = "BLINDGATE_SCREENSHOTS"

// cspProbe records the page's CSP violations in window.__csp, where
// NoCSPViolations reads them.
const cspProbe = `document.addEventListener("securitypolicyviolation", function (e) {
  (window.__csp = window.__csp || []).push(e.violatedDirective + " " + e.blockedURI);
});`

// Browser starts a headless Chromium for the life of t (a t.Cleanup stops it)
// and returns its context, the parent for NewTab. Without Chromium it skips t
// (fails it under CI), as testenv.ChromiumPath does. extra options
// (chromedp.WindowSize, ...) follow the defaults, so they may override them.
func Browser(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	chromium := testenv.ChromiumPath(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		// Containers often have a tiny /dev/shm; Chromium then crashes tabs.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-sync", true),
		// Straight to the test servers: no system proxy in between.
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("password-store", "basic"),
	}, extra...)...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// This first Do starts the process and ties it to ctx: ctx must live as
	// long as the test, so no timeout here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	return ctx
}

// Tab is one browser target (a tab, or a cross-site iframe from AttachFrame)
// with what it has recorded: uncaught exceptions and console output.
type Tab struct {
	ctx     context.Context
	timeout time.Duration
	probe   bool // the CSP probe runs in every document of this target
	failOn  bool // uncaught exceptions fail the test at cleanup

	mu   sync.Mutex
	errs []string
	logs []string
}

// Option configures NewTab.
type Option func(*Tab)

// WithCSPProbe installs a script in every document the tab loads that records
// CSP violations, for NoCSPViolations. It does not reach cross-site iframes:
// those run in another target.
func WithCSPProbe() Option { return func(tb *Tab) { tb.probe = true } }

// FailOnExceptions makes every uncaught exception of the tab (and of frames
// attached from it) a test error when the test ends.
func FailOnExceptions() Option { return func(tb *Tab) { tb.failOn = true } }

// WithTimeout replaces DefaultTimeout for each call on the tab and on frames
// attached from it.
func WithTimeout(d time.Duration) Option { return func(tb *Tab) { tb.timeout = d } }

// NewTab opens a tab in browser (from Browser) for the life of t.
func NewTab(t testing.TB, browser context.Context, opts ...Option) *Tab {
	t.Helper()
	tb := &Tab{timeout: DefaultTimeout}
	for _, o := range opts {
		o(tb)
	}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithListener(tb.listen))
	t.Cleanup(cancel)
	tb.ctx = ctx
	// The first Do creates the target and binds it to the context it gets,
	// so it gets the long-lived one.
	var first []chromedp.Action[chromedp.Void]
	if tb.probe {
		first = append(first, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspProbe})
			return err
		}))
	}
	if err := chromedp.Do(ctx, first...); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	tb.checkAtCleanup(t, "page")
	return tb
}

// AttachFrame waits up to 15 s for the cross-site iframe whose URL starts
// with urlPrefix and attaches to it: Chromium runs such a frame in its own
// process, as a target of its own, so the parent tab cannot reach into it.
// The frame inherits the tab's timeout and FailOnExceptions; the attachment
// is dropped (the frame stays) when t ends.
func AttachFrame(t testing.TB, tab *Tab, urlPrefix string) *Tab {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		infos, err := chromedp.Targets(tab.ctx)
		if err != nil {
			t.Fatalf("targets: %v", err)
		}
		for _, info := range infos {
			if info.Type != "iframe" || !strings.HasPrefix(info.URL, urlPrefix) {
				continue
			}
			fr := &Tab{timeout: tab.timeout, failOn: tab.failOn}
			ctx, cancel := chromedp.NewContext(tab.ctx, chromedp.WithTargetID(info.TargetID),
				chromedp.WithDetachOnCancel(), chromedp.WithListener(fr.listen))
			t.Cleanup(cancel)
			// As in NewTab: the first Do attaches the target for the life of ctx.
			if err := chromedp.Do(ctx); err != nil {
				t.Fatalf("attach iframe %s: %v", urlPrefix, err)
			}
			fr.ctx = ctx
			fr.checkAtCleanup(t, "iframe")
			return fr
		}
		if time.Now().After(deadline) {
			t.Fatalf("no iframe target for %s", urlPrefix)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (tb *Tab) listen(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg := ev.ExceptionDetails.Text
		if ex := ev.ExceptionDetails.Exception; ex != nil {
			msg += " " + ex.Description
		}
		tb.errs = append(tb.errs, msg)
	case *runtime.EventConsoleAPICalled:
		for _, a := range ev.Args {
			tb.logs = append(tb.logs, string(a.Value)+" "+a.Description)
		}
	}
}

// checkAtCleanup registers the FailOnExceptions check. Cleanups run last in
// first out, so it runs before the target's own cancel.
func (tb *Tab) checkAtCleanup(t testing.TB, what string) {
	if !tb.failOn {
		return
	}
	t.Cleanup(func() {
		for _, e := range tb.Exceptions() {
			t.Errorf("uncaught exception in the %s: %s", what, e)
		}
	})
}

// Context is the tab's chromedp context, for calls this package has no
// helper for. Derive timeouts from it; never cancel it.
func (tb *Tab) Context() context.Context { return tb.ctx }

// Exceptions returns the uncaught exceptions recorded so far.
func (tb *Tab) Exceptions() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.Clone(tb.errs)
}

// Console returns the console output recorded so far, one argument a line.
func (tb *Tab) Console() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.Clone(tb.logs)
}

// Do runs actions in the tab within the tab's timeout; an error fails t.
func (tb *Tab) Do(t testing.TB, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, tb.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// Run runs one action that yields a value (chromedp.Text, ...) within the
// tab's timeout; an error fails t.
func Run[T any](t testing.TB, tab *Tab, action chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

// Eval evaluates expr in the tab, awaiting a promise result, and decodes the
// result into T; an error or exception fails t.
func Eval[T any](t testing.TB, tab *Tab, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %.80q: %v", expr, err)
	}
	return v
}

// WaitFor evaluates Boolean(expr) every 40 ms until it is true, and fails t
// if it is not within the given time. Errors while waiting (a navigation
// in progress, an element not there yet) only count as "not yet".
func (tb *Tab) WaitFor(t testing.TB, expr string, within time.Duration) {
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

// NoCSPViolations reports (with t.Errorf) every CSP violation the current
// document has seen. The tab must have been opened WithCSPProbe: without the
// probe there would be nothing to see and the check would pass vacuously.
func (tb *Tab) NoCSPViolations(t testing.TB) {
	t.Helper()
	if !tb.probe {
		t.Fatal("NoCSPViolations on a tab opened without WithCSPProbe")
	}
	if v := Eval[[]string](t, tb, `window.__csp || []`); len(v) > 0 {
		t.Errorf("CSP violations: %v", v)
	}
}

// Screenshot writes a full-page PNG of the tab to path (creating its
// directory), but only when $BLINDGATE_SCREENSHOTS is "1"; otherwise it does
// nothing.
func (tb *Tab) Screenshot(t testing.TB, path string) {
	t.Helper()
	if os.Getenv(ScreenshotEnv) != "1" {
		return
	}
	png := Run(t, tb, chromedp.FullScreenshot(100))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// Navigate is chromedp.Navigate that tries again when Chromium reports
// net::ERR_NETWORK_CHANGED. The suite starts and stops containers, and each
// one adds or removes a host interface; Chromium aborts a navigation that
// overlaps such a change, as it would for a shopper whose Wi-Fi switched,
// though nothing about the page or the server was wrong.
func Navigate(url string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		var err error
		for try := 0; try < 4; try++ {
			if _, err = chromedp.Navigate(url)(ctx, tg); err == nil || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
				return chromedp.Void{}, err
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
		}
		return chromedp.Void{}, err
	}
}
