package destinations

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCompileRules(t *testing.T) {
	ok := Destination{ID: "psp", URL: "https://psp.example/v1", SystemRoots: true, Merchants: []string{"m_1"}, RequestHeaders: []string{"X-API-Key"}}
	for _, tc := range []struct {
		name string
		edit func(d *Destination)
		ok   bool
	}{
		{"ok", func(*Destination) {}, true},
		{"invalid/http", func(d *Destination) { d.URL = "http://psp.example/v1" }, false},
		{"invalid/userinfo", func(d *Destination) { d.URL = "https://u:p@psp.example/v1" }, false},
		{"invalid/query", func(d *Destination) { d.URL = "https://psp.example/v1?a=1" }, false},
		{"invalid/dotdot", func(d *Destination) { d.URL = "https://psp.example/v1/../admin" }, false},
		{"invalid/no-trust", func(d *Destination) { d.SystemRoots = false }, false},
		{"invalid/no-merchants", func(d *Destination) { d.Merchants = nil }, false},
		{"invalid/bad-merchant", func(d *Destination) { d.Merchants = []string{"m 1"} }, false},
		{"invalid/host-header", func(d *Destination) { d.RequestHeaders = []string{"Host"} }, false},
		{"invalid/content-length", func(d *Destination) { d.RequestHeaders = []string{"content-length"} }, false},
		{"invalid/method", func(d *Destination) { d.Method = "GET" }, false},
		{"invalid/pin", func(d *Destination) { d.PinSHA256 = []string{"abc"} }, false},
		{"invalid/cert-without-key", func(d *Destination) { d.ClientCertFile = "c.pem" }, false},
		{"invalid/allow-private", func(d *Destination) { d.AllowPrivate = []string{"10.0.0.1"} }, false},
		{"invalid/timeout", func(d *Destination) { d.TimeoutMS = 10 * 60 * 1000 }, false},
		{"invalid/url-and-key", func(d *Destination) { d.ProcessorKey = []byte(`{}`) }, false},
		{"card-fields/ok", func(d *Destination) {
			d.CardFields = &CardFields{Places: map[string][]string{"card.number": {"pm.number", "card[number]"}}}
		}, true},
		{"card-fields/any", func(d *Destination) { d.CardFields = &CardFields{Any: true} }, true},
		{"invalid/card-fields-empty", func(d *Destination) { d.CardFields = &CardFields{} }, false},
		{"invalid/card-fields-unknown-placeholder", func(d *Destination) { d.CardFields = &CardFields{Places: map[string][]string{"card.pin": {"pin"}}} }, false},
		{"invalid/card-fields-braces", func(d *Destination) {
			d.CardFields = &CardFields{Places: map[string][]string{"{{card.number}}": {"n"}}}
		}, false},
		{"invalid/card-fields-no-place", func(d *Destination) { d.CardFields = &CardFields{Places: map[string][]string{"card.number": {}}} }, false},
		{"invalid/card-fields-empty-place", func(d *Destination) { d.CardFields = &CardFields{Places: map[string][]string{"card.number": {""}}} }, false},
		{"invalid/card-fields-empty-segment", func(d *Destination) {
			d.CardFields = &CardFields{Places: map[string][]string{"card.number": {"pm..number"}}}
		}, false},
		{"invalid/card-fields-control", func(d *Destination) {
			d.CardFields = &CardFields{Places: map[string][]string{"card.number": {"pm\nnumber"}}}
		}, false},
		{"invalid/card-fields-any-and-places", func(d *Destination) {
			d.CardFields = &CardFields{Any: true, Places: map[string][]string{"card.number": {"n"}}}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := ok
			tc.edit(&d)
			_, err := Compile(d, "")
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Compile = %v", err)
			}
		})
	}
}

