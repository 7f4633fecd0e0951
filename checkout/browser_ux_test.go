package checkout_test

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/internal/browsertest"
)

// The shopper-facing behaviour of the page, each in a real Chromium: what the
// button and the summary say, the accepted brands and the CVC hint, errors
// shown as the shopper types, a click that a re-render must not eat, where
// focus goes, and the layout of the expiry and security-code fields.

// spaces folds the no-break spaces Intl puts in amounts ("25,00\u00a0€").
func spaces(s string) string {
	return strings.NewReplacer("\u00a0", " ", "\u202f", " ").Replace(s)
}

// str is a string of the table in a language, {name} placeholders filled.
func str(t *testing.T, f *fixture, locale, key string, params ...string) string {
	t.Helper()
	_, strs := f.assets.Strings(locale)
	s, ok := strs[key]
	if !ok {
		t.Fatalf("no string %s", key)
	}
	for i := 0; i+1 < len(params); i += 2 {
		s = strings.ReplaceAll(s, "{"+params[i]+"}", params[i+1])
	}
	return s
}

// testPayment: the button names the session's amount, formatted for its
// locale by Intl in the page (en, fr and de exist), or says what the
// merchant chose; a shopper sent to the page (not framed) sees the merchant
// and the amount.
func testPayment(t *testing.T, f *fixture) {
	eur := checkout.Payment{Merchant: "Acme Shop", Amount: 2500, Currency: "EUR"}
	tests := []struct {
		name, locale   string
		pay            checkout.Payment
		button, amount string // amount "" = no amount shown
	}{
		{"en/eur", "en", eur, "Pay €25.00", "€25.00"},
		{"fr/eur", "fr-FR", eur, "Payer 25,00 €", "25,00 €"},
		{"de/eur", "de_DE", eur, "25,00 € bezahlen", "25,00 €"},
		{"en/jpy", "en", checkout.Payment{Merchant: "Acme Shop", Amount: 700, Currency: "JPY"}, "Pay ¥700", "¥700"},
		{"en/large", "en", checkout.Payment{Merchant: "Acme Shop", Amount: 123456789, Currency: "USD"}, "Pay $1,234,567.89", "$1,234,567.89"},
		{"fr/donate", "fr", checkout.Payment{Merchant: "Acme Shop", Amount: 1000, Currency: "EUR", SubmitType: checkout.SubmitDonate}, "Donner 10,00 €", "10,00 €"},
		{"de/continue-with-amount", "de", checkout.Payment{Merchant: "Acme Shop", Amount: 1000, Currency: "EUR", SubmitType: checkout.SubmitContinue}, "Weiter", "10,00 €"},
		{"en/no-amount", "en", checkout.Payment{Merchant: "Acme Shop"}, "Save card", ""},
		{"fr/pay-no-amount", "fr", checkout.Payment{Merchant: "Acme Shop", SubmitType: checkout.SubmitPay}, "Payer", ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("cs_pay%d", i)
			f.addSession(id, session{locale: tc.locale, pay: tc.pay})
			tb := f.newTab(t)
			f.openCheckout(t, tb, id)
			got := browsertest.Eval[[]string](t, tb, `(function () {
				var s = document.getElementById("bg-summary"), a = document.getElementById("bg-amount");
				return [document.getElementById("bg-submit").textContent, String(s !== null && !s.hidden),
					document.getElementById("bg-merchant").textContent, a ? a.textContent : ""];
			})()`)
			if spaces(got[0]) != tc.button {
				t.Errorf("button says %q, want %q", got[0], tc.button)
			}
			if got[1] != "true" || got[2] != "Acme Shop" || spaces(got[3]) != tc.amount {
				t.Errorf("summary shown %s, merchant %q, amount %q; want shown, Acme Shop, %q", got[1], got[2], got[3], tc.amount)
			}
			tb.NoCSPViolations(t)
		})
	}
}

