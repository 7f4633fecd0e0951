// Package pagewatch is the change- and tamper-detection of payment pages
// (PCI DSS 11.6.1): it fetches a live page as a browser would, and compares
// the scripts it loads (src and integrity, their served bytes, no inline
// code) and its security headers with the expected inventory
// (checkout.Inventory), listing every difference in words a person can act
// on. It sends nothing but GET requests to the URLs it is given, and follows
// no redirect: a page that moved has changed.
package pagewatch

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/blindgate/blindgate/checkout"
)

// maxBody caps what is read of a page or a script: ours are a few tens of
// KiB, and a monitor must not be made to read without end.
const maxBody = 4 << 20

// Watched are the security headers compared on every page, in the order
// they are reported. A header in a page's inventory but not here is compared
// too; one here but not in the inventory must be absent.
func Watched() []string {
	return []string{
		"Content-Security-Policy", "Content-Security-Policy-Report-Only",
		"Strict-Transport-Security", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options",
		"Permissions-Policy", "Cross-Origin-Opener-Policy", "Cross-Origin-Embedder-Policy",
		"Cross-Origin-Resource-Policy", "Cache-Control",
	}
}

// Difference is one way a live page differs from its inventory.
type Difference struct {
	Page string `json:"page"` // the inventory's page name, or the file's path
	URL  string `json:"url"`
	What string `json:"what"`
}

func (d Difference) String() string { return d.Page + " (" + d.URL + "): " + d.What }

// Checker fetches pages and scripts. Its zero value is not usable: NewChecker.
type Checker struct {
	client *http.Client
}

