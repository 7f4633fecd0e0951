package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/internal/pagewatch"
	"github.com/blindgate/blindgate/internal/testenv"
)

// startTestDemo runs the demo (key service, gateway, shop) on free loopback
// ports until the test ends: a real gateway app, as a deployment runs it.
func startTestDemo(t *testing.T) *runningDemo {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := startDemo(ctx, demoConfig{
		dir:      t.TempDir(),
		ksAddr:   fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		gwAddr:   fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		shopAddr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		logLevel: "error",
	}, io.Discard)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := d.wait(); err != nil {
			t.Errorf("demo stopped with: %v", err)
		}
	})
	return d
}

// tamperer is what stands between the monitor and the gateway in these
// tests, as a compromised CDN, proxy or deploy would: it passes everything
// through and applies one change to the answers of one path.
type tamperer struct {
	mu     sync.Mutex
	path   string // a path prefix: "/checkout/", "/backoffice/login", "/embed.js"...
	body   func(string) string
	header func(http.Header)
}

func (tp *tamperer) set(path string, body func(string) string, header func(http.Header)) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.path, tp.body, tp.header = path, body, header
}

func (tp *tamperer) modify(resp *http.Response) error {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.path == "" || !strings.HasPrefix(resp.Request.URL.Path, tp.path) || resp.Request.Method != http.MethodGet {
		return nil
	}
	if tp.header != nil {
		tp.header(resp.Header)
	}
	if tp.body != nil {
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		nb := tp.body(string(b))
		resp.Body = io.NopCloser(strings.NewReader(nb))
		resp.ContentLength = int64(len(nb))
		resp.Header.Set("Content-Length", strconv.Itoa(len(nb)))
	}
	return nil
}

