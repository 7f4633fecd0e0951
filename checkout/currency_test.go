package checkout_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/checkout"
)

func TestCurrencyExponent(t *testing.T) {
	for code, want := range map[string]int{
		"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "JPY": 0, "KRW": 0, "ISK": 0, "XOF": 0, "CLP": 0,
		"KWD": 3, "BHD": 3, "TND": 3, "JOD": 3, "HUF": 2, "IDR": 2,
	} {
		if got, ok := checkout.CurrencyExponent(code); !ok || got != want {
			t.Errorf("CurrencyExponent(%s) = %d, %v; want %d", code, got, ok, want)
		}
	}
	// Lower case, fund and metal codes, withdrawn and made-up codes are not in the list.
	for _, code := range []string{"eur", "XAU", "XTS", "XXX", "CLF", "USN", "HRK", "DEM", "EUX", "", "EURO"} {
		if _, ok := checkout.CurrencyExponent(code); ok {
			t.Errorf("CurrencyExponent(%q) accepted", code)
		}
	}
	shape := regexp.MustCompile(`^[A-Z]{3}$`)
	list := checkout.Currencies()
	if len(list) < 150 {
		t.Errorf("%d currencies: the active ISO 4217 list has about 155", len(list))
	}
	for i, c := range list {
		e, ok := checkout.CurrencyExponent(c)
		if !shape.MatchString(c) || !ok || e < 0 || e > 3 {
			t.Errorf("currency %q: exponent %d, ok %v", c, e, ok)
		}
		if i > 0 && list[i-1] >= c {
			t.Errorf("Currencies not sorted at %s", c)
		}
	}
}

func TestDecimalAmount(t *testing.T) {
	for _, tc := range []struct {
		minor int64
		exp   int
		want  string
	}{
		{2500, 2, "25.00"}, {1, 2, "0.01"}, {99, 2, "0.99"}, {100, 2, "1.00"}, {700, 0, "700"},
		{5, 3, "0.005"}, {1234, 3, "1.234"}, {999_999_999_999, 2, "9999999999.99"}, {0, 2, "0.00"},
		{-1, 2, ""}, {1, -1, ""},
	} {
		if got := checkout.DecimalAmount(tc.minor, tc.exp); got != tc.want {
			t.Errorf("DecimalAmount(%d, %d) = %q, want %q", tc.minor, tc.exp, got, tc.want)
		}
	}
}

func TestPaymentValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     checkout.Payment
		field string // "" = valid
	}{
		{"ok/none", checkout.Payment{}, ""},
		{"ok/eur", checkout.Payment{Amount: 2500, Currency: "EUR"}, ""},
		{"ok/max", checkout.Payment{Amount: checkout.MaxAmount, Currency: "JPY", SubmitType: checkout.SubmitDonate}, ""},
		{"ok/submit-type-alone", checkout.Payment{SubmitType: checkout.SubmitContinue}, ""},
		{"bad/negative", checkout.Payment{Amount: -1, Currency: "EUR"}, "amount"},
		{"bad/too-large", checkout.Payment{Amount: checkout.MaxAmount + 1, Currency: "EUR"}, "amount"},
		{"bad/amount-without-currency", checkout.Payment{Amount: 1}, "currency"},
		{"bad/currency-without-amount", checkout.Payment{Currency: "EUR"}, "amount"},
		{"bad/lower-case", checkout.Payment{Amount: 1, Currency: "eur"}, "currency"},
		{"bad/unknown-currency", checkout.Payment{Amount: 1, Currency: "ABC"}, "currency"},
		{"bad/submit-type", checkout.Payment{SubmitType: "buy"}, "submit_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			var pe *checkout.PaymentError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tc.field != "" && (!errors.As(err, &pe) || pe.Field != tc.field || pe.Reason == ""):
				t.Fatalf("Validate = %v, want a PaymentError on %s", err, tc.field)
			}
		})
	}
}

// TestSubmitLabels: every wording, with and without an amount, has its
// string in every language, and SetPayment renders it with the amount in
// the currency's decimals (the script re-formats it for the locale).
func TestSubmitLabels(t *testing.T) {
	a := newAssets(t)
	for _, lang := range a.Languages() {
		for _, typ := range append(checkout.SubmitTypes(), "") {
			for _, amount := range []int64{0, 2500} {
				pd := a.NewPageData(checkout.DefaultAssetBase, "cs_x", lang)
				p := checkout.Payment{Merchant: "Shop", Amount: amount, SubmitType: typ}
				if amount > 0 {
					p.Currency = "EUR"
				}
				if err := pd.SetPayment(p); err != nil {
					t.Fatalf("%s %q %d: %v", lang, typ, amount, err)
				}
				if _, ok := pd.Strings[pd.SubmitKey]; !ok || pd.SubmitLabel == "" || strings.Contains(pd.SubmitLabel, "{") {
					t.Errorf("%s %q %d: key %s label %q", lang, typ, amount, pd.SubmitKey, pd.SubmitLabel)
				}
				names := (typ == checkout.SubmitPay || typ == checkout.SubmitDonate || typ == "") && amount > 0
				if names != strings.Contains(pd.SubmitLabel, "25.00 EUR") {
					t.Errorf("%s %q %d: label %q names the amount: %v, want %v", lang, typ, amount, pd.SubmitLabel, !names, names)
				}
				if pd.MerchantName != "Shop" || (amount > 0) != (pd.Amount == "25.00" && pd.Currency == "EUR") {
					t.Errorf("%s %q %d: merchant %q amount %q %q", lang, typ, amount, pd.MerchantName, pd.Amount, pd.Currency)
				}
			}
		}
	}
	pd := a.NewPageData(checkout.DefaultAssetBase, "cs_x", "en")
	if pd.SubmitLabel != "Save card" || pd.SubmitKey != "submit_save" {
		t.Errorf("default button %q (%s), want Save card", pd.SubmitLabel, pd.SubmitKey)
	}
	if err := pd.SetPayment(checkout.Payment{Merchant: "Shop", Amount: 1, Currency: "XYZ"}); err == nil || pd.Amount != "" || pd.MerchantName != "Shop" {
		t.Errorf("invalid payment: err %v, amount %q, merchant %q", err, pd.Amount, pd.MerchantName)
	}
}