// testBrands: the accepted brands show before anything is typed (our own
// icons, under the page's CSP), the one typed stands out, and the CVC hint
// follows the brand.
func testBrands(t *testing.T, f *fixture) {
	f.addSession("cs_brands", session{locale: "en"})
	tb := f.newTab(t)
	f.openCheckout(t, tb, "cs_brands")
	tb.WaitFor(t, `[].every.call(document.querySelectorAll("#bg-brands img"), function (i) { return i.complete; })`, wait)
	got := browsertest.Eval[[]string](t, tb, `[].map.call(document.querySelectorAll("#bg-brands img"), function (i) {
		return i.alt + " " + (i.naturalWidth > 0) + " " + new URL(i.src).pathname; })`)
	want := []string{"Visa", "Mastercard", "American Express", "Discover", "JCB", "Diners Club", "UnionPay", "Maestro"}
	if len(got) != len(want) {
		t.Fatalf("brands shown before typing: %q, want %d", got, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w+" true "+checkout.DefaultAssetBase+"brands/") {
			t.Errorf("brand %d = %q, want %s, loaded from our assets", i, got[i], w)
		}
	}
	if label := browsertest.Eval[string](t, tb, `document.getElementById("bg-brands").getAttribute("aria-label")`); label != str(t, f, "en", "brands_accepted") {
		t.Errorf("brand list labelled %q", label)
	}

	type state struct {
		Hint     string   `json:"hint"`
		Max      string   `json:"max"`
		Detected string   `json:"detected"`
		Active   []string `json:"active"`
	}
	read := `({ hint: document.getElementById("bg-cvc-hint").textContent,
		max: document.getElementById("bg-cvc").getAttribute("maxlength"),
		detected: document.getElementById("bg-brands").getAttribute("data-detected") || "",
		active: [].map.call(document.querySelectorAll("#bg-brands li[data-active]"), function (li) { return li.dataset.brand; }) })`
	for _, tc := range []struct {
		typed, brand, hint, max string
	}{
		{"", "", "hint_cvc", "4"},
		{"4242", "visa", "hint_cvc_back", "3"},
		{"3782", "amex", "hint_cvc_front", "4"},
		{"3411", "amex", "hint_cvc_front", "4"},
		{"5555", "mastercard", "hint_cvc_back", "3"},
		{"6011", "discover", "hint_cvc_back", "3"},
		{"9999", "", "hint_cvc", "4"},
	} {
		t.Run("cvc-hint/"+tc.typed, func(t *testing.T) {
			tb.Do(t, chromedp.SetValue(chromedp.ID("bg-number"), ""))
			if tc.typed != "" {
				tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-number"), tc.typed))
			} else {
				tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-number"), "1\b"))
			}
			s := browsertest.Eval[state](t, tb, read)
			if s.Hint != str(t, f, "en", tc.hint) || s.Max != tc.max {
				t.Errorf("hint %q maxlength %s, want %s (%q) and %s", s.Hint, s.Max, tc.hint, str(t, f, "en", tc.hint), tc.max)
			}
			wantActive := 0
			if tc.brand != "" {
				wantActive = 1
			}
			if s.Detected != tc.brand || len(s.Active) != wantActive || (wantActive == 1 && s.Active[0] != tc.brand) {
				t.Errorf("brand list: detected %q, active %v; want %q alone", s.Detected, s.Active, tc.brand)
			}
		})
	}
	// The hint is in the page's language.
	f.addSession("cs_brands_de", session{locale: "de"})
	de := f.newTab(t)
	f.openCheckout(t, de, "cs_brands_de")
	de.Do(t, chromedp.SendKeys(chromedp.ID("bg-number"), "37"))
	if h := browsertest.Eval[string](t, de, `document.getElementById("bg-cvc-hint").textContent`); h != str(t, f, "de", "hint_cvc_front") {
		t.Errorf("German Amex hint %q", h)
	}
	tb.NoCSPViolations(t)
}

type fieldState struct {
	Value   string `json:"value"`
	Invalid string `json:"invalid"`
	Error   string `json:"error"`
	Focus   string `json:"focus"`
}

func readField(t *testing.T, tb *browsertest.Tab, id string) fieldState {
	t.Helper()
	return browsertest.Eval[fieldState](t, tb, fmt.Sprintf(`({ value: document.getElementById(%[1]q).value,
		invalid: document.getElementById(%[1]q).getAttribute("aria-invalid"),
		error: document.getElementById(%[1]q + "-error").textContent, focus: document.activeElement.id })`, id))
}

