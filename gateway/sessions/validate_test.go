package sessions

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestValidateOrigin(t *testing.T) {
	ok := map[string]string{
		"https://shop.example":           "https://shop.example",
		"HTTPS://Shop.EXAMPLE":           "https://shop.example",
		"https://shop.example/":          "https://shop.example",
		"https://shop.example:443":       "https://shop.example",
		"http://localhost:80":            "http://localhost",
		"http://127.1.2.3":               "http://127.1.2.3",
		"https://shop.example:8443":      "https://shop.example:8443",
		"http://localhost:3000":          "http://localhost:3000",
		"http://127.0.0.1:8080":          "http://127.0.0.1:8080",
		"http://[::1]:8080":              "http://[::1]:8080",
		"https://[2001:DB8::1]":          "https://[2001:db8::1]",
		"https://xn--bcher-kva.example":  "https://xn--bcher-kva.example",
		"https://a-b.c-d.example.co.uk/": "https://a-b.c-d.example.co.uk",
	}
	for in, want := range ok {
		got, err := ValidateOrigin(in)
		if err != nil || got != want {
			t.Errorf("ValidateOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"400/empty":        "",
		"400/null":         "null",
		"400/star":         "*",
		"400/no-scheme":    "shop.example",
		"400/ftp":          "ftp://shop.example",
		"400/javascript":   "javascript:alert(1)",
		"400/path":         "https://shop.example/checkout",
		"400/query":        "https://shop.example?x=1",
		"400/empty-query":  "https://shop.example/?",
		"400/fragment":     "https://shop.example#x",
		"400/userinfo":     "https://user:pw@shop.example",
		"400/at-in-host":   "https://shop.example@evil.example",
		"400/space":        "https://shop .example",
		"400/unicode":      "https://bücher.example",
		"400/backslash":    "https://shop.example\\@evil.example",
		"400/port-zero":    "https://shop.example:0",
		"400/port-big":     "https://shop.example:70000",
		"400/port-letters": "https://shop.example:80a",
		"400/bad-label":    "https://-shop.example",
		"400/empty-label":  "https://shop..example",
		"400/ipv4-bracket": "https://[127.0.0.1]",
		"400/bare-ipv6":    "https://::1",
		"400/no-host":      "https://",
		"400/opaque":       "https:shop.example",
		// Plain HTTP only for this machine: anyone on the path could
		// rewrite another origin's page and take the token.
		"400/http-remote-host":         "http://shop.example",
		"400/http-remote-ip":           "http://192.0.2.1:8080",
		"400/http-localhost-lookalike": "http://localhost.evil.example",
		"400/http-ipv6-not-loopback":   "http://[2001:db8::1]",
		"400/http-mapped-loopback":     "http://[::ffff:127.0.0.1]",
	}
	for name, in := range bad {
		if got, err := ValidateOrigin(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: ValidateOrigin(%q) = %q, %v", name, in, got, err)
		}
	}
}

func TestValidateReturnURL(t *testing.T) {
	allowed := []string{"https://shop.example", "http://localhost:3000", "http://127.0.0.1:8080", "http://plain.example"}
	ok := map[string]string{
		"https://shop.example/thanks?o=1#x":  "https://shop.example/thanks?o=1#x",
		"https://SHOP.example:443/thanks":    "https://shop.example/thanks",
		"http://localhost:3000/done":         "http://localhost:3000/done",
		"http://127.0.0.1:8080/":             "http://127.0.0.1:8080/",
		"https://shop.example":               "https://shop.example",
		"https://shop.example/a%20b?q=%2F&z": "https://shop.example/a%20b?q=%2F&z",
	}
	for in, want := range ok {
		got, err := ValidateReturnURL(in, allowed)
		if err != nil || got != want {
			t.Errorf("ValidateReturnURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"400/other-origin":       "https://evil.example/thanks",
		"400/subdomain":          "https://pay.shop.example/thanks",
		"400/other-port":         "https://shop.example:8443/thanks",
		"400/http-not-localhost": "http://plain.example/thanks",
		"400/http-for-https":     "http://shop.example/thanks",
		"400/localhost-no-port":  "http://localhost/done",
		"400/relative":           "/thanks",
		"400/card-number":        "https://shop.example/thanks?c=4242424242424242",
		"400/scheme-relative":    "//shop.example/thanks",
		"400/javascript":         "javascript:alert(document.domain)",
		"400/data":               "data:text/html,hi",
		"400/userinfo":           "https://shop.example@evil.example/",
		"400/backslash":          "https://shop.example\\evil.example/",
		"400/empty":              "",
		"400/long":               "https://shop.example/" + strings.Repeat("a", 2100),
	}
	for name, in := range bad {
		if got, err := ValidateReturnURL(in, allowed); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: ValidateReturnURL(%q) = %q, %v", name, in, got, err)
		}
	}
}

func TestAppearance(t *testing.T) {
	ok := []Appearance{
		{},
		{Primary: "#abc", Background: "#FFFFFF", Text: "#000", Font: "System-UI", Radius: "0"},
		{Radius: "32px"}, {Radius: "0px"}, {Font: "monospace"},
	}
	for _, a := range ok {
		if _, err := a.Normalize(); err != nil {
			t.Errorf("%+v: %v", a, err)
		}
	}
	bad := map[string]Appearance{
		"400/named-colour":   {Primary: "red"},
		"400/4-digit":        {Primary: "#abcd"},
		"400/no-hash":        {Background: "ffffff"},
		"400/css-escape":     {Text: "#fff}body{display:none"},
		"400/rgb-func":       {Text: "rgb(0,0,0)"},
		"400/font-free-text": {Font: "Arial; color: red"},
		"400/font-web":       {Font: "Roboto"},
		"400/radius-33":      {Radius: "33px"},
		"400/radius-em":      {Radius: "1em"},
		"400/radius-neg":     {Radius: "-1px"},
		"400/radius-leading": {Radius: "04px"},
		"400/radius-bare":    {Radius: "4"},
	}
	for name, a := range bad {
		if _, err := a.Normalize(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if d := (Appearance{Primary: "#123"}).WithDefaults(); d.Primary != "#123" || d.Font == "" || d.Radius == "" {
		t.Errorf("WithDefaults: %+v", d)
	}
	if _, err := DefaultAppearance().Normalize(); err != nil {
		t.Errorf("default appearance invalid: %v", err)
	}
}

func TestSessionLogValueOmitsToken(t *testing.T) {
	var buf strings.Builder
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "session", Session{MerchantID: "m_a", Token: "tok_secretsecret"})
	if strings.Contains(buf.String(), "tok_secretsecret") {
		t.Fatalf("token logged: %s", buf.String())
	}
}

func TestNewIDShape(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id, err := NewID()
		if err != nil || !ValidID(id) || seen[id] {
			t.Fatalf("NewID: %q %v", id, err)
		}
		seen[id] = true
	}
}