// TestMonitorPages is PCI DSS 11.6.1 against a running gateway: the pages
// as served pass; a script added, a changed hash, a weakened CSP, a changed
// back-office page or embed script each fail with the difference spelled
// out, and so does a gateway that no longer matches a pinned inventory.
func TestMonitorPages(t *testing.T) {
	d := startTestDemo(t)
	keyFile := filepath.Join(t.TempDir(), "merchant.key")
	if err := os.WriteFile(keyFile, []byte(d.state.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw, err := url.Parse(d.gatewayURL)
	if err != nil {
		t.Fatal(err)
	}
	tp := &tamperer{}
	rp := httputil.NewSingleHostReverseProxy(gw)
	rp.ModifyResponse = tp.modify
	proxy := httptest.NewServer(rp)
	t.Cleanup(proxy.Close)
	withSession := []string{"-merchant-key", "file:" + keyFile, "-origin", d.shopURL}

	a, err := checkout.NewAssets()
	if err != nil {
		t.Fatal(err)
	}
	checkoutJS := checkout.DefaultAssetBase + checkout.ScriptCheckout
	evil := "/* skimmer */"

	t.Run("ok/as-served", func(t *testing.T) {
		out, err := runCLI(t, append([]string{"monitor-pages", "-url", d.gatewayURL}, withSession...)...)
		if err != nil || !strings.Contains(out, "ok: checkout page, back-office login, /embed.js as inventoried") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("ok/open-session-url", func(t *testing.T) {
		page := openSession(t, d)
		out, err := runCLI(t, "monitor-pages", "-checkout-url", page, "-origin", d.shopURL)
		if err != nil || !strings.HasPrefix(out, "ok: ") {
			t.Fatalf("%v\n%s", err, out)
		}
	})

	tests := []struct {
		name   string
		path   string
		body   func(string) string
		header func(http.Header)
		want   []string // every difference line, in order
	}{
		{name: "differs/script-added", path: "/checkout/",
			body: func(s string) string {
				return strings.Replace(s, "</head>", `<script src="https://cdn.evil.example/skim.js"></script></head>`, 1)
			},
			want: []string{"checkout page (" + proxy.URL + "/checkout/cs_…): script added: https://cdn.evil.example/skim.js (integrity none)"}},
		{name: "differs/inline-script-added", path: "/checkout/",
			body: func(s string) string { return strings.Replace(s, "</body>", "<script>"+evil+"</script></body>", 1) },
			want: []string{"checkout page (" + proxy.URL + "/checkout/cs_…): inline script added (13 bytes, sha256 "}},
		{name: "differs/script-hash-changed", path: "/",
			// The script's bytes and the page's integrity attribute changed
			// together, so a browser would run it.
			body: func(s string) string {
				if strings.Contains(s, "BEGIN-CODES") { // checkout.js
					return s + evil
				}
				// html/template writes the attribute with entities ("&#43;").
				tag := regexp.MustCompile(`src="` + regexp.QuoteMeta(checkoutJS) + `" integrity="[^"]*"`)
				return tag.ReplaceAllLiteralString(s, `src="`+checkoutJS+`" integrity="`+pagewatch.SRI([]byte(mustAsset(t, a, checkout.ScriptCheckout)+evil))+`"`)
			},
			want: []string{
				"checkout page (" + proxy.URL + "/checkout/cs_…): script " + checkoutJS + ": integrity attribute " + pagewatch.SRI([]byte(mustAsset(t, a, checkout.ScriptCheckout)+evil)) + ", inventory " + a.SRI(checkout.ScriptCheckout),
				"checkout page (" + proxy.URL + "/checkout/cs_…): script " + checkoutJS + ": served bytes are " + pagewatch.SRI([]byte(mustAsset(t, a, checkout.ScriptCheckout)+evil)),
			}},
		{name: "differs/csp-weakened", path: "/checkout/",
			header: func(h http.Header) {
				h.Set("Content-Security-Policy", strings.Replace(h.Get("Content-Security-Policy"), "script-src 'self'", "script-src 'self' 'unsafe-inline' https://cdn.evil.example", 1))
			},
			want: []string{"checkout page (" + proxy.URL + "/checkout/cs_…): Content-Security-Policy: script-src is \"'self' 'unsafe-inline' https://cdn.evil.example\", inventory \"'self'\""}},
		{name: "differs/trusted-types-dropped", path: "/checkout/",
			header: func(h http.Header) {
				h.Set("Content-Security-Policy", strings.Replace(h.Get("Content-Security-Policy"), "; require-trusted-types-for 'script'; trusted-types 'none'", "", 1))
			},
			want: []string{
				"checkout page (" + proxy.URL + "/checkout/cs_…): Content-Security-Policy: directive require-trusted-types-for removed (inventory: \"'script'\")",
				"checkout page (" + proxy.URL + "/checkout/cs_…): Content-Security-Policy: directive trusted-types removed (inventory: \"'none'\")",
			}},
		{name: "differs/framed-by-another-origin", path: "/checkout/",
			header: func(h http.Header) {
				h.Set("Content-Security-Policy", strings.Replace(h.Get("Content-Security-Policy"), "frame-ancestors "+d.shopURL, "frame-ancestors https://evil.example", 1))
			},
			want: []string{"checkout page (" + proxy.URL + "/checkout/cs_…): Content-Security-Policy: frame-ancestors is \"https://evil.example\", the session's origins are \"" + d.shopURL + "\""}},
		{name: "differs/referrer-policy-and-permissions-policy", path: "/checkout/",
			header: func(h http.Header) {
				h.Set("Referrer-Policy", "unsafe-url")
				h.Set("Permissions-Policy", "payment=*")
			},
			want: []string{
				"checkout page (" + proxy.URL + "/checkout/cs_…): header Referrer-Policy is \"unsafe-url\", inventory \"no-referrer\"",
				"checkout page (" + proxy.URL + "/checkout/cs_…): header Permissions-Policy added: \"payment=*\"",
			}},
		{name: "differs/backoffice-script-added", path: "/backoffice/login",
			body: func(s string) string {
				return strings.Replace(s, "</head>", `<script src="/backoffice/assets/keylogger.js"></script></head>`, 1)
			},
			want: []string{"back-office login (" + proxy.URL + "/backoffice/login): script added: /backoffice/assets/keylogger.js (integrity none)"}},
		{name: "differs/embed-script-changed", path: "/embed.js",
			body: func(s string) string { return s + evil },
			want: []string{"/embed.js (" + proxy.URL + "/embed.js): served bytes are " + pagewatch.SRI([]byte(mustAsset(t, a, checkout.ScriptEmbed)+evil))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp.set(tc.path, tc.body, tc.header)
			defer tp.set("", nil, nil)
			out, err := runCLI(t, append([]string{"monitor-pages", "-url", proxy.URL}, withSession...)...)
			if !errors.Is(err, errPagesChanged) {
				t.Fatalf("err %v, want the pages to differ\n%s", err, out)
			}
			assertDifferences(t, out, tc.want)
		})
	}

	t.Run("differs/pinned-inventory", func(t *testing.T) {
		// A deployment pins the inventory it reviewed; the gateway then
		// serves another i18n.js than the pinned one.
		out, err := runCLI(t, "monitor-pages", "-url", d.gatewayURL, "-print-inventory")
		if err != nil {
			t.Fatal(err)
		}
		pinned := filepath.Join(t.TempDir(), "inventory.json")
		if err := os.WriteFile(pinned, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI(t, append([]string{"monitor-pages", "-url", d.gatewayURL, "-inventory", pinned}, withSession...)...); err != nil {
			t.Fatalf("the printed inventory does not pass: %v\n%s", err, out)
		}
		old := pagewatch.SRI([]byte("the reviewed i18n.js"))
		if err := os.WriteFile(pinned, []byte(strings.Replace(out, a.SRI(checkout.ScriptI18n), old, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err = runCLI(t, append([]string{"monitor-pages", "-url", d.gatewayURL, "-inventory", pinned}, withSession...)...)
		if !errors.Is(err, errPagesChanged) {
			t.Fatalf("err %v, want the pages to differ\n%s", err, out)
		}
		i18n := checkout.DefaultAssetBase + checkout.ScriptI18n
		assertDifferences(t, out, []string{
			"checkout page (" + d.gatewayURL + "/checkout/cs_…): script " + i18n + ": integrity attribute " + a.SRI(checkout.ScriptI18n) + ", inventory " + old,
			"checkout page (" + d.gatewayURL + "/checkout/cs_…): script " + i18n + ": served bytes are " + a.SRI(checkout.ScriptI18n),
		})
	})

	t.Run("differs/once-posts-the-webhook", func(t *testing.T) {
		// Run once from cron: the alarm reaches the webhook too.
		got := make(chan alarm, 1)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var a alarm
			if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
				t.Errorf("webhook body: %v", err)
			}
			got <- a
		}))
		defer hook.Close()
		tp.set("/embed.js", func(s string) string { return s + evil }, nil)
		defer tp.set("", nil, nil)
		out, err := runCLI(t, append([]string{"monitor-pages", "-url", proxy.URL, "-webhook", hook.URL}, withSession...)...)
		if !errors.Is(err, errPagesChanged) {
			t.Fatalf("err %v\n%s", err, out)
		}
		select {
		case a := <-got:
			if a.Event != "payment_pages.changed" || len(a.Differences) != 1 || a.Differences[0].Page != "/embed.js" {
				t.Fatalf("alarm %+v", a)
			}
		default:
			t.Fatal("no webhook POST before the command returned")
		}
	})
	t.Run("refused/no-session", func(t *testing.T) {
		out, err := runCLI(t, "monitor-pages", "-url", d.gatewayURL)
		if err == nil || errors.Is(err, errPagesChanged) || !strings.Contains(err.Error(), "-checkout-url") {
			t.Fatalf("err %v\n%s", err, out)
		}
	})
	t.Run("differs/wrong-merchant-key", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.key")
		_ = os.WriteFile(bad, []byte("sk_wrong"), 0o600)
		out, err := runCLI(t, "monitor-pages", "-url", d.gatewayURL, "-merchant-key", "file:"+bad)
		if !errors.Is(err, errPagesChanged) || !strings.Contains(out, "no session to check the page with: opening a session answered 401") {
			t.Fatalf("err %v\n%s", err, out)
		}
	})
}

// TestMonitorPagesWatch: with -every, each check that finds a difference is
// an alarm (ERROR lines and a webhook POST); the watch goes on after it, and
// stops cleanly when told to.
func TestMonitorPagesWatch(t *testing.T) {
	d := startTestDemo(t)
	keyFile := filepath.Join(t.TempDir(), "merchant.key")
	if err := os.WriteFile(keyFile, []byte(d.state.SecretKey), 0o600); err != nil {
		t.Fatal(err)
	}
	gw, _ := url.Parse(d.gatewayURL)
	tp := &tamperer{}
	tp.set("/checkout/", func(s string) string {
		return strings.Replace(s, "</head>", `<script src="https://cdn.evil.example/skim.js"></script></head>`, 1)
	}, nil)
	rp := httputil.NewSingleHostReverseProxy(gw)
	rp.ModifyResponse = tp.modify
	proxy := httptest.NewServer(rp)
	t.Cleanup(proxy.Close)

	alarms := make(chan alarm, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a alarm
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil || r.Method != http.MethodPost {
			t.Errorf("webhook got %s: %v", r.Method, err)
		}
		select {
		case alarms <- a:
		default:
		}
	}))
	t.Cleanup(hook.Close)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"monitor-pages", "-url", proxy.URL, "-merchant-key", "file:" + keyFile, "-origin", d.shopURL,
			"-every", "10ms", "-webhook", hook.URL}, &stdout, &stderr)
	}()
	// Two alarms: the watch raised one and went on to the next check.
	for i := 0; i < 2; i++ {
		select {
		case a := <-alarms:
			if a.Event != "payment_pages.changed" || a.Requirement != "PCI DSS 11.6.1" || a.Gateway != proxy.URL || len(a.Differences) != 1 ||
				a.Differences[0].Page != "checkout page" || a.Differences[0].What != "script added: https://cdn.evil.example/skim.js (integrity none)" {
				t.Fatalf("alarm %+v", a)
			}
		case err := <-done:
			t.Fatalf("the watch stopped: %v\n%s", err, stderr.String())
		case <-time.After(time.Minute): // a hang guard, not a timing assertion
			t.Fatal("no alarm")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("the watch ended with %v", err)
	}
	if !strings.Contains(stderr.String(), "level=ERROR msg=\"ALARM payment page changed (PCI DSS 11.6.1)\" page=\"checkout page\"") {
		t.Fatalf("no alarm line:\n%s", stderr.String())
	}
}

