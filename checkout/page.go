package checkout

import (
	"net/url"
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
}

// NewPageData fills the parts of PageData that follow from the session id and
// locale: strings, scripts, styles and the default endpoint URLs. The caller
// sets ParentOrigin and ReturnURL from the session (and may clear ThemeURL).
func (a *Assets) NewPageData(assetBase, sessionID, locale string) PageData {
	lang, s := a.Strings(locale)
	sess := PagePathPrefix + url.PathEscape(sessionID)
	return PageData{
		SessionID: sessionID,
		Locale:    locale,
		Lang:      lang,
		SubmitURL: sess + "/submit",
		KeysURL:   KeysPath,
		ThemeURL:  sess + "/theme.css",
		Scripts:   a.PageScripts(assetBase),
		Styles:    a.PageStyles(assetBase),
		Strings:   s,
	}
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