// testTyping: a number that fails Luhn is flagged as its last digit is
// typed, at the brand's full length, with focus still in the field; a
// number not yet complete is not; an impossible month (13/99) says the
// month is wrong, which is not the message for a bad format or an expired
// card.
func testTyping(t *testing.T, f *fixture) {
	f.addSession("cs_typing", session{locale: "en"})
	tb := f.newTab(t)
	f.openCheckout(t, tb, "cs_typing")
	luhn := str(t, f, "en", "err_number_luhn")
	for _, tc := range []struct {
		name, typed string
		flagged     bool
	}{
		{"visa-16-luhn", "4242424242424241", true},
		{"amex-15-luhn", "378282246310006", true},
		{"mastercard-16-luhn", "5555555555554443", true},
		{"visa-19-luhn", "4242424242424242421", true},
		{"diners-14-luhn", "36227206271668", true},
		{"visa-15-not-yet", "424242424242424", false},
		{"visa-13-not-full", "4242424242421", false},
		{"amex-14-not-yet", "37828224631000", false},
		{"visa-16-valid", "4242424242424242", false},
	} {
		t.Run("number/"+tc.name, func(t *testing.T) {
			tb.Do(t, chromedp.SetValue(chromedp.ID("bg-number"), ""), chromedp.Focus(chromedp.ID("bg-number")))
			// A flag left by the last case must not linger either.
			tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-number"), "4\b"))
			tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-number"), tc.typed))
			s := readField(t, tb, "bg-number")
			if s.Focus != "bg-number" {
				t.Fatalf("focus moved to %q while typing", s.Focus)
			}
			if tc.flagged && (s.Invalid != "true" || s.Error != luhn) {
				t.Errorf("after the last digit: aria-invalid %s, error %q; want the Luhn error at once", s.Invalid, s.Error)
			}
			if !tc.flagged && (s.Invalid != "false" || s.Error != "") {
				t.Errorf("while typing: aria-invalid %s, error %q; want no error yet", s.Invalid, s.Error)
			}
		})
	}
	// Fixing the last digit clears the flag as it is typed.
	tb.Do(t, chromedp.SetValue(chromedp.ID("bg-number"), ""), chromedp.SendKeys(chromedp.ID("bg-number"), "4242424242424241"))
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-number"), "\b2"))
	if s := readField(t, tb, "bg-number"); s.Invalid != "false" || s.Error != "" {
		t.Errorf("after fixing: %+v", s)
	}

	month, format, past := str(t, f, "en", "err_exp_month"), str(t, f, "en", "err_exp_format"), str(t, f, "en", "err_exp_past")
	if month == format || month == past {
		t.Fatalf("the month message %q is not distinct", month)
	}
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-exp"), "13"))
	if s := readField(t, tb, "bg-exp"); s.Error != month || s.Focus != "bg-exp" {
		t.Errorf("typing 13: %+v, want %q at once", s, month)
	}
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-exp"), "99\t"))
	if s := readField(t, tb, "bg-exp"); s.Value != "13/99" || s.Invalid != "true" || s.Error != month {
		t.Errorf("13/99: %+v, want %q", s, month)
	}
	tb.Do(t, chromedp.SetValue(chromedp.ID("bg-exp"), ""), chromedp.SendKeys(chromedp.ID("bg-exp"), "0020\t"))
	if s := readField(t, tb, "bg-exp"); s.Error != month {
		t.Errorf("00/20: %+v, want %q", s, month)
	}
	// An expired card is told so as its last digit is typed.
	tb.Do(t, chromedp.SetValue(chromedp.ID("bg-exp"), ""), chromedp.SendKeys(chromedp.ID("bg-exp"), "0120"))
	if s := readField(t, tb, "bg-exp"); s.Error != past || s.Focus != "bg-exp" {
		t.Errorf("01/20: %+v, want %q", s, past)
	}
	tb.NoCSPViolations(t)
}

