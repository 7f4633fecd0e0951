package templates_test

import (
	"bytes"
	"html"
	"regexp"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/templates"
)

func renderCheckout(t *testing.T, pd checkout.PageData) string {
	t.Helper()
	pages, err := templates.Parse()
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, "checkout.html", pd); err != nil {
		t.Fatalf("execute checkout.html: %v", err)
	}
	return buf.String()
}

func newAssets(t *testing.T) *checkout.Assets {
	t.Helper()
	a, err := checkout.NewAssets()
	if err != nil {
		t.Fatalf("NewAssets: %v", err)
	}
	return a
}

var (
	scriptTag   = regexp.MustCompile(`(?is)<script\b[^>]*>`)
	eventAttr   = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	styleAttr   = regexp.MustCompile(`(?i)\sstyle\s*=`)
	inputTag    = regexp.MustCompile(`(?is)<input\b[^>]*>`)
	integrityRe = regexp.MustCompile(`integrity="([^"]+)"`)
)

func TestCheckoutPage(t *testing.T) {
	a := newAssets(t)
	tests := []struct {
		name, locale, wantLang string
	}{
		{"en/default", "", "en"},
		{"fr/region", "fr-CA", "fr"},
		{"de/underscore", "de_DE", "de"},
		{"en/unknown-locale", "es-ES", "en"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pd := a.NewPageData(checkout.DefaultAssetBase, "cs_test123", tc.locale)
			pd.ParentOrigin = "https://shop.example"
			pd.ReturnURL = "https://shop.example/done"
			page := renderCheckout(t, pd)
			_, strs := a.Strings(tc.locale)

			if !strings.Contains(page, `<html lang="`+tc.wantLang+`">`) {
				t.Errorf("html lang is not %q", tc.wantLang)
			}
			for _, key := range []string{"title", "label_number", "label_exp", "label_cvc", "label_name", "submit_save"} {
				if !strings.Contains(page, escapeText(strs[key])) {
					t.Errorf("page lacks string %s = %q", key, strs[key])
				}
			}
			tags := scriptTag.FindAllString(page, -1)
			if len(tags) != len(pd.Scripts) {
				t.Fatalf("%d script tags, want %d", len(tags), len(pd.Scripts))
			}
			for i, tag := range tags {
				want := pd.Scripts[i]
				if !strings.Contains(tag, `src="`+want.Src+`"`) {
					t.Errorf("script %d: %s lacks src %s (no inline script may exist)", i, tag, want.Src)
				}
				m := integrityRe.FindStringSubmatch(tag)
				// html/template writes "+" as "&#43;", which the browser decodes.
				if m == nil || html.UnescapeString(m[1]) != want.Integrity {
					t.Errorf("script %d: %s lacks integrity %s", i, tag, want.Integrity)
				}
				if !strings.Contains(tag, `crossorigin="anonymous"`) {
					t.Errorf("script %d lacks crossorigin", i)
				}
			}
			if eventAttr.MatchString(page) {
				t.Errorf("page has an inline event handler: %s", eventAttr.FindString(page))
			}
			if styleAttr.MatchString(page) || strings.Contains(page, "<style") {
				t.Error("page has inline style (CSP style-src 'self' would block it)")
			}
			for _, in := range inputTag.FindAllString(page, -1) {
				if strings.Contains(in, " name=") {
					t.Errorf("input has a name attribute, a native submit could carry it: %s", in)
				}
			}
			for _, want := range []string{
				`autocomplete="cc-number"`, `autocomplete="cc-exp"`, `autocomplete="cc-csc"`, `autocomplete="cc-name"`,
				`inputmode="numeric"`, `aria-live="polite"`, `<fieldset id="bg-fields" class="bg-fields" disabled>`,
				`data-session="cs_test123"`, `data-parent-origin="https://shop.example"`,
				`data-return-url="https://shop.example/done"`, `data-submit-url="/checkout/cs_test123/submit"`,
				`data-keys-url="/v1/keys"`, `href="/checkout/cs_test123/theme.css"`,
			} {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %s", want)
				}
			}
		})
	}
}

// escapeText mirrors html/template's escaping of text for the few characters
// the strings use.
func escapeText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func TestCheckoutPageEscapes(t *testing.T) {
	a := newAssets(t)
	pd := a.NewPageData(checkout.DefaultAssetBase, `cs_"><script>x</script>`, "en")
	pd.ReturnURL = "javascript:alert(1)"
	pd.ParentOrigin = `https://a.example" onload="x`
	page := renderCheckout(t, pd)
	if strings.Contains(page, "<script>x") || strings.Contains(page, `" onload="`) {
		t.Error("session id or parent origin broke out of its attribute")
	}
	if strings.Contains(page, "javascript:") {
		t.Error("a javascript: return URL reached the page")
	}
	// A merchant's name is the merchant's text: escaped, never markup.
	if err := pd.SetPayment(checkout.Payment{Merchant: `Acme <img src=x onerror=alert(1)>`, Amount: 2500, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	page = renderCheckout(t, pd)
	if strings.Contains(page, "<img src=x") || !strings.Contains(page, "Acme &lt;img src=x onerror=alert(1)&gt;") {
		t.Error("the merchant name was not escaped")
	}
}

// TestCheckoutPageSummary: the merchant and amount are in the page, hidden
// until the script finds it is not framed; the button names the amount in
// the currency's decimals until the script formats it for the locale.
func TestCheckoutPageSummary(t *testing.T) {
	a := newAssets(t)
	pd := a.NewPageData(checkout.DefaultAssetBase, "cs_test123", "fr")
	if err := pd.SetPayment(checkout.Payment{Merchant: "Acme", Amount: 2500, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	page := renderCheckout(t, pd)
	for _, want := range []string{
		`<dl id="bg-summary" class="bg-summary" hidden>`, `<dd id="bg-merchant" class="bg-merchant">Acme</dd>`,
		`<dd id="bg-amount" class="bg-amount">25.00 EUR</dd>`, `data-amount="25.00" data-currency="EUR" data-submit-key="submit_pay_amount"`,
		`>Payer 25.00 EUR</button>`, `<ul id="bg-brands" class="bg-brands" aria-label="Cartes acceptées"></ul>`,
		`<p id="bg-status" class="bg-status" role="status" aria-live="polite" tabindex="-1"></p>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	plain := renderCheckout(t, a.NewPageData(checkout.DefaultAssetBase, "cs_test123", "en"))
	if strings.Contains(plain, "bg-summary") || !strings.Contains(plain, `>Save card</button>`) {
		t.Error("a session without merchant or amount has a summary, or its button does not say Save card")
	}
}

func TestMissingStringFails(t *testing.T) {
	a := newAssets(t)
	pd := a.NewPageData(checkout.DefaultAssetBase, "cs_x", "en")
	delete(pd.Strings, "label_number")
	pages, err := templates.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if err := pages.ExecuteTemplate(&bytes.Buffer{}, "checkout.html", pd); err == nil {
		t.Fatal("render with a missing string succeeded; want an error")
	}
}
