package backofficehttp

import (
	"crypto/sha512"
	"embed"
	"encoding/base64"
	"path"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/internal/apierr"
)

// The back office's stylesheet and script live here rather than in
// checkout/assets: checkout.Assets is the payment page's asset set, and its
// script inventory (PCI DSS 6.4.3) must list exactly the scripts a shopper's
// browser runs. The operator pages' script has no place in it.
//
//go:embed assets/*
var assetFS embed.FS

const styleFile = "backoffice.css"

// scriptFiles are the pages' scripts in load order: the WebCrypto/WebAuthn
// primitives, then the controllers that use them (the page inventory,
// PageInventory, lists them from here too).
var scriptFiles = []string{"bocrypto.js", "backoffice.js"}

type styleRef struct{ Href, Integrity string }
type scriptRef struct{ Src, Integrity string }

type assetFile struct {
	data        []byte
	contentType string
	integrity   string
}

type assetSet map[string]assetFile

func (a assetSet) sri(name string) string { return a[name].integrity }

// loadAssets reads and hashes the embedded files once; the result is never
// modified afterwards.
var loadAssets = sync.OnceValue(func() assetSet {
	out := assetSet{}
	for _, name := range append([]string{styleFile}, scriptFiles...) {
		data, err := assetFS.ReadFile("assets/" + name)
		if err != nil {
			panic("backoffice: embedded asset missing: " + name) // a build defect, caught by every test
		}
		sum := sha512.Sum384(data)
		ct := "text/css; charset=utf-8"
		if path.Ext(name) == ".js" {
			ct = "text/javascript; charset=utf-8"
		}
		out[name] = assetFile{data: data, contentType: ct, integrity: "sha384-" + base64.StdEncoding.EncodeToString(sum[:])}
	}
	return out
})

// serveAsset serves the back office's CSS and JS. They are public (the login
// page needs them) and immutable for a build; the SRI hash in the page pins
// the exact bytes.
func (h *Handler) serveAsset(c *fiber.Ctx) error {
	a, ok := loadAssets()[c.Params("name")]
	if !ok {
		return apierr.NotFound
	}
	c.Set(fiber.HeaderContentType, a.contentType)
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	c.Set("Cross-Origin-Resource-Policy", "same-origin")
	return c.Send(a.data)
}
