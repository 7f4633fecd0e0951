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
