package checkout

// The payment-page inventory (PCI DSS 11.6.1): what each page must look like
// to a browser, so a monitor outside the gateway can fetch the live page and
// report any change to its scripts or security headers. The checkout page's
// part is built here from the same data the page is rendered from; the
// gateway adds the headers it sets on every answer and the back office's
// pages (gateway/web.PageInventory), and a deployment may pin its own copy as
// JSON (`blindgate monitor-pages -print-inventory`).

// SessionOrigins stands for a checkout session's allowed origins in the
// checkout page's expected frame-ancestors: they differ per session, so the
// monitor puts in the origins of the session it checks.
const SessionOrigins = "{session-origins}"

// SessionPath stands for the session id in a page's Path.
const SessionPath = "{session}"

// Page is one payment page as the browser receives it.
type Page struct {
	Name string `json:"name"` // for people: "checkout page", "back-office login"
	// Path is the page's URL path; SessionPath in it is a checkout session
	// id, so a monitor needs a live session to fetch it.
	Path string `json:"path"`
	// Scripts are every <script> element of the page, in document order,
	// with the src and integrity attributes it carries. The page has no
	// inline script and no inline event handler.
	Scripts []Script `json:"scripts"`
	// Headers are the expected values of the page's security headers; a
	// header the monitor watches that is not listed here must be absent.
	Headers map[string]string `json:"headers"`
}

// Inventory is every payment page, and every script served for other sites'
// pages, as the deployment should serve them.
type Inventory struct {
	Pages []Page `json:"pages"`
	// Files are scripts loaded by pages that are not ours (the merchant's
	// embed.js): their served bytes must hash to Integrity, which the
	// merchant's script tag pins.
	Files []Script `json:"files"`
}

// CheckoutPage is the checkout page's part of the inventory: its scripts in
// load order with their SRI hashes, as served under assetBase (e.g.
// DefaultAssetBase), and the headers the page itself sets. frame-ancestors
// is SessionOrigins; the gateway adds its own headers.
func (a *Assets) CheckoutPage(assetBase string) Page {
	return Page{
		Name:    "checkout page",
		Path:    PagePathPrefix + SessionPath,
		Scripts: a.PageScripts(assetBase),
		Headers: map[string]string{
			"Content-Security-Policy": pageCSP(SessionOrigins),
			"Cache-Control":           "no-store",
		},
	}
}

// EmbedFile is the merchant embed script as the inventory lists it: served
// at EmbedPath, its bytes hashing to its SRI.
func (a *Assets) EmbedFile() Script {
	return Script{Src: EmbedPath, Integrity: a.SRI(ScriptEmbed)}
}
