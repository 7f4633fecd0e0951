// Package checkout holds the browser side of the hosted checkout: the page
// controller, the WebCrypto JWE builder, the card-field rules, the merchant
// embed script, styles and brand icons, all embedded in the binary. It computes
// the Subresource Integrity hash of every asset once, lists the scripts for the
// PCI DSS 6.4.3 payment-page inventory, and builds the data the checkout
// template needs. It never sees a card number: the card is encrypted in the
// shopper's browser.
package checkout

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
)

// FS holds the browser assets under "assets/". Serve them through Assets, which
// knows their content types and integrity hashes.
//
//go:embed assets/*
var FS embed.FS

// ErrAssets reports an embedded asset tree that cannot be served safely (an
// unknown file type, a script missing from the inventory, a broken string table).
var ErrAssets = errors.New("checkout: bad embedded assets")

// Script names, relative to the asset root.
const (
	ScriptI18n     = "i18n.js"
	ScriptCard     = "card.js"
	ScriptJWE      = "jwe.js"
	ScriptCheckout = "checkout.js"
	ScriptEmbed    = "embed.js"
	StyleCheckout  = "checkout.css"
)

// pageScripts are the scripts of the checkout page in load order (all defer,
// so they run in this order): each later one uses the namespaces of the earlier.
func pageScripts() []string {
	return []string{ScriptI18n, ScriptCard, ScriptJWE, ScriptCheckout}
}

// scriptPurpose is the PCI DSS 6.4.3 justification of each script. NewAssets
// refuses a script without one, so nothing ships that the inventory omits.
func scriptPurpose(name string) (purpose, loadedBy string, ok bool) {
	switch name {
	case ScriptI18n:
		return "Localized labels and messages of the checkout page (" + strings.Join(Languages(), ", ") + ").", "checkout page", true
	case ScriptCard:
		return "Card field rules: brand detection, spacing, Luhn, expiry and CVC checks; keeps and sends nothing.", "checkout page", true
	case ScriptJWE:
		return "Encrypts the card and CVC as compact JWE (RSA-OAEP-256 or ECDH-ES+A256KW, A256GCM) with WebCrypto.", "checkout page", true
	case ScriptCheckout:
		return "Checkout page controller: field UX, validation, fetches the public KEKs, posts only ciphertext, returns the token.", "checkout page", true
	case ScriptEmbed:
		return "Merchant embed script: mounts the hosted checkout in an iframe and receives the token by postMessage from the gateway origin only.", "merchant page", true
	}
	return "", "", false
}

// ScriptInfo is one line of the payment-page script inventory.
type ScriptInfo struct {
	Name      string `json:"name"`
	LoadedBy  string `json:"loaded_by"`
	Purpose   string `json:"purpose"`
	Integrity string `json:"integrity"` // SRI value: "sha384-<base64>"
	SHA256    string `json:"sha256"`    // hex, for change detection and review records
	Size      int    `json:"size"`
}

// Script is a <script> element of the page.
type Script struct {
	Src       string `json:"src"`
	Integrity string `json:"integrity"` // SRI value; "" for a script tag without one
}

// Style is a <link rel="stylesheet"> element of the page.
type Style struct {
	Href      string
	Integrity string
}

type asset struct {
	data        []byte
	contentType string
	integrity   string
	sha256      string
}

// Assets serves the embedded files. It is read-only after NewAssets and safe for
// concurrent use.
type Assets struct {
	files   map[string]asset
	strings map[string]map[string]string
	codes   map[string]string // error code -> message key, from checkout.js
}

