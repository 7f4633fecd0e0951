package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/gateway/web"
	"github.com/blindgate/blindgate/internal/envflag"
	"github.com/blindgate/blindgate/internal/pagewatch"
	"github.com/blindgate/blindgate/internal/secret"
)

// errPagesChanged is the once-mode verdict when a page differs from the
// inventory (exit status 1, after the differences are printed).
var errPagesChanged = errors.New("the payment pages differ from the inventory")

// monitorConfig is monitor-pages' flags.
type monitorConfig struct {
	base, checkoutURL, merchantKey, origins, inventory, webhook string
	every, timeout                                              time.Duration
	printInventory, insecure                                    bool
}

// monitorCmd is the payment-page change- and tamper-detection of PCI DSS
// 11.6.1: it fetches the live checkout page (and the back office's login
// page, and the merchant embed script) as a shopper's browser would, and
// compares the scripts and security headers with the inventory of this build
// (web.PageInventory) or a pinned copy. Once, it exits 1 on any difference;
// with -every it keeps checking and raises an alarm (ERROR log lines) at each
// check that finds one; either way a webhook, if set, gets each alarm.
func monitorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := envflag.Env("BLINDGATE_MONITOR_")
	var mc monitorConfig
	fs := flag.NewFlagSet("monitor-pages", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&mc.base, "url", env.String("URL", ""), "the gateway's public base URL, e.g. https://pay.example.com (default: -checkout-url's origin)")
	fs.StringVar(&mc.checkoutURL, "checkout-url", env.String("CHECKOUT_URL", ""), "a live checkout page, https://pay.example.com/checkout/cs_... (its session must stay open while watched)")
	fs.StringVar(&mc.merchantKey, "merchant-key", env.String("MERCHANT_KEY", ""), "env:NAME or file:PATH of a merchant's secret key: open a fresh checkout session (1 minute) for each check instead of -checkout-url")
	fs.StringVar(&mc.origins, "origin", env.String("ORIGIN", ""), "the session's allowed origins, comma-separated: the checkout page's frame-ancestors must be exactly these (sessions that -merchant-key opens get them); empty: any plain origins")
	fs.StringVar(&mc.inventory, "inventory", env.String("INVENTORY", ""), "the expected pages, a JSON file as -print-inventory writes it (default: this build's inventory)")
	fs.BoolVar(&mc.printInventory, "print-inventory", false, "print this build's inventory as JSON (with HSTS unless -url is http://) and exit")
	fs.DurationVar(&mc.every, "every", env.Duration("EVERY", 0), "check again at this interval until stopped, alarming at each check that differs (0: check once, exit 1 if anything differs)")
	fs.StringVar(&mc.webhook, "webhook", env.String("WEBHOOK", ""), "also POST each alarm (a check that differs) as JSON to this URL")
	fs.DurationVar(&mc.timeout, "timeout", 10*time.Second, "timeout of each request")
	fs.BoolVar(&mc.insecure, "insecure-skip-verify", false, "development only: do not verify the gateway's TLS certificate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("monitor-pages: unexpected argument %q", fs.Arg(0))
	}
	m, err := newMonitor(mc)
	if err != nil {
		return fmt.Errorf("monitor-pages: %w", err)
	}
	if mc.printInventory {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(m.inv)
	}
	if m.base == nil {
		return errors.New("monitor-pages: -url or -checkout-url is required")
	}
	if mc.checkoutURL == "" && mc.merchantKey == "" {
		return errors.New("monitor-pages: the checkout page needs a session: -checkout-url (an open one) or -merchant-key (a new one for each check)")
	}
	if mc.webhook != "" {
		if u, err := url.Parse(mc.webhook); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("monitor-pages: -webhook %q is not an http(s) URL", mc.webhook)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if mc.every > 0 {
		return m.watch(ctx, mc.every, mc.webhook, log)
	}
	// Once (from cron, a CI job or by hand): the report on standard output,
	// the exit status, and the webhook if set.
	diffs := m.check(ctx)
	if len(diffs) == 0 {
		fmt.Fprintf(stdout, "ok: %s as inventoried\n", m.checked())
		return nil
	}
	fmt.Fprintf(stdout, "ALARM (PCI DSS 11.6.1): %d difference(s) from the inventory\n", len(diffs))
	for _, d := range diffs {
		fmt.Fprintln(stdout, "  "+d.String())
	}
	m.alarm(ctx, mc.webhook, diffs, log)
	return fmt.Errorf("monitor-pages: %w (%d)", errPagesChanged, len(diffs))
}

