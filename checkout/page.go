package checkout

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// URL paths the page and the embed script assume. The gateway may serve the
// assets elsewhere by passing another base to NewPageData.
const (
	DefaultAssetBase = "/assets/checkout/" // Asset(name) is served at DefaultAssetBase + name
	KeysPath         = "/v1/keys"          // JWKS of the public KEKs
	EmbedPath        = "/embed.js"         // Asset(ScriptEmbed), with Access-Control-Allow-Origin: * for SRI
	PagePathPrefix   = "/checkout/"        // page at /checkout/<session>; embed.js builds this URL
)

// PageData is the data contract of templates/checkout.html.
type PageData struct {
	SessionID    string            // checkout session id; also the JWE header bg_sid
	Locale       string            // the session's locale as configured ("fr-FR")
	Lang         string            // language picked for it ("fr"); <html lang>
	ParentOrigin string            // origin(s) allowed to embed the page, space separated; "" = not embeddable
	ReturnURL    string            // after success when not embedded: ?token=&session= are appended
	SubmitURL    string            // POST {card_jwe, cvc_jwe} -> {token}
	KeysURL      string            // JWKS for the page
	ThemeURL     string            // per-session stylesheet setting the --bg-* variables; "" = default look
	Scripts      []Script          // page scripts with SRI, in load order
	Styles       []Style           // stylesheets with SRI
	Strings      map[string]string // labels in Lang, rendered server-side

	// Set by SetPayment; without it the button says "Save card" and the page
	// names no merchant.
	MerchantName string // shown when the page is the shopper's whole window, not in a merchant's iframe
	Amount       string // decimal in major units ("25.00"), exact; "" = no amount
	Currency     string // ISO 4217 code of Amount ("EUR")
	AmountText   string // "25.00 EUR": shown until the script formats Amount for Locale
	SubmitKey    string // string key of the button's text; with an amount it takes {amount}
	SubmitLabel  string // the button's text as rendered, {amount} filled with AmountText
}

// NewPageData fills the parts of PageData that follow from the session id and
// locale: strings, scripts, styles and the default endpoint URLs. The caller
// sets ParentOrigin and ReturnURL from the session (and may clear ThemeURL).
func (a *Assets) NewPageData(assetBase, sessionID, locale string) PageData {
	lang, s := a.Strings(locale)
	sess := PagePathPrefix + url.PathEscape(sessionID)
	return PageData{
		SessionID:   sessionID,
		Locale:      locale,
		Lang:        lang,
		SubmitURL:   sess + "/submit",
		KeysURL:     KeysPath,
		ThemeURL:    sess + "/theme.css",
		Scripts:     a.PageScripts(assetBase),
		Styles:      a.PageStyles(assetBase),
		Strings:     s,
		SubmitKey:   submitKey(SubmitSave, false),
		SubmitLabel: s[submitKey(SubmitSave, false)],
	}
}

// What the submit button says, as a session chooses it (the merchant API's
// submit_type).
const (
	SubmitSave     = "save"     // "Save card": the default without an amount
	SubmitPay      = "pay"      // "Pay €25.00", or "Pay" without an amount: the default with one
	SubmitDonate   = "donate"   // "Donate €25.00", or "Donate"
	SubmitContinue = "continue" // "Continue" (the amount, if any, shows only on the full page)
)

// SubmitTypes lists the button wordings a session may choose.
func SubmitTypes() []string {
	return []string{SubmitSave, SubmitPay, SubmitDonate, SubmitContinue}
}

// submitKey is the string key of a button wording: "submit_<type>", and
// "submit_<type>_amount" for the wordings that name the amount when there is
// one. i18n.js has every key this returns (TestSubmitLabels).
func submitKey(submitType string, withAmount bool) string {
	if withAmount && (submitType == SubmitPay || submitType == SubmitDonate) {
		return "submit_" + submitType + "_amount"
	}
	return "submit_" + submitType
}

// Payment is what a checkout session says about the payment: the merchant it
// is for, and optionally an amount and how the button words it.
type Payment struct {
	Merchant   string // the merchant's name
	Amount     int64  // minor units of Currency; 0 = no amount
	Currency   string // ISO 4217, upper case; required with an amount, refused without
	SubmitType string // one of SubmitTypes; "" = SubmitPay with an amount, SubmitSave without
}

