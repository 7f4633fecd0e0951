package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/blindgate/blindgate/internal/browsertest"
)

// merchantPage is the merchant's own page, served by this process on
// http://localhost:<port>: another origin (and site) than the gateway's
// http://127.0.0.1:<port>, as a real shop is. It loads the gateway's
// /embed.js with Subresource Integrity, mounts the checkout for the session
// in its URL (?session=cs_...) and records, for the test to read, the token
// the embed resolves with and every message the window receives.
type merchantPage struct {
	Origin string

	mu           sync.Mutex
	gateway, sri string
}

var merchantPageHTML = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>E2E merchant</title>
<script src="{{.Gateway}}/embed.js" integrity="{{.SRI}}" crossorigin="anonymous"></script>
</head><body>
<h1>E2E merchant</h1>
<div id="checkout"></div>
<p>Token: <output id="token"></output></p>
<p>Error: <output id="error"></output></p>
<script>
window.__bg = { token: "", error: "", messages: [] };
window.addEventListener("message", function (ev) {
  window.__bg.messages.push({ origin: ev.origin, fromFrame: ev.source === (document.querySelector("#checkout iframe") || {}).contentWindow, data: ev.data });
});
var sid = new URLSearchParams(location.search).get("session");
Blindgate.mount("#checkout", { session: sid }).then(function (t) {
  window.__bg.token = t;
  document.getElementById("token").textContent = t;
}, function (e) {
  window.__bg.error = String(e && e.message || e);
  document.getElementById("error").textContent = window.__bg.error;
});
</script>
</body></html>`))

func newMerchantPage(t *testing.T) *merchantPage {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &merchantPage{Origin: fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		data := map[string]string{"Gateway": p.gateway, "SRI": p.sri}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = merchantPageHTML.Execute(w, data)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

func (p *merchantPage) setGateway(gateway, sri string) {
	p.mu.Lock()
	p.gateway, p.sri = gateway, sri
	p.mu.Unlock()
}

// pageMessage is one message the merchant page's window received.
type pageMessage struct {
	Origin    string         `json:"origin"`
	FromFrame bool           `json:"fromFrame"`
	Data      map[string]any `json:"data"`
}

// pageState is what the merchant page recorded.
type pageState struct {
	Token    string        `json:"token"`
	Error    string        `json:"error"`
	Messages []pageMessage `json:"messages"`
}

// checkoutFrame opens the merchant page for session sid in tab and attaches
// to the checkout iframe, which Chromium runs as a target of its own (it is
// cross-site), once its form is ready.
func (s *stack) checkoutFrame(t *testing.T, tab context.Context, sid string) context.Context {
	t.Helper()
	run(t, tab, 30*time.Second, browsertest.Navigate(s.Page.Origin+"/?session="+sid))
	frame := attachFrame(t, tab, s.GatewayURL+"/checkout/"+sid)
	run(t, frame, 30*time.Second, chromedp.WaitEnabled(chromedp.ID("bg-number")))
	return frame
}

// typeCard types c into the checkout form and submits it, as a shopper does.
func typeCard(t *testing.T, frame context.Context, c testCard) {
	t.Helper()
	cvc := "123"
	if c.Brand == "amex" {
		cvc = "1234"
	}
	exp := fmt.Sprintf("12%02d", expYear()%100)
	// Ready means the script enabled the fields and the frame is laid out
	// (focus fails on a node without a box, e.g. while the frame loads).
	run(t, frame, 60*time.Second,
		chromedp.Poll[chromedp.Void](`document.readyState === "complete" && document.documentElement.classList.contains("bg-ready")`),
		chromedp.WaitEnabled(chromedp.ID("bg-number")),
		chromedp.WaitVisible(chromedp.ID("bg-number")),
	)
	// On a loaded machine a keystroke can race the field's reformatting (the
	// expiry's "/", the number's spaces); check what the fields hold and type
	// again rather than submit a card the page would refuse.
	typed := fmt.Sprintf(`document.getElementById("bg-number").value.replace(/\s/g, "") === %q &&
		document.getElementById("bg-exp").value.replace(/\D/g, "") === %q &&
		document.getElementById("bg-cvc").value === %q`, c.PAN, exp, cvc)
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			clear := `["bg-number", "bg-exp", "bg-cvc", "bg-name"].forEach(function (id) {
				var e = document.getElementById(id); e.value = ""; e.dispatchEvent(new Event("input", {bubbles: true}));
			}), true`
			ctx, cancel := context.WithTimeout(frame, 10*time.Second)
			_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](clear))
			cancel()
			if err != nil {
				t.Fatalf("clear the checkout fields: %v", err)
			}
		}
		run(t, frame, 60*time.Second,
			chromedp.SendKeys(chromedp.ID("bg-number"), c.PAN),
			chromedp.SendKeys(chromedp.ID("bg-exp"), exp),
			chromedp.SendKeys(chromedp.ID("bg-cvc"), cvc),
			chromedp.SendKeys(chromedp.ID("bg-name"), "E2E Shopper"),
		)
		ctx, cancel := context.WithTimeout(frame, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](typed))
		cancel()
		if err == nil && ok {
			break
		}
		if attempt == 3 {
			t.Fatalf("the checkout fields do not hold the %s card after 3 attempts (%v)", c.Brand, err)
		}
		t.Logf("retyping the %s card (attempt %d)", c.Brand, attempt+1)
	}
	run(t, frame, 60*time.Second, chromedp.Click(chromedp.ID("bg-submit")))
}

// pageResult waits until the merchant page got a token or an error.
func pageResult(t *testing.T, tab context.Context) pageState {
	t.Helper()
	// Generous: on CI the suite shares two cores with the other packages' tests.
	ctx, cancel := context.WithTimeout(tab, 90*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!(window.__bg && (window.__bg.token || window.__bg.error))`,
		chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Fatalf("merchant page got no token: %v", err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.__bg)`))
	if err != nil {
		t.Fatal(err)
	}
	var st pageState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// statusOf waits for the checkout form's status region to show an outcome of
// kind ("error", "success") and returns its text.
func statusOf(t *testing.T, frame context.Context, kind string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(frame, 30*time.Second)
	defer cancel()
	js := fmt.Sprintf(`(function () { var s = document.getElementById("bg-status"); return s && s.dataset.kind === %q ? s.textContent : ""; })()`, kind)
	text, err := chromedp.Run(ctx, chromedp.Poll[string](js, chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		cur, _ := chromedp.Run(frame, chromedp.Evaluate[string](`(document.getElementById("bg-status") || {}).textContent || ""`))
		t.Fatalf("#bg-status never showed a %q outcome (now %q): %v", kind, cur, err)
	}
	return strings.TrimSpace(text)
}

// run runs browser actions within d, failing t on error.
func run(t *testing.T, ctx context.Context, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// attachFrame attaches to the iframe target whose URL starts with prefix.
func attachFrame(t *testing.T, parent context.Context, prefix string) context.Context {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
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
	t.Fatalf("no checkout iframe at %s", prefix)
	return nil
}

// evalString evaluates js in the tab or frame of ctx.
func evalString(ctx context.Context, js string) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](js))
}

// pollString waits until js is truthy (a non-empty string) and returns it.
func pollString(ctx context.Context, js string) (string, error) {
	return chromedp.Run(ctx, chromedp.Poll[string](js, chromedp.WithPollingInterval(100*time.Millisecond)))
}