// TestCardFieldsFile: card_fields is "any" or an object in the file, and
// survives a save.
func TestCardFieldsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "destinations.json")
	for _, tc := range []struct {
		cf string
		ok bool
	}{
		{`"any"`, true},
		{`{"card.number":["paymentMethod.number"],"card.cvc":["paymentMethod.cvc"]}`, true},
		{`"all"`, false},
		{`["card.number"]`, false},
		{`{"card.number":"paymentMethod.number"}`, false},
		{`{"card.expiry":["exp"]}`, false},
	} {
		doc := `{"destinations":[{"id":"psp","url":"https://psp.example/v1/pay","exact_path":true,"system_roots":true,"merchants":["m_1"],"card_fields":` + tc.cf + `}]}`
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Load(file)
		if tc.ok != (err == nil) {
			t.Fatalf("Load(%s) = %v", tc.cf, err)
		}
		if err != nil {
			continue
		}
		c, _ := l.Lookup("psp")
		if isAny := tc.cf == `"any"`; c.AnyCardField() != isAny || !isAny && (!c.AllowsCardField("card.number", "paymentMethod.number") || c.AllowsCardField("card.number", "paymentMethod.cvc") || c.AllowsCardField("card.name", "paymentMethod.number")) {
			t.Fatalf("%s: compiled %+v", tc.cf, c.CardFields)
		}
		if err := l.Save(file); err != nil {
			t.Fatal(err)
		}
		if again, err := Load(file); err != nil || again.All()[0].AnyCardField() != c.AnyCardField() || !again.All()[0].ExactPath {
			t.Fatalf("reload after save: %v", err)
		}
	}
}

func TestURLFor(t *testing.T) {
	c, err := Compile(Destination{ID: "psp", URL: "https://psp.example:8443/v1", SystemRoots: true, Merchants: []string{"m_1"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := c.URLFor("/payments"); err != nil || u != "https://psp.example:8443/v1/payments" {
		t.Fatalf("URLFor = %q, %v", u, err)
	}
	for _, bad := range []string{"payments", "/../x", "//evil.example/x", "/a?b=1", "/a#b", "/%2e%2e", "/a/./b", "/@evil"} {
		if _, err := c.URLFor(bad); err == nil {
			t.Errorf("URLFor(%q) accepted", bad)
		}
	}
	// exact_path: the URL is the endpoint, no suffix at all.
	exact, err := Compile(Destination{ID: "pay", URL: "https://psp.example/v1/payments", ExactPath: true, SystemRoots: true, Merchants: []string{"m_1"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := exact.URLFor(""); err != nil || u != "https://psp.example:443/v1/payments" {
		t.Fatalf("URLFor exact = %q, %v", u, err)
	}
	for _, suffix := range []string{"/refunds", "/x"} {
		if _, err := exact.URLFor(suffix); !errors.Is(err, ErrInvalid) {
			t.Errorf("exact URLFor(%q) = %v", suffix, err)
		}
	}
}

func TestSaveLoadReload(t *testing.T) {
	file := filepath.Join(t.TempDir(), "destinations.json")
	l := New(filepath.Dir(file))
	if err := l.Add(Destination{ID: "psp", URL: "https://psp.example/v1", SystemRoots: true, Merchants: []string{"m_1"}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Add(Destination{ID: "psp", URL: "https://other.example/", SystemRoots: true, Merchants: []string{"m_1"}}); err == nil {
		t.Fatal("an id was replaced")
	}
	if err := l.Save(file); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := loaded.Lookup("psp"); err != nil || !c.AllowsMerchant("m_1") || c.AllowsMerchant("m_2") {
		t.Fatalf("Lookup = %v, %v", c, err)
	}
	// A bad file never replaces a good list.
	if err := os.WriteFile(file, []byte(`{"destinations":[{"id":"x","url":"http://a/"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loaded.ReloadIfChanged(file); err == nil {
		t.Fatal("bad file accepted")
	}
	if _, err := loaded.Lookup("psp"); err != nil {
		t.Fatal("bad file emptied the list")
	}
	if err := l.Remove("psp"); err != nil || l.Save(file) != nil {
		t.Fatal(err)
	}
	if changed, err := loaded.ReloadIfChanged(file); !changed || err != nil {
		t.Fatalf("reload = %v, %v", changed, err)
	}
	if _, err := loaded.Lookup("psp"); !errors.Is(err, ErrUnknown) {
		t.Fatal("removed destination still listed")
	}
}
