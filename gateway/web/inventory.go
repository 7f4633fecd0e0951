package web

import (
	"maps"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/gateway/web/backofficehttp"
)

// baseHeaderValues are the headers of every answer (baseHeaders), and so of
// every page in the inventory. HSTS only over TLS: a browser ignores it on
// plain HTTP, and a development server must not pin a host to HTTPS.
func baseHeaderValues(tls bool) [][2]string {
	h := [][2]string{
		{"X-Content-Type-Options", "nosniff"},
		{"Referrer-Policy", "no-referrer"},
		{"Cross-Origin-Opener-Policy", "same-origin"},
	}
	if tls {
		h = append(h, [2]string{"Strict-Transport-Security", "max-age=63072000; includeSubDomains"})
	}
	return h
}

// PageInventory is the expected state of every payment page this gateway
// serves (PCI DSS 11.6.1): the checkout page and the back office's, each with
// its scripts and SRI hashes and its security headers, and the merchant embed
// script. It is built from what the pages are rendered from, so it changes
// with them; `blindgate monitor-pages` compares a live gateway with it. tls
// says whether the gateway is served over HTTPS (Config.TLS), which adds HSTS.
func PageInventory(a *checkout.Assets, tls bool) checkout.Inventory {
	pages := append([]checkout.Page{a.CheckoutPage(checkout.DefaultAssetBase)}, backofficehttp.PageInventory()...)
	for i := range pages {
		h := maps.Clone(pages[i].Headers)
		if h == nil {
			h = map[string]string{}
		}
		for _, hv := range baseHeaderValues(tls) {
			if _, set := h[hv[0]]; !set { // a page's own value is the one sent
				h[hv[0]] = hv[1]
			}
		}
		pages[i].Headers = h
	}
	return checkout.Inventory{Pages: pages, Files: []checkout.Script{a.EmbedFile()}}
}
