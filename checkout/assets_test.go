package checkout_test

import (
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/checkout"
)

func newAssets(t testing.TB) *checkout.Assets {
	t.Helper()
	a, err := checkout.NewAssets()
	if err != nil {
		t.Fatalf("NewAssets: %v", err)
	}
	return a
}

func TestAssetsIntegrity(t *testing.T) {
	a := newAssets(t)
	n := 0
	err := fs.WalkDir(checkout.FS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		name := strings.TrimPrefix(p, "assets/")
		raw, _ := checkout.FS.ReadFile(p)
		data, ct, ok := a.Asset(name)
		if !ok || string(data) != string(raw) {
			t.Errorf("Asset(%q) does not serve the embedded bytes", name)
		}
		if ct == "" {
			t.Errorf("Asset(%q) has no content type", name)
		}
		sum := sha512.Sum384(raw)
		if want := "sha384-" + base64.StdEncoding.EncodeToString(sum[:]); a.SRI(name) != want {
			t.Errorf("SRI(%q) = %q, want %q", name, a.SRI(name), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(a.Names()) {
		t.Errorf("%d embedded files, Names lists %d", n, len(a.Names()))
	}
	if _, _, ok := a.Asset("../assets.go"); ok {
		t.Error("Asset serves a file outside the asset tree")
	}
	if a.SRI("nope.js") != "" {
		t.Error("SRI of an unknown asset is not empty")
	}
	for _, name := range []string{"brands/visa.svg", "brands/unknown.svg", checkout.StyleCheckout} {
		if _, _, ok := a.Asset(name); !ok {
			t.Errorf("asset %s missing", name)
		}
	}
}

func TestInventory(t *testing.T) {
	a := newAssets(t)
	inv := a.Inventory()
	want := []string{checkout.ScriptI18n, checkout.ScriptCard, checkout.ScriptJWE, checkout.ScriptCheckout, checkout.ScriptEmbed}
	if len(inv) != len(want) {
		t.Fatalf("inventory has %d scripts, want %d", len(inv), len(want))
	}
	for i, s := range inv {
		if s.Name != want[i] {
			t.Errorf("inventory[%d] = %s, want %s", i, s.Name, want[i])
		}
		if s.Purpose == "" || s.LoadedBy == "" || s.Integrity != a.SRI(s.Name) || len(s.SHA256) != 64 || s.Size == 0 {
			t.Errorf("inventory entry incomplete: %+v", s)
		}
	}
	// Every script the page loads is in the inventory, in the same order.
	for i, s := range a.PageScripts("/x/") {
		if s.Src != "/x/"+inv[i].Name || s.Integrity != inv[i].Integrity {
			t.Errorf("page script %d = %+v, want %s", i, s, inv[i].Name)
		}
	}
}

func TestLang(t *testing.T) {
	a := newAssets(t)
	tests := []struct{ locale, want string }{
		{"fr-CA", "fr"}, {"FR", "fr"}, {"de_DE", "de"}, {"de-AT", "de"},
		{"en-GB", "en"}, {"", "en"}, {"es-ES", "en"}, {"french", "en"},
	}
	for _, tc := range tests {
		if got := a.Lang(tc.locale); got != tc.want {
			t.Errorf("Lang(%q) = %q, want %q", tc.locale, got, tc.want)
		}
	}
	if got := strings.Join(a.Languages(), ","); got != "de,en,fr" {
		t.Errorf("Languages = %s", got)
	}
}

func TestStringsAreCopies(t *testing.T) {
	a := newAssets(t)
	_, s := a.Strings("en")
	s["submit_save"] = "changed"
	if _, again := a.Strings("en"); again["submit_save"] == "changed" {
		t.Fatal("Strings returned the shared map")
	}
}

func TestValidOrigin(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"https://shop.example", true},
		{"http://localhost:8080", true},
		{"https://shop.example/", false},
		{"https://shop.example/path", false},
		{"https://user@shop.example", false},
		{"ftp://shop.example", false},
		{"shop.example", false},
		{"*", false},
		{"https://shop.example; script-src *", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := checkout.ValidOrigin(tc.in); got != tc.want {
			t.Errorf("ValidOrigin(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestPageCSP(t *testing.T) {
	tests := []struct {
		name, parents, wantAncestors string
	}{
		{"none", "", "frame-ancestors 'none';"},
		{"one", "https://shop.example", "frame-ancestors https://shop.example;"},
		{"two", "https://a.example  https://b.example", "frame-ancestors https://a.example https://b.example;"},
		{"invalid-dropped", "https://a.example * https://b.example/x script-src", "frame-ancestors https://a.example;"},
		{"injection-dropped", "https://a.example;script-src", "frame-ancestors 'none';"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			csp := checkout.PageCSP(tc.parents)
			if !strings.Contains(csp, tc.wantAncestors) {
				t.Errorf("CSP %q lacks %q", csp, tc.wantAncestors)
			}
			for _, d := range []string{"script-src 'self';", "style-src 'self';", "form-action 'none';", "default-src 'none';"} {
				if !strings.Contains(csp, d) {
					t.Errorf("CSP lacks %q", d)
				}
			}
			if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") {
				t.Errorf("CSP has a wildcard or unsafe source: %q", csp)
			}
		})
	}
}

func TestTheme(t *testing.T) {
	tests := []struct {
		name    string
		theme   checkout.Theme
		wantErr bool
		want    []string
	}{
		{"ok/full", checkout.Theme{Primary: "#0a7d5a", Background: "#fff", Text: "#111111", Radius: "8px", Font: "serif"}, false,
			[]string{"--bg-primary: #0a7d5a;", "--bg-background: #fff;", "--bg-text: #111111;", "--bg-radius: 8px;", "--bg-font: Georgia"}},
		{"ok/empty", checkout.Theme{}, false, []string{":root {\n}"}},
		{"ok/square", checkout.Theme{Radius: "0px"}, false, []string{"--bg-radius: 0px;"}},
		{"invalid/colour-injection", checkout.Theme{Primary: "red;} body{background:url(https://evil.example/x)"}, true, nil},
		{"invalid/colour-name", checkout.Theme{Text: "red"}, true, nil},
		{"invalid/radius", checkout.Theme{Radius: "25px"}, true, nil},
		{"invalid/radius-unit", checkout.Theme{Radius: "1em"}, true, nil},
		{"invalid/font", checkout.Theme{Font: "Comic Sans"}, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			css, err := tc.theme.CSS()
			if tc.wantErr {
				if !errors.Is(err, checkout.ErrTheme) {
					t.Fatalf("CSS() error = %v, want ErrTheme", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CSS(): %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(css), w) {
					t.Errorf("CSS %q lacks %q", css, w)
				}
			}
		})
	}
}

func TestNewPageData(t *testing.T) {
	a := newAssets(t)
	pd := a.NewPageData("/static", "cs_a/b", "fr-FR")
	if pd.Lang != "fr" || pd.Strings["submit_save"] != "Enregistrer la carte" {
		t.Errorf("lang/strings = %s/%q", pd.Lang, pd.Strings["submit_save"])
	}
	if pd.SubmitURL != "/checkout/cs_a%2Fb/submit" || pd.KeysURL != "/v1/keys" || pd.ThemeURL != "/checkout/cs_a%2Fb/theme.css" {
		t.Errorf("urls = %s %s %s", pd.SubmitURL, pd.KeysURL, pd.ThemeURL)
	}
	if len(pd.Scripts) != 4 || pd.Scripts[0].Src != "/static/i18n.js" || len(pd.Styles) != 1 {
		t.Errorf("scripts/styles = %+v %+v", pd.Scripts, pd.Styles)
	}
}

// TestLocaleLanguage: the session API's locale rule. A regional locale is
// shown in its language; an unshipped language or a malformed tag is refused.
func TestLocaleLanguage(t *testing.T) {
	tests := []struct {
		locale, want string
		ok           bool
	}{
		{"en", "en", true}, {"fr", "fr", true}, {"de", "de", true},
		{"de-DE", "de", true}, {"fr-FR", "fr", true}, {"fr_CA", "fr", true}, {"DE-at", "de", true},
		{"de-Latn-CH", "de", true}, {"en-419", "en", true},
		{"", "", false}, {"es", "", false}, {"es-ES", "", false}, {"german", "", false},
		{"d", "", false}, {"de-", "", false}, {"-de", "", false}, {"de--DE", "", false},
		{"de-DEUTSCHLAND", "", false}, {"de DE", "", false}, {"dé", "", false},
		{"de-\"><script>", "", false}, {strings.Repeat("de-", 20) + "de", "", false},
	}
	for _, tc := range tests {
		got, ok := checkout.LocaleLanguage(tc.locale)
		if got != tc.want || ok != tc.ok {
			t.Errorf("LocaleLanguage(%q) = %q, %v; want %q, %v", tc.locale, got, ok, tc.want, tc.ok)
		}
	}
}

// TestLanguagesAreTheStringTable: the package's language list is i18n.js's,
// the same one the page renders from.
func TestLanguagesAreTheStringTable(t *testing.T) {
	a := newAssets(t)
	if got, want := strings.Join(checkout.Languages(), ","), strings.Join(a.Languages(), ","); got != want || got == "" {
		t.Fatalf("Languages() = %q, string table has %q", got, want)
	}
	for _, l := range checkout.Languages() {
		if got, ok := checkout.LocaleLanguage(l); !ok || got != l {
			t.Errorf("shipped language %q refused", l)
		}
		if a.Lang(l) != l {
			t.Errorf("page shows %q in %q", l, a.Lang(l))
		}
	}
}