// NewAssets reads the embedded tree, hashes every file and parses the string
// table shared with i18n.js.
func NewAssets() (*Assets, error) {
	a := &Assets{files: make(map[string]asset)}
	err := fs.WalkDir(FS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		ct, ok := contentType(name)
		if !ok {
			return fmt.Errorf("%w: %s has no known content type", ErrAssets, name)
		}
		if strings.HasSuffix(name, ".js") {
			if _, _, ok := scriptPurpose(name); !ok {
				return fmt.Errorf("%w: script %s is not in the inventory", ErrAssets, name)
			}
		}
		data, err := FS.ReadFile(p)
		if err != nil {
			return fmt.Errorf("checkout: read %s: %w", name, err)
		}
		s384 := sha512.Sum384(data)
		s256 := sha256.Sum256(data)
		a.files[name] = asset{
			data:        data,
			contentType: ct,
			integrity:   "sha384-" + base64.StdEncoding.EncodeToString(s384[:]),
			sha256:      hex.EncodeToString(s256[:]),
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, name := range append(pageScripts(), ScriptEmbed, StyleCheckout) {
		if _, ok := a.files[name]; !ok {
			return nil, fmt.Errorf("%w: %s missing", ErrAssets, name)
		}
	}
	a.strings, err = parseStrings(a.files[ScriptI18n].data)
	if err != nil {
		return nil, err
	}
	a.codes, err = parseCodes(a.files[ScriptCheckout].data, a.strings[fallbackLang])
	if err != nil {
		return nil, err
	}
	return a, nil
}

func contentType(name string) (string, bool) {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8", true
	case ".css":
		return "text/css; charset=utf-8", true
	case ".svg":
		return "image/svg+xml", true
	}
	return "", false
}

// Asset returns a file by its name under the asset root ("checkout.js",
// "brands/visa.svg"). The bytes are shared: do not modify them.
func (a *Assets) Asset(name string) (data []byte, contentType string, ok bool) {
	f, ok := a.files[name]
	if !ok {
		return nil, "", false
	}
	return f.data, f.contentType, true
}

// SRI returns the integrity attribute value of an asset, or "" if unknown.
func (a *Assets) SRI(name string) string {
	return a.files[name].integrity
}

// Names lists every asset name, sorted.
func (a *Assets) Names() []string {
	return slices.Sorted(maps.Keys(a.files))
}

// Inventory lists every script with its hash and purpose (PCI DSS 6.4.3),
// page scripts first in load order, then the merchant embed script.
func (a *Assets) Inventory() []ScriptInfo {
	names := append(pageScripts(), ScriptEmbed)
	for _, n := range a.Names() {
		if strings.HasSuffix(n, ".js") && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	out := make([]ScriptInfo, 0, len(names))
	for _, n := range names {
		f := a.files[n]
		purpose, by, _ := scriptPurpose(n)
		out = append(out, ScriptInfo{Name: n, LoadedBy: by, Purpose: purpose,
			Integrity: f.integrity, SHA256: f.sha256, Size: len(f.data)})
	}
	return out
}

// PageScripts returns the checkout page's <script> list, base being the URL
// path under which the gateway serves Asset (e.g. DefaultAssetBase).
func (a *Assets) PageScripts(base string) []Script {
	names := pageScripts()
	out := make([]Script, 0, len(names))
	for _, n := range names {
		out = append(out, Script{Src: joinBase(base, n), Integrity: a.SRI(n)})
	}
	return out
}

// PageStyles returns the checkout page's stylesheet list (without the theme).
func (a *Assets) PageStyles(base string) []Style {
	return []Style{{Href: joinBase(base, StyleCheckout), Integrity: a.SRI(StyleCheckout)}}
}

func joinBase(base, name string) string {
	return strings.TrimSuffix(base, "/") + "/" + name
}

const (
	stringsBegin = "/*BEGIN-STRINGS*/"
	stringsEnd   = "/*END-STRINGS*/"
	fallbackLang = "en"
)

// parseStrings reads the JSON dictionary between the markers of i18n.js, so the
// server renders the same labels the script uses.
func parseStrings(js []byte) (map[string]map[string]string, error) {
	body, err := between(js, stringsBegin, stringsEnd, ScriptI18n)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var m map[string]map[string]string
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: i18n.js strings: %w", ErrAssets, err)
	}
	en, ok := m[fallbackLang]
	if !ok {
		return nil, fmt.Errorf("%w: i18n.js has no %q strings", ErrAssets, fallbackLang)
	}
	for lang, dict := range m {
		for k := range en {
			if _, ok := dict[k]; !ok {
				return nil, fmt.Errorf("%w: i18n.js %s lacks %q", ErrAssets, lang, k)
			}
		}
		if len(dict) != len(en) {
			return nil, fmt.Errorf("%w: i18n.js %s has keys that %s lacks", ErrAssets, lang, fallbackLang)
		}
	}
	return m, nil
}

const (
	codesBegin = "/*BEGIN-CODES*/"
	codesEnd   = "/*END-CODES*/"
)

// parseCodes reads checkout.js's table of error codes and the message each
// shows, and refuses a message that the string table lacks (parseStrings has
// checked that every language has every key of en).
func parseCodes(js []byte, en map[string]string) (map[string]string, error) {
	body, err := between(js, codesBegin, codesEnd, ScriptCheckout)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var m map[string]string
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: checkout.js codes: %w", ErrAssets, err)
	}
	for code, key := range m {
		if _, ok := en[key]; !ok {
			return nil, fmt.Errorf("%w: checkout.js maps %q to %q, which i18n.js lacks", ErrAssets, code, key)
		}
	}
	return m, nil
}

func between(js []byte, begin, end, name string) ([]byte, error) {
	_, rest, ok := bytes.Cut(js, []byte(begin))
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %s marker", ErrAssets, name, begin)
	}
	body, _, ok := bytes.Cut(rest, []byte(end))
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %s marker", ErrAssets, name, end)
	}
	return body, nil
}

// CodeMessages returns a copy of the page's table of server error codes and
// the string key of the message each shows.
func (a *Assets) CodeMessages() map[string]string {
	return maps.Clone(a.codes)
}

// Languages lists the languages of the string table, sorted.
func (a *Assets) Languages() []string {
	return slices.Sorted(maps.Keys(a.strings))
}

// Lang maps a session locale ("fr-CA", "de_DE", "EN") to a language of the
// string table, as LocaleLanguage does, falling back to English for anything
// else (as BlindgateI18n.pick does): the session API refuses such locales, but
// the page must still render for a session stored before a language was
// dropped.
func (a *Assets) Lang(locale string) string {
	primary, ok := primaryLanguage(locale)
	if !ok {
		return fallbackLang
	}
	if _, ok := a.strings[primary]; ok {
		return primary
	}
	return fallbackLang
}

// Strings returns the chosen language and a copy of its strings.
func (a *Assets) Strings(locale string) (lang string, s map[string]string) {
	lang = a.Lang(locale)
	return lang, maps.Clone(a.strings[lang])
}