// AmountRule is the rule of an amount, in the words the merchant API
// answers with.
func AmountRule() string {
	return fmt.Sprintf("must be an integer number of minor units from 1 to %d (2500 is 25.00 EUR)", MaxAmount)
}

// PaymentError names the field of a Payment that breaks its rule, in words
// fit for the merchant who set it; it never holds the value.
type PaymentError struct {
	Field  string // amount, currency or submit_type, as the merchant API names them
	Reason string
}

func (e *PaymentError) Error() string { return "checkout: " + e.Field + " " + e.Reason }

// Validate checks the amount, currency and submit type (not the merchant's
// name, which is the merchant account's). The session API applies it when a
// session is opened.
func (p Payment) Validate() error {
	switch {
	case p.Amount < 0 || p.Amount > MaxAmount:
		return &PaymentError{"amount", AmountRule()}
	case p.Amount > 0 && p.Currency == "":
		return &PaymentError{"currency", "is required with an amount"}
	case p.Amount == 0 && p.Currency != "":
		return &PaymentError{"amount", "is required with a currency (an integer number of minor units, at least 1)"}
	case p.SubmitType != "" && !slices.Contains(SubmitTypes(), p.SubmitType):
		return &PaymentError{"submit_type", "must be one of " + strings.Join(SubmitTypes(), ", ")}
	}
	if _, ok := CurrencyExponent(p.Currency); p.Currency != "" && !ok {
		return &PaymentError{"currency", "must be an ISO 4217 currency code the checkout accepts (EUR, USD, JPY...)"}
	}
	return nil
}

// SetPayment fills the page's merchant name, amount and button text. Of an
// invalid Payment (a session stored under other rules) it takes only the
// merchant's name and returns the error, so the page never shows an amount
// it cannot write exactly.
func (pd *PageData) SetPayment(p Payment) error {
	pd.MerchantName = p.Merchant
	if err := p.Validate(); err != nil {
		return err
	}
	typ := p.SubmitType
	if typ == "" {
		typ = SubmitSave
		if p.Amount > 0 {
			typ = SubmitPay
		}
	}
	pd.SubmitKey = submitKey(typ, p.Amount > 0)
	pd.Amount, pd.Currency, pd.AmountText = "", "", ""
	if p.Amount > 0 {
		exp, _ := CurrencyExponent(p.Currency)
		pd.Amount, pd.Currency = DecimalAmount(p.Amount, exp), p.Currency
		pd.AmountText = pd.Amount + " " + p.Currency
	}
	pd.SubmitLabel = strings.ReplaceAll(pd.Strings[pd.SubmitKey], "{amount}", pd.AmountText)
	return nil
}

// ValidOrigin reports whether s is a serialized http(s) origin such as
// "https://shop.example" or "http://localhost:8080": no path, query, user info
// or trailing slash. Merchant configuration should be checked with it.
func ValidOrigin(s string) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return false
	}
	return u.Scheme+"://"+u.Host == s && u.User == nil && !strings.ContainsAny(s, " ;,'\"")
}

// PageCSP is the Content-Security-Policy the checkout page is built for:
// scripts and styles only from our origin (with SRI on each tag), requests only
// to our origin, no native form submission, no plugins, no <base>, Trusted
// Types enforced (the scripts never write HTML), and framing only by the
// session's parent origins. parentOrigins is the space-separated
// PageData.ParentOrigin; entries that are not valid origins are dropped.
func PageCSP(parentOrigins string) string {
	ancestors := "'none'"
	var ok []string
	for _, o := range strings.Fields(parentOrigins) {
		if ValidOrigin(o) {
			ok = append(ok, o)
		}
	}
	if len(ok) > 0 {
		ancestors = strings.Join(ok, " ")
	}
	return pageCSP(ancestors)
}

// pageCSP is the policy with its frame-ancestors sources already checked;
// the page inventory builds it with SessionOrigins in their place.
func pageCSP(ancestors string) string {
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src 'self'; form-action 'none'; base-uri 'none'; object-src 'none'; " +
		"frame-ancestors " + ancestors + "; require-trusted-types-for 'script'; trusted-types 'none'"
}