// openSession opens a checkout session for the demo shop with the merchant
// API, as a shop server does, and returns its page URL.
func openSession(t *testing.T, d *runningDemo) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, d.gatewayURL+"/v1/checkout/sessions", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+d.state.SecretKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct{ URL string }
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != http.StatusCreated || s.URL == "" {
		t.Fatalf("open session: %d %v", resp.StatusCode, err)
	}
	return s.URL
}

func mustAsset(t *testing.T, a *checkout.Assets, name string) string {
	t.Helper()
	b, _, ok := a.Asset(name)
	if !ok {
		t.Fatalf("no asset %s", name)
	}
	return string(b)
}

// assertDifferences checks the printed report: its count, and each line
// (a session id, different every run, is written "cs_…" in want; a want
// line may end early, before a hash that varies).
func assertDifferences(t *testing.T, out string, want []string) {
	t.Helper()
	head := fmt.Sprintf("ALARM (PCI DSS 11.6.1): %d difference(s) from the inventory\n", len(want))
	if !strings.HasPrefix(out, head) {
		t.Fatalf("report does not start %q:\n%s", head, out)
	}
	lines := strings.Split(strings.TrimSpace(strings.TrimPrefix(out, head)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d difference lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if pre, rest, ok := strings.Cut(line, "/checkout/cs_"); ok {
			_, after, _ := strings.Cut(rest, ")")
			line = pre + "/checkout/cs_…)" + after
		}
		if !strings.HasPrefix(line, want[i]) {
			t.Errorf("difference %d:\n got %s\nwant %s", i+1, line, want[i])
		}
	}
}