// testClickNotLost: a real mouse click on the submit button, while a field
// shows an error and another still has focus, submits. Before, the focused
// field's blur check re-rendered its error under the pointer, the button
// moved, and the release landed off it. The press is near the button's top,
// where any shift of the layout would lose it.
func testClickNotLost(t *testing.T, f *fixture) {
	for _, locale := range []string{"en", "fr"} {
		t.Run(locale, func(t *testing.T) {
			id := "cs_click_" + locale
			f.addSession(id, session{locale: locale, pay: checkout.Payment{Merchant: "Acme Shop", Amount: 2500, Currency: "EUR"}})
			tb := f.newTab(t)
			tb.Do(t, chromedp.EmulateViewport(375, 800))
			f.openCheckout(t, tb, id)
			// The expiry shows an error; the number is half typed and focused.
			tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-exp"), "0120"))
			if s := readField(t, tb, "bg-exp"); s.Invalid != "true" {
				t.Fatalf("setup: the expiry shows no error: %+v", s)
			}
			tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-number"), "4242 4242"))
			type rect struct{ X, Y, W, H float64 }
			r := browsertest.Eval[rect](t, tb, `(function () { var r = document.getElementById("bg-submit").getBoundingClientRect();
				return { X: r.left, Y: r.top, W: r.width, H: r.height }; })()`)
			x, y := r.X+r.W/2, r.Y+3
			tb.Do(t, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x, y), chromedp.MouseClickXY(x, y))
			tb.WaitFor(t, `document.getElementById("bg-status").textContent !== ""`, wait)
			got := browsertest.Eval[[]string](t, tb, `[document.getElementById("bg-status").textContent, document.activeElement.id,
				document.getElementById("bg-number-error").textContent]`)
			if got[0] != str(t, f, locale, "err_form") || got[1] != "bg-number" || got[2] != str(t, f, locale, "err_number_length") {
				t.Errorf("after the click: status %q, focus %q, number error %q; want the form's summary, focus on the number and its error", got[0], got[1], got[2])
			}
		})
	}
}

// testFocus: after "Pay with card" on a merchant page the card number has
// focus (the shopper types at once), a form mounted with the page takes
// none, and after payment focus is on the status message, which the live
// region announces; a framed page shows no summary of its own.
func testFocus(t *testing.T, f *fixture) {
	t.Run("after-payment", func(t *testing.T) {
		f.addSession("cs_focus_paid", session{locale: "fr"})
		tb := f.newTab(t)
		f.openCheckout(t, tb, "cs_focus_paid")
		f.fill(t, tb, "4242424242424242", "1230", "123", "Ada")
		tb.WaitFor(t, `document.getElementById("bg-status").dataset.kind === "success"`, wait)
		got := browsertest.Eval[[]string](t, tb, `(function () { var s = document.getElementById("bg-status");
			return [document.activeElement.id, s.textContent, s.getAttribute("role"), s.getAttribute("aria-live")]; })()`)
		if got[0] != "bg-status" || got[1] != str(t, f, "fr", "status_success") || got[2] != "status" || got[3] != "polite" {
			t.Errorf("after payment: focus %q, status %q (role %s, aria-live %s)", got[0], got[1], got[2], got[3])
		}
	})

	t.Run("pay-with-card", func(t *testing.T) {
		const id = "cs_focus_embed"
		f.addSession(id, session{locale: "en", parentOrigin: f.parentOrigin(), pay: checkout.Payment{Merchant: "Acme Shop", Amount: 2500, Currency: "EUR"}})
		tb := f.newTab(t)
		tb.Do(t, browsertest.Navigate(f.parentOrigin()+"/parent.html?"+url.Values{"session": {id}, "button": {"1"}}.Encode()),
			chromedp.WaitVisible(chromedp.ID("pay")), chromedp.Click(chromedp.ID("pay")))
		frame := browsertest.AttachFrame(t, tb, f.gwOrigin()+"/checkout/"+id)
		frame.WaitFor(t, `document.activeElement && document.activeElement.id === "bg-number"`, wait)
		// Keys typed now, without any other click, go into the card number.
		tb.Do(t, chromedp.KeyEvent("4242424242424242"))
		frame.WaitFor(t, `document.getElementById("bg-number").value === "4242 4242 4242 4242"`, wait)
		if shown := browsertest.Eval[bool](t, frame, `!document.getElementById("bg-summary").hidden`); shown {
			t.Error("the framed page shows its own merchant and amount summary")
		}
		if b := spaces(browsertest.Eval[string](t, frame, `document.getElementById("bg-submit").textContent`)); b != "Pay €25.00" {
			t.Errorf("framed button says %q", b)
		}
		for _, step := range []struct{ keys, field string }{{"\t", "bg-exp"}, {"1230", "bg-exp"}, {"\t", "bg-cvc"}, {"123", "bg-cvc"}} {
			tb.Do(t, chromedp.KeyEvent(step.keys))
			frame.WaitFor(t, fmt.Sprintf(`document.activeElement.id === %q`, step.field), wait)
		}
		tb.Do(t, chromedp.KeyEvent("\r"))
		tb.WaitFor(t, `window.__token !== undefined`, wait)
		frame.WaitFor(t, `document.activeElement.id === "bg-status"`, wait)
	})

	t.Run("mounted-with-page", func(t *testing.T) {
		const id = "cs_focus_load"
		f.addSession(id, session{locale: "en", parentOrigin: f.parentOrigin()})
		tb := f.newTab(t)
		tb.Do(t, browsertest.Navigate(f.parentOrigin()+"/parent.html?"+url.Values{"session": {id}}.Encode()))
		frame := browsertest.AttachFrame(t, tb, f.gwOrigin()+"/checkout/"+id)
		frame.WaitFor(t, `document.documentElement.classList.contains("bg-ready")`, wait)
		tb.WaitFor(t, fmt.Sprintf(`window.__seen && __seen.some(function (m) { return m.origin === %q && m.type === "blindgate:ready"; })`, f.gwOrigin()), wait)
		if a := browsertest.Eval[string](t, frame, `document.activeElement ? document.activeElement.id : ""`); a == "bg-number" {
			t.Error("a form mounted with the page took focus")
		}
	})
}

