package backofficehttp

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/checkout"
)

// pageHeaders are set on every page, errors included (page), and listed in
// the page inventory.
func pageHeaders() [][2]string {
	return [][2]string{
		{fiber.HeaderContentSecurityPolicy, pageCSP},
		{fiber.HeaderXFrameOptions, "DENY"},
		// Nothing of the back office may be stored by the browser or a proxy:
		// masked card data, audit lines, and above all a revealed number.
		{fiber.HeaderCacheControl, "no-store"},
		{fiber.HeaderPragma, "no-cache"},
	}
}

// PageInventory is the back office's part of the payment-page inventory
// (PCI DSS 11.6.1, gateway/web.PageInventory): its login page, the one a
// monitor can fetch without signing in. Every page is rendered with the same
// layout data (base) and headers (pageHeaders), so the login page's scripts
// and headers are every page's, and this list follows any change to them.
func PageInventory() []checkout.Page {
	b := (&Handler{}).base(context.Background(), "", "", nil)
	scripts := make([]checkout.Script, 0, len(b.Scripts))
	for _, s := range b.Scripts {
		scripts = append(scripts, checkout.Script{Src: s.Src, Integrity: s.Integrity})
	}
	headers := map[string]string{}
	for _, hv := range pageHeaders() {
		headers[hv[0]] = hv[1]
	}
	return []checkout.Page{{Name: "back-office login", Path: Prefix + "/login", Scripts: scripts, Headers: headers}}
}