// monitor holds what every check uses.
type monitor struct {
	inv         checkout.Inventory
	base        *url.URL // the gateway's base URL
	checkoutURL string   // a fixed checkout page, or "" to open sessions
	merchantKey string
	origins     []string
	client      *http.Client // sessions and webhooks; no redirects
	checker     *pagewatch.Checker
	now         func() time.Time
}

func newMonitor(mc monitorConfig) (*monitor, error) {
	m := &monitor{checkoutURL: mc.checkoutURL, now: time.Now}
	raw := mc.base
	if raw == "" && mc.checkoutURL != "" {
		u, err := url.Parse(mc.checkoutURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("-checkout-url %q is not a URL", mc.checkoutURL)
		}
		raw = u.Scheme + "://" + u.Host
	}
	if raw != "" {
		u, err := url.Parse(strings.TrimSuffix(raw, "/"))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("-url %q is not an http(s) base URL", raw)
		}
		m.base = u
	}
	for _, o := range strings.Split(mc.origins, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if !checkout.ValidOrigin(o) {
			return nil, fmt.Errorf("-origin %q is not an origin like https://shop.example", o)
		}
		m.origins = append(m.origins, o)
	}
	if mc.merchantKey != "" {
		if mc.checkoutURL != "" {
			return nil, errors.New("-checkout-url and -merchant-key are two ways to get a session: give one")
		}
		k, err := secret.Resolve(mc.merchantKey)
		if err != nil {
			return nil, fmt.Errorf("-merchant-key: %w", err)
		}
		m.merchantKey = string(k)
	}
	var err error
	if m.inv, err = loadInventory(mc.inventory, m.base == nil || m.base.Scheme == "https"); err != nil {
		return nil, err
	}
	var transport http.RoundTripper
	if mc.insecure {
		transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
	}
	m.checker = pagewatch.NewChecker(transport, mc.timeout)
	m.client = &http.Client{Transport: transport, Timeout: mc.timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return m, nil
}