// testAlignment: the expiry and security-code inputs start on the same line
// (before, the expiry's hint sat in its label and pushed it ~21 px lower),
// in every language, on a phone and a desktop, with an error shown.
func testAlignment(t *testing.T, f *fixture) {
	for _, locale := range []string{"en", "fr", "de"} {
		for _, width := range []int64{375, 1024} {
			t.Run(fmt.Sprintf("%s/%d", locale, width), func(t *testing.T) {
				id := fmt.Sprintf("cs_align_%s_%d", locale, width)
				f.addSession(id, session{locale: locale})
				tb := f.newTab(t)
				tb.Do(t, chromedp.EmulateViewport(width, 800))
				f.openCheckout(t, tb, id)
				tops := func() []float64 {
					return browsertest.Eval[[]float64](t, tb, `["bg-exp", "bg-cvc"].map(function (id) {
						return document.getElementById(id).getBoundingClientRect().top; })`)
				}
				if got := tops(); math.Abs(got[0]-got[1]) > 0.5 {
					t.Errorf("expiry top %.1f, security code top %.1f", got[0], got[1])
				}
				tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-exp"), "13\t"), chromedp.SendKeys(chromedp.ID("bg-cvc"), "1\t"))
				if got := tops(); math.Abs(got[0]-got[1]) > 0.5 {
					t.Errorf("with errors shown: expiry top %.1f, security code top %.1f", got[0], got[1])
				}
				if w := browsertest.Eval[int](t, tb, `document.documentElement.scrollWidth`); w > int(width) {
					t.Errorf("page is %dpx wide on a %dpx screen", w, width)
				}
			})
		}
	}
}

// testGrouping: the page spaces numbers as checkout.GroupPAN does, which the
// back office uses to show a revealed number: one rule, two languages.
func testGrouping(t *testing.T, f *fixture) {
	f.addSession("cs_grouping", session{locale: "en"})
	tb := f.newTab(t)
	f.openCheckout(t, tb, "cs_grouping")
	for _, pan := range []string{
		"378282246310005", "4242424242424242", "4222222222222", luhnComplete("4", 19), "36227206271667",
		"3056930009020004", "5555555555554444", "6011111111111117", "3566002020360505", "6200000000000005",
		luhnComplete("58", 12), luhnComplete("6011", 19), "3782", "37828224631",
	} {
		js := browsertest.Eval[string](t, tb, fmt.Sprintf(`BlindgateCard.format(%[1]q, BlindgateCard.detectBrand(%[1]q))`, pan))
		brand := browsertest.Eval[string](t, tb, fmt.Sprintf(`BlindgateCard.detectBrand(%q)`, pan))
		if goes := checkout.GroupPAN(brand, pan); goes != js {
			t.Errorf("%s (%s): page %q, GroupPAN %q", pan[:4], brand, js, goes)
		}
	}
}