// NewChecker returns a Checker over the transport (nil: a default one with
// TLS verification), with a timeout per request and no redirects followed.
func NewChecker(transport http.RoundTripper, timeout time.Duration) *Checker {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Checker{client: &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Page says which live page to compare with which inventory entry.
type Page struct {
	Inventory checkout.Page
	URL       string // the live page, e.g. https://pay.example.com/checkout/cs_...
	// Origins are the checkout session's allowed origins, for a
	// frame-ancestors of checkout.SessionOrigins; nil accepts any list of
	// plain origins.
	Origins []string
}

// CheckPage fetches p.URL and every script it loads, and returns how they
// differ from p.Inventory; none means the page is as inventoried. A page or
// script that cannot be fetched is a difference too: what cannot be checked
// is not known to be unchanged.
func (c *Checker) CheckPage(ctx context.Context, p Page) []Difference {
	inv := p.Inventory
	var out []Difference
	add := func(format string, a ...any) {
		out = append(out, Difference{Page: inv.Name, URL: p.URL, What: fmt.Sprintf(format, a...)})
	}
	resp, body, err := c.get(ctx, p.URL)
	if err != nil {
		add("cannot fetch the page: %v", err)
		return out
	}
	if resp.StatusCode != http.StatusOK {
		add("answered %d, not 200 %s", resp.StatusCode, locationOf(resp))
		return out
	}
	for _, msg := range compareHeaders(inv.Headers, resp.Header, p.Origins) {
		add("%s", msg)
	}
	el := scan(string(body))
	for _, h := range el.handlers {
		add("inline event handler <%s>: the page has none", h)
	}
	for _, msg := range compareScripts(inv.Scripts, el.scripts) {
		add("%s", msg)
	}
	// The bytes behind every inventoried script the page loads: a browser
	// refuses a script whose bytes do not match its tag's integrity, so a
	// change here breaks the page, and a change of both is the attack.
	base, _ := url.Parse(p.URL)
	fetched := map[string]bool{}
	for _, s := range el.scripts {
		want, ok := inventoried(inv.Scripts, s.src)
		if !s.hasSrc || !ok || fetched[s.src] {
			continue
		}
		fetched[s.src] = true
		u, err := base.Parse(s.src)
		if err != nil {
			add("script %s: not a URL: %v", s.src, err)
			continue
		}
		if msg := c.checkBytes(ctx, u.String(), want.Integrity); msg != "" {
			add("script %s: %s", s.src, msg)
		}
	}
	return out
}

// CheckFile fetches a script served for other sites' pages and compares its
// bytes with the integrity the inventory (and the merchant's tag) pins.
func (c *Checker) CheckFile(ctx context.Context, rawURL string, f checkout.Script) []Difference {
	if msg := c.checkBytes(ctx, rawURL, f.Integrity); msg != "" {
		return []Difference{{Page: f.Src, URL: rawURL, What: msg}}
	}
	return nil
}

func (c *Checker) checkBytes(ctx context.Context, rawURL, integrity string) string {
	resp, body, err := c.get(ctx, rawURL)
	if err != nil {
		return fmt.Sprintf("cannot fetch: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("answered %d, not 200 %s", resp.StatusCode, locationOf(resp))
	}
	if got := SRI(body); !matchesIntegrity(integrity, body) {
		return fmt.Sprintf("served bytes are %s (%d bytes, sha256 %s), inventory %s", got, len(body), sha256Hex(body), integrity)
	}
	return ""
}

func (c *Checker) get(ctx context.Context, rawURL string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, nil, err
	}
	if len(body) > maxBody {
		return nil, nil, errors.New("answer larger than 4 MiB")
	}
	return resp, body, nil
}

func locationOf(resp *http.Response) string {
	if l := resp.Header.Get("Location"); l != "" {
		return "(redirect to " + l + ")"
	}
	return ""
}

// SRI is the sha384 Subresource Integrity value of b.
func SRI(b []byte) string {
	sum := sha512.Sum384(b)
	return "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
}

// matchesIntegrity: the inventory's integrity is one sha384 value (as the
// gateway computes them); a pinned file may list several, any may match.
func matchesIntegrity(integrity string, b []byte) bool {
	return slices.Contains(strings.Fields(integrity), SRI(b))
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// compareHeaders lists the watched headers (and any other the inventory
// names) whose live value is not the inventory's.
func compareHeaders(want map[string]string, got http.Header, origins []string) []string {
	names := Watched()
	var extra []string // the inventory's other headers, in a stable order
	for n := range want {
		if !slices.ContainsFunc(names, func(w string) bool { return strings.EqualFold(w, n) }) {
			extra = append(extra, n)
		}
	}
	slices.Sort(extra)
	names = append(names, extra...)
	var out []string
	for _, n := range names {
		w, expected := lookup(want, n)
		vals := got.Values(n)
		g := strings.Join(vals, ", ")
		switch {
		case !expected && len(vals) > 0:
			out = append(out, fmt.Sprintf("header %s added: %q", n, g))
		case expected && len(vals) == 0:
			out = append(out, fmt.Sprintf("header %s removed (inventory %q)", n, w))
		case !expected:
		case strings.EqualFold(n, "Content-Security-Policy") || strings.EqualFold(n, "Content-Security-Policy-Report-Only"):
			if len(vals) > 1 {
				out = append(out, fmt.Sprintf("%s: %d policies sent, inventory one", n, len(vals)))
			}
			for _, msg := range compareCSP(w, vals[0], origins) {
				out = append(out, n+": "+msg)
			}
		case g != w:
			out = append(out, fmt.Sprintf("header %s is %q, inventory %q", n, g, w))
		}
	}
	return out
}

func lookup(h map[string]string, name string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

func inventoried(scripts []checkout.Script, src string) (checkout.Script, bool) {
	for _, s := range scripts {
		if s.Src == src {
			return s, true
		}
	}
	return checkout.Script{}, false
}

// compareScripts lists how the page's script elements differ from the
// inventory's: added (inline ones included), missing, another integrity
// attribute, another order.
func compareScripts(want []checkout.Script, got []scriptTag) []string {
	var out, order []string
	seen := map[string]bool{}
	for _, g := range got {
		if g.hasSrc && seen[g.src] {
			out = append(out, fmt.Sprintf("script repeated: %s", g.src))
			continue
		}
		seen[g.src] = true
		if !g.hasSrc {
			code := strings.TrimSpace(g.content)
			out = append(out, fmt.Sprintf("inline script added (%d bytes, sha256 %s): the page has none", len(code), sha256Hex([]byte(code))))
			continue
		}
		w, ok := inventoried(want, g.src)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("script added: %s (integrity %s)", g.src, orNone(g.integrity)))
		case g.integrity != w.Integrity:
			out = append(out, fmt.Sprintf("script %s: integrity attribute %s, inventory %s", g.src, orNone(g.integrity), w.Integrity))
			order = append(order, g.src)
		default:
			order = append(order, g.src)
		}
	}
	var wantOrder []string
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g scriptTag) bool { return g.hasSrc && g.src == w.Src }) {
			out = append(out, fmt.Sprintf("script missing: %s", w.Src))
			continue
		}
		wantOrder = append(wantOrder, w.Src)
	}
	if !slices.Equal(order, wantOrder) && len(order) == len(wantOrder) {
		out = append(out, fmt.Sprintf("scripts in another order: %s; inventory %s", strings.Join(order, ", "), strings.Join(wantOrder, ", ")))
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