// loadInventory reads a pinned inventory, or builds this build's: over TLS
// the gateway also sends HSTS.
func loadInventory(path string, tls bool) (checkout.Inventory, error) {
	if path == "" {
		a, err := checkout.NewAssets()
		if err != nil {
			return checkout.Inventory{}, err
		}
		return web.PageInventory(a, tls), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return checkout.Inventory{}, fmt.Errorf("-inventory: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var inv checkout.Inventory
	if err := dec.Decode(&inv); err != nil {
		return checkout.Inventory{}, fmt.Errorf("-inventory %s: %w", path, err)
	}
	if len(inv.Pages) == 0 {
		return checkout.Inventory{}, fmt.Errorf("-inventory %s lists no page", path)
	}
	for i, p := range append(inv.Pages, filePages(inv.Files)...) {
		if p.Name == "" || !strings.HasPrefix(p.Path, "/") {
			return checkout.Inventory{}, fmt.Errorf("-inventory %s: entry %d needs a name and a path starting with /", path, i+1)
		}
	}
	return inv, nil
}

// filePages lets loadInventory check files like pages.
func filePages(files []checkout.Script) []checkout.Page {
	out := make([]checkout.Page, 0, len(files))
	for _, f := range files {
		out = append(out, checkout.Page{Name: f.Src, Path: f.Src})
	}
	return out
}

// checked names what a check covers, for the "ok" line.
func (m *monitor) checked() string {
	var names []string
	for _, p := range m.inv.Pages {
		names = append(names, p.Name)
	}
	for _, f := range m.inv.Files {
		names = append(names, f.Src)
	}
	return strings.Join(names, ", ")
}

// check compares every inventoried page and file with the live gateway.
func (m *monitor) check(ctx context.Context) []pagewatch.Difference {
	var out []pagewatch.Difference
	session := ""
	for _, p := range m.inv.Pages {
		pageURL := m.base.String() + p.Path
		if strings.Contains(p.Path, checkout.SessionPath) {
			if session == "" {
				var err error
				if session, err = m.session(ctx, p.Path); err != nil {
					out = append(out, pagewatch.Difference{Page: p.Name, URL: m.base.String() + p.Path, What: "no session to check the page with: " + err.Error()})
					continue
				}
			}
			pageURL = m.base.String() + strings.ReplaceAll(p.Path, checkout.SessionPath, url.PathEscape(session))
		}
		out = append(out, m.checker.CheckPage(ctx, pagewatch.Page{Inventory: p, URL: pageURL, Origins: m.origins})...)
	}
	for _, f := range m.inv.Files {
		out = append(out, m.checker.CheckFile(ctx, m.base.String()+f.Src, f)...)
	}
	return out
}

// session is the checkout session id to fetch a page of path with: the one
// in -checkout-url, or a new one (one minute, one attempt) opened with the
// merchant key, so a watch that runs for days always has an open session.
func (m *monitor) session(ctx context.Context, path string) (string, error) {
	if m.checkoutURL != "" {
		u, err := url.Parse(m.checkoutURL)
		if err != nil {
			return "", err
		}
		prefix, suffix, _ := strings.Cut(path, checkout.SessionPath)
		id, ok := strings.CutPrefix(u.Path, prefix)
		if id, ok2 := strings.CutSuffix(id, suffix); ok && ok2 && id != "" && !strings.Contains(id, "/") {
			return id, nil
		}
		return "", fmt.Errorf("-checkout-url's path is not %s", path)
	}
	// A subset of web.CreateSessionRequest: what the merchant API defaults
	// (locale, appearance) is the page a shopper gets.
	body, _ := json.Marshal(struct {
		AllowedOrigins []string `json:"allowed_origins,omitempty"`
		TTLSeconds     int      `json:"ttl_seconds"`
		MaxAttempts    int      `json:"max_attempts"`
	}{m.origins, 60, 1})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.base.String()+"/v1/checkout/sessions", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+m.merchantKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated {
		// The error body is the gateway's {"error":{"code","message"}}: no secret.
		return "", fmt.Errorf("opening a session answered %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	var s web.SessionResponse
	if err := json.Unmarshal(b, &s); err != nil || s.ID == "" {
		return "", fmt.Errorf("opening a session: unreadable answer: %v", err)
	}
	return s.ID, nil
}

// alarm is the webhook's body: one per check that found differences.
type alarm struct {
	Event       string                 `json:"event"` // "payment_pages.changed"
	Requirement string                 `json:"requirement"`
	CheckedAt   time.Time              `json:"checked_at"`
	Gateway     string                 `json:"gateway"`
	Differences []pagewatch.Difference `json:"differences"`
}

// watch checks now and then at every interval until ctx ends. Each check
// that differs is an alarm: one ERROR line per difference and a summary,
// and the webhook if set (its failure is logged, and the watch goes on).
func (m *monitor) watch(ctx context.Context, every time.Duration, webhook string, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		diffs := m.check(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if len(diffs) == 0 {
			log.Info("payment pages as inventoried", "checked", m.checked())
		} else {
			for _, d := range diffs {
				log.Error("ALARM payment page changed (PCI DSS 11.6.1)", "page", d.Page, "url", d.URL, "difference", d.What)
			}
			log.Error("ALARM payment pages differ from the inventory", "differences", len(diffs))
			m.alarm(ctx, webhook, diffs, log)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// alarm POSTs the differences to the webhook, if one is set; a failure is
// logged and changes nothing else (the differences were reported already).
func (m *monitor) alarm(ctx context.Context, webhook string, diffs []pagewatch.Difference, log *slog.Logger) {
	if webhook == "" {
		return
	}
	a := alarm{Event: "payment_pages.changed", Requirement: "PCI DSS 11.6.1", CheckedAt: m.now().UTC(), Gateway: m.base.String(), Differences: diffs}
	if err := m.postAlarm(ctx, webhook, a); err != nil {
		log.Error("alarm webhook failed", "err", err)
	}
}

func (m *monitor) postAlarm(ctx context.Context, webhook string, a alarm) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %d", webhook, resp.StatusCode)
	}
	return nil
}
