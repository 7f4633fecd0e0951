package forward

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/keyservice/destinations"
	"github.com/blindgate/blindgate/keyservice/wire"
)

func TestPresetsParseAndFill(t *testing.T) {
	ps, err := Presets()
	if err != nil || len(ps) < 3 {
		t.Fatalf("Presets = %d, %v", len(ps), err)
	}
	for _, p := range ps {
		t.Run(p.Name, func(t *testing.T) {
			d, err := destinationsCompile(p)
			if err != nil {
				t.Fatal(err)
			}
			tpl, err := Parse(p.Template, d.AllowsRequestHeader)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.URLFor(tpl.Path()); err != nil {
				t.Fatal(err)
			}
			// Every card placeholder at its own field, and nowhere else.
			if err := tpl.CheckCardFields(d); err != nil {
				t.Fatal(err)
			}
			if _, err := d.URLFor("/other"); err == nil {
				t.Fatal("a preset destination reaches another endpoint below its URL")
			}
			if !tpl.Needs(FieldNumber) {
				t.Fatal("preset does not send the card number")
			}
			if _, err := tpl.Fill(Values{Number: "4242424242424242", ExpMonth: 3, ExpYear: 2031, Name: "Jane", CVC: "123", HasCVC: true}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func destinationsCompile(p Preset) (*destinations.Compiled, error) {
	return destinations.Compile(p.Destination, "")
}

// TestPresetsMatchTheirReferences: each preset sends the card in the shape
// its processor's reference documents (field names, JSON types, form keys)
// and says which pages it follows.
func TestPresetsMatchTheirReferences(t *testing.T) {
	v := Values{Number: "4242424242424242", ExpMonth: 3, ExpYear: 2031, Name: "Jane Doe", CVC: "123", HasCVC: true}
	want := map[string]map[string]any{
		// Adyen: strings, month zero-padded, year in 4 digits.
		"adyen-payments.json": {"paymentMethod.type": "scheme", "paymentMethod.number": v.Number, "paymentMethod.expiryMonth": "03",
			"paymentMethod.expiryYear": "2031", "paymentMethod.cvc": "123", "paymentMethod.holderName": "Jane Doe"},
		// Checkout.com: expiry_month and expiry_year are integers.
		"checkout-payments.json": {"source.type": "card", "source.number": v.Number, "source.expiry_month": float64(3),
			"source.expiry_year": float64(2031), "source.cvv": "123", "source.name": "Jane Doe"},
		// Stripe: form keys with brackets.
		"stripe-payment-methods.json": {"type": "card", "card[number]": v.Number, "card[exp_month]": "03", "card[exp_year]": "2031",
			"card[cvc]": "123", "billing_details[name]": "Jane Doe"},
	}
	paths := map[string]string{"adyen-payments.json": "/v71/payments", "checkout-payments.json": "/payments", "stripe-payment-methods.json": "/v1/payment_methods"}
	ps, err := Presets()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != len(want) {
		t.Fatalf("%d presets, want %d: a new one needs its reference check here", len(ps), len(want))
	}
	for _, p := range ps {
		t.Run(p.Name, func(t *testing.T) {
			if !strings.Contains(p.Reference, "https://") {
				t.Fatalf("reference %q names no page", p.Reference)
			}
			// The destination is the one endpoint: the template adds no path.
			if !strings.HasSuffix(p.Destination.URL, paths[p.Name]) || !p.Destination.ExactPath || p.Template.Path != "" || p.Destination.Method != "POST" {
				t.Fatalf("%s %s (exact %v) + %q, want POST ...%s exactly", p.Destination.Method, p.Destination.URL, p.Destination.ExactPath, p.Template.Path, paths[p.Name])
			}
			tpl, err := Parse(p.Template, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := tpl.Fill(v)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]any{}
			if p.Template.ContentType == wire.ContentTypeJSON {
				var doc map[string]any
				if err := json.Unmarshal(body, &doc); err != nil {
					t.Fatalf("filled body is not JSON: %v", err)
				}
				for k := range want[p.Name] {
					parent, field, _ := strings.Cut(k, ".")
					if obj, ok := doc[parent].(map[string]any); ok {
						got[k] = obj[field]
					}
				}
			} else {
				q, err := url.ParseQuery(string(body))
				if err != nil {
					t.Fatalf("filled body is not a form: %v", err)
				}
				for k := range want[p.Name] {
					got[k] = q.Get(k)
				}
			}
			for k, w := range want[p.Name] {
				if got[k] != w {
					t.Errorf("%s = %#v, want %#v", k, got[k], w)
				}
			}
		})
	}
}
