package forward

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/keyservice/destinations"
	"github.com/blindgate/blindgate/keyservice/wire"
)

func TestTemplateFill(t *testing.T) {
	hostile := Values{Number: "4242424242424242", ExpMonth: 3, ExpYear: 2031,
		Name: "x\",\"amount\":1,\"y\":\"\\\u2028&amount=1=\r\n", CVC: "012", HasCVC: true}
	for _, tc := range []struct {
		name, ct, body string
		check          func(t *testing.T, out string)
	}{
		{"json/injection-escaped", wire.ContentTypeJSON, `{"name":"{{card.name}}","n":"{{card.number}}","m":{{card.exp_month}},"y":{{card.exp_year}},"c":"{{card.cvc}}"}`,
			func(t *testing.T, out string) {
				var m map[string]any
				if err := json.Unmarshal([]byte(out), &m); err != nil {
					t.Fatalf("not JSON: %v", err)
				}
				if m["name"] != hostile.Name || len(m) != 5 || m["m"] != float64(3) || m["c"] != "012" {
					t.Fatalf("got %v", m)
				}
			}},
		{"json/month-in-string-padded", wire.ContentTypeJSON, `{"m":"{{card.exp_month}}"}`,
			func(t *testing.T, out string) {
				if out != `{"m":"03"}` {
					t.Fatal(out)
				}
			}},
		{"form/injection-escaped", wire.ContentTypeForm, `card[name]={{card.name}}&card[number]={{card.number}}&card[exp_month]={{card.exp_month}}`,
			func(t *testing.T, out string) {
				q, err := url.ParseQuery(out)
				if err != nil || q.Get("card[name]") != hostile.Name || len(q) != 3 || q.Get("card[exp_month]") != "03" {
					t.Fatalf("got %v %v", q, err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := Parse(wire.ForwardTemplate{ContentType: tc.ct, Body: tc.body}, nil)
			if err != nil {
				t.Fatal(err)
			}
			out, err := tpl.Fill(hostile)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, string(out))
		})
	}
}

func TestTemplateRefused(t *testing.T) {
	for _, tc := range []struct {
		name, ct, body string
		headers        map[string]string
		want           error
	}{
		{"unknown-placeholder", wire.ContentTypeJSON, `{"a":"{{card.pin}}"}`, nil, ErrTemplate},
		{"spaces-in-placeholder", wire.ContentTypeJSON, `{"a":"{{ card.number }}"}`, nil, ErrTemplate},
		{"unterminated", wire.ContentTypeJSON, `{"a":"{{card.number"}`, nil, ErrTemplate},
		{"number-outside-string", wire.ContentTypeJSON, `{"a":{{card.number}}}`, nil, ErrTemplate},
		{"name-outside-string", wire.ContentTypeJSON, `{"a":{{card.name}}}`, nil, ErrTemplate},
		{"placeholder-in-key", wire.ContentTypeJSON, `{"{{card.number}}":1}`, nil, ErrTemplate},
		{"not-json", wire.ContentTypeJSON, `{"a":"{{card.number}}"`, nil, ErrTemplate},
		{"two-documents", wire.ContentTypeJSON, `{"a":"{{card.number}}"}{}`, nil, ErrTemplate},
		{"form-placeholder-in-name", wire.ContentTypeForm, `{{card.number}}=1`, nil, ErrTemplate},
		{"form-no-name", wire.ContentTypeForm, `a=1&=2`, nil, ErrTemplate},
		{"header-placeholder", wire.ContentTypeJSON, `{}`, map[string]string{"X-A": "{{card.number}}"}, ErrTemplate},
		{"header-crlf", wire.ContentTypeJSON, `{}`, map[string]string{"X-A": "a\r\nHost: evil"}, ErrTemplate},
		{"header-not-allowed", wire.ContentTypeJSON, `{}`, map[string]string{"Cookie": "a"}, ErrTemplate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(wire.ForwardTemplate{ContentType: tc.ct, Body: tc.body, Headers: tc.headers}, func(n string) bool { return n == "X-A" })
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v", err)
			}
		})
	}
	tpl, err := Parse(wire.ForwardTemplate{ContentType: wire.ContentTypeJSON, Body: `{"c":"{{card.cvc}}"}`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpl.Fill(Values{Number: "4242424242424242", ExpMonth: 1, ExpYear: 2030}); !errors.Is(err, ErrCVCMissing) {
		t.Fatalf("Fill without CVC = %v", err)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"n":"4242424242424242"}`, `{"n":"****************"}`},
		{`ref 0042424242424242424200`, `ref 00****************4200`}, // the forwarded PAN inside a longer run
		{`{"n":"5555 5555 5555 4444","amount":1234}`, `{"n":"**** **** **** ****","amount":1234}`},
		{`no card here 2024-01-15`, `no card here 2024-01-15`},
	} {
		if got := string(Redact([]byte(tc.in), "4242424242424242")); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzTemplate: Parse never panics; a template it accepts fills into a
// body of its content type whatever the card's name holds.
func FuzzTemplate(f *testing.F) {
	f.Add(`{"a":"{{card.number}}","m":{{card.exp_month}}}`, "x\"y", true)
	f.Add(`a={{card.name}}&b={{card.cvc}}`, "a&b=c", false)
	f.Add(`{"{{card.name}}":"{{`, "", true)
	f.Fuzz(func(t *testing.T, body, name string, isJSON bool) {
		ct := wire.ContentTypeForm
		if isJSON {
			ct = wire.ContentTypeJSON
		}
		tpl, err := Parse(wire.ForwardTemplate{ContentType: ct, Body: body}, nil)
		if err != nil {
			if !errors.Is(err, ErrTemplate) {
				t.Fatalf("Parse error %v is not ErrTemplate", err)
			}
			return
		}
		out, err := tpl.Fill(Values{Number: "4242424242424242", ExpMonth: 7, ExpYear: 2030, Name: name, CVC: "123", HasCVC: true})
		if err != nil {
			t.Fatal(err)
		}
		if isJSON && !json.Valid(out) {
			t.Fatalf("filled JSON invalid: %q", out)
		}
		if !isJSON {
			if _, err := url.ParseQuery(string(out)); err != nil {
				t.Fatalf("filled form invalid: %q", out)
			}
			if strings.Count(string(out), "&") != strings.Count(body, "&") {
				t.Fatalf("a value added a form field: %q", out)
			}
		}
	})
}

// TestCheckCardFields: placement by decoded field, for JSON paths and form
// keys, however the template spells the field.
func TestCheckCardFields(t *testing.T) {
	d, err := destinations.Compile(destinations.Destination{ID: "psp", URL: "https://psp.example/v1/pay", ExactPath: true, SystemRoots: true, Merchants: []string{"m_1"},
		CardFields: &destinations.CardFields{Places: map[string][]string{
			"card.number": {"pm.number", "card[number]"}, "card.exp_month": {"pm.month", "card[exp_month]"}, "card.cvc": {"card[cvc]"},
		}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ct, body string
		ok             bool
	}{
		{"json/ok", wire.ContentTypeJSON, `{"pm":{"number":"{{card.number}}","month":{{card.exp_month}}},"amount":1}`, true},
		{"json/no-placeholder", wire.ContentTypeJSON, `{"amount":1}`, true},
		{"json/escaped-member-name", wire.ContentTypeJSON, `{"pm":{"num\u0062er":"{{card.number}}"}}`, true},
		{"json/metadata", wire.ContentTypeJSON, `{"pm":{"number":"{{card.number}}"},"metadata":{"pm":"{{card.number}}"}}`, false},
		{"json/longer-string", wire.ContentTypeJSON, `{"pm":{"number":"{{card.number}} "}}`, false},
		{"json/two-in-one", wire.ContentTypeJSON, `{"pm":{"number":"{{card.number}}{{card.number}}"}}`, false},
		{"json/not-listed-placeholder", wire.ContentTypeJSON, `{"pm":{"number":"{{card.name}}"}}`, false},
		{"json/top-level-string", wire.ContentTypeJSON, `"{{card.number}}"`, false},
		{"json/escape-eats-placeholder", wire.ContentTypeJSON, `{"pm":{"number":"\u00{{card.number}}"}}`, false},
		{"form/ok", wire.ContentTypeForm, `type=card&card[number]={{card.number}}&card[exp_month]={{card.exp_month}}&card[cvc]={{card.cvc}}`, true},
		{"form/encoded-key", wire.ContentTypeForm, `card%5Bnumber%5D={{card.number}}`, true},
		{"form/metadata", wire.ContentTypeForm, `card[number]={{card.number}}&metadata[n]={{card.number}}`, false},
		{"form/description", wire.ContentTypeForm, `description={{card.number}}`, false},
		{"form/longer-value", wire.ContentTypeForm, `card[number]=x{{card.number}}`, false},
		{"form/json-path-as-key", wire.ContentTypeForm, `card[cvc]={{card.number}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := Parse(wire.ForwardTemplate{ContentType: tc.ct, Body: tc.body}, nil)
			if err == nil {
				err = tpl.CheckCardFields(d)
			}
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrTemplate) {
				t.Fatalf("CheckCardFields = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
