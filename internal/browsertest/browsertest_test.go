package browsertest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/blindgate/blindgate/internal/browsertest"
)

// pages serves script-only pages under a CSP like the real ones (no inline
// script, no 'unsafe-eval'); /<name>.html loads /<name>.js.
func pages(t *testing.T) *httptest.Server {
	scripts := map[string]string{
		"/plain.js": `document.title = "plain"; console.log("hello from plain");`,
		"/throw.js": `throw new Error("boom");`,
		// A blocked image: the CSP probe must see it.
		"/violate.js": `var i = new Image(); i.src = "http://example.invalid/x.png"; document.body.appendChild(i);`,
		"/late.js":    `setTimeout(function () { window.__late = 42; }, 300);`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; frame-src *")
		switch {
		case r.URL.Path == "/parent.html":
			fmt.Fprintf(w, `<!doctype html><title>parent</title><body><iframe src="%s"></iframe>`, r.URL.Query().Get("frame"))
		case strings.HasSuffix(r.URL.Path, ".html"):
			fmt.Fprintf(w, `<!doctype html><title>x</title><body><p id="msg">hello</p><script src="%s"></script>`, strings.TrimSuffix(r.URL.Path, ".html")+".js")
		default:
			js, ok := scripts[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/javascript")
			fmt.Fprint(w, js)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// recorder keeps the errors a helper reports instead of failing the test, so
// the test can check that a failure is reported.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestBrowser(t *testing.T) {
	browser := browsertest.Browser(t)
	srv := pages(t)

	t.Run("eval-wait-console", func(t *testing.T) {
		tab := browsertest.NewTab(t, browser, browsertest.WithCSPProbe(), browsertest.FailOnExceptions())
		tab.Do(t, browsertest.Navigate(srv.URL+"/plain.html"))
		tab.WaitFor(t, `document.title === "plain"`, 5*time.Second)
		if got := browsertest.Eval[int](t, tab, `Promise.resolve(40 + 2)`); got != 42 {
			t.Errorf("Eval awaited %d, want 42", got)
		}
		if got := browsertest.Run(t, tab, chromedp.Text(chromedp.ID("msg"))); got != "hello" {
			t.Errorf("Run(Text) = %q", got)
		}
		if c := tab.Console(); !slices.ContainsFunc(c, func(l string) bool { return strings.Contains(l, "hello from plain") }) {
			t.Errorf("console = %q", c)
		}
		tab.NoCSPViolations(t)
	})

	t.Run("wait-for-late-value", func(t *testing.T) {
		tab := browsertest.NewTab(t, browser)
		tab.Do(t, browsertest.Navigate(srv.URL+"/late.html"))
		if browsertest.Eval[bool](t, tab, `window.__late === 42`) {
			t.Fatal("value set before the timer fired; the wait below proves nothing")
		}
		tab.WaitFor(t, `window.__late === 42`, 5*time.Second)
	})

	t.Run("csp-probe-sees-violations", func(t *testing.T) {
		tab := browsertest.NewTab(t, browser, browsertest.WithCSPProbe())
		tab.Do(t, browsertest.Navigate(srv.URL+"/violate.html"))
		tab.WaitFor(t, `window.__csp && window.__csp.length > 0`, 5*time.Second)
		rec := &recorder{TB: t}
		tab.NoCSPViolations(rec)
		if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "img-src") {
			t.Errorf("NoCSPViolations reported %q, want one img-src violation", rec.errs)
		}
	})

	rec := &recorder{}
	t.Run("exceptions-fail-at-cleanup", func(t *testing.T) {
		rec.TB = t
		tab := browsertest.NewTab(rec, browser, browsertest.FailOnExceptions())
		tab.Do(t, browsertest.Navigate(srv.URL+"/throw.html"))
		deadline := time.Now().Add(5 * time.Second)
		for len(tab.Exceptions()) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if len(rec.errs) != 0 {
			t.Errorf("reported before cleanup: %q", rec.errs)
		}
	})
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "uncaught exception in the page") || !strings.Contains(rec.errs[0], "boom") {
		t.Errorf("cleanup reported %q, want the uncaught exception", rec.errs)
	}

	t.Run("attach-cross-site-frame", func(t *testing.T) {
		tab := browsertest.NewTab(t, browser)
		frameURL := srv.URL + "/plain.html"
		// localhost and 127.0.0.1 are different sites, so the frame gets a
		// process and a target of its own.
		parent := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/parent.html?frame=" + frameURL
		tab.Do(t, browsertest.Navigate(parent))
		frame := browsertest.AttachFrame(t, tab, frameURL)
		frame.WaitFor(t, `document.title === "plain"`, 5*time.Second)
		if got := browsertest.Eval[string](t, tab, `document.title`); got != "parent" {
			t.Errorf("the tab's title is %q after attaching the frame", got)
		}
	})

	t.Run("screenshot-only-on-request", func(t *testing.T) {
		tab := browsertest.NewTab(t, browser)
		tab.Do(t, browsertest.Navigate(srv.URL+"/plain.html"))
		dir := t.TempDir()
		t.Setenv(browsertest.ScreenshotEnv, "")
		tab.Screenshot(t, filepath.Join(dir, "off.png"))
		if _, err := os.Stat(filepath.Join(dir, "off.png")); !os.IsNotExist(err) {
			t.Errorf("screenshot written without %s=1 (stat: %v)", browsertest.ScreenshotEnv, err)
		}
		t.Setenv(browsertest.ScreenshotEnv, "1")
		path := filepath.Join(dir, "sub", "on.png")
		tab.Screenshot(t, path)
		data, err := os.ReadFile(path)
		if err != nil || !strings.HasPrefix(string(data), "\x89PNG") {
			t.Errorf("screenshot: %v (%d bytes)", err, len(data))
		}
	})
}
