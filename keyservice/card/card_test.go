package card

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// withCheck appends the Luhn check digit to body.
func withCheck(body string) string {
	for d := byte('0'); d <= '9'; d++ {
		if s := body + string(d); Luhn(s) {
			return s
		}
	}
	panic("unreachable")
}

// pad extends prefix with zeros to n-1 digits and adds the check digit.
func pad(prefix string, n int) string {
	return withCheck(prefix + strings.Repeat("0", n-1-len(prefix)))
}

var testNow = time.Date(2026, time.March, 15, 10, 0, 0, 0, time.UTC)

func TestValidate(t *testing.T) {
	good := func(pan string) Card { return Card{PAN: pan, ExpMonth: 12, ExpYear: 2030} }
	tests := []struct {
		name  string
		card  Card
		brand Brand
		err   error
	}{
		// Public test numbers (Stripe, Adyen, Braintree docs) for every brand.
		{"200/visa/4242424242424242", good("4242424242424242"), Visa, nil},
		{"200/visa/4000056655665556", good("4000056655665556"), Visa, nil},
		{"200/visa/4111111111111111", good("4111111111111111"), Visa, nil},
		{"200/visa/4012888888881881", good("4012888888881881"), Visa, nil},
		{"200/visa/13-digit/4222222222222", good("4222222222222"), Visa, nil},
		{"200/visa/19-digit", good(pad("4", 19)), Visa, nil},
		{"200/mastercard/5555555555554444", good("5555555555554444"), Mastercard, nil},
		{"200/mastercard/2223003122003222", good("2223003122003222"), Mastercard, nil},
		{"200/mastercard/5200828282828210", good("5200828282828210"), Mastercard, nil},
		{"200/mastercard/5105105105105100", good("5105105105105100"), Mastercard, nil},
		{"200/mastercard/2-series-low", good(pad("2221", 16)), Mastercard, nil},
		{"200/mastercard/2-series-high", good(pad("2720", 16)), Mastercard, nil},
		{"200/amex/378282246310005", good("378282246310005"), Amex, nil},
		{"200/amex/371449635398431", good("371449635398431"), Amex, nil},
		{"200/amex/378734493671000", good("378734493671000"), Amex, nil},
		{"200/discover/6011111111111117", good("6011111111111117"), Discover, nil},
		{"200/discover/6011000990139424", good("6011000990139424"), Discover, nil},
		{"200/discover/6445644564456445", good("6445644564456445"), Discover, nil},
		{"200/discover/65-range", good(pad("65", 16)), Discover, nil},
		{"200/discover/622126-range", good(pad("622126", 16)), Discover, nil},
		{"200/discover/19-digit", good(pad("6011", 19)), Discover, nil},
		{"200/diners/3056930009020004", good("3056930009020004"), Diners, nil},
		{"200/diners/36227206271667", good("36227206271667"), Diners, nil},
		{"200/diners/38520000023237", good("38520000023237"), Diners, nil},
		{"200/diners/3095-range", good(pad("3095", 14)), Diners, nil},
		{"200/jcb/3566002020360505", good("3566002020360505"), JCB, nil},
		{"200/jcb/3530111333300000", good("3530111333300000"), JCB, nil},
		{"200/unionpay/6200000000000005", good("6200000000000005"), UnionPay, nil},
		{"200/unionpay/6250941006528599", good("6250941006528599"), UnionPay, nil},
		{"200/unionpay/6205500000000000004", good("6205500000000000004"), UnionPay, nil},
		{"200/maestro/6759649826438453", good("6759649826438453"), Maestro, nil},
		{"200/maestro/6771798021000008", good("6771798021000008"), Maestro, nil},
		{"200/maestro/50-range-12-digit", good(pad("50", 12)), Maestro, nil},
		{"200/maestro/58-range-19-digit", good(pad("58", 19)), Maestro, nil},
		{"200/expires-this-month", Card{PAN: "4242424242424242", ExpMonth: 3, ExpYear: 2026}, Visa, nil},
		{"200/20-years-ahead", Card{PAN: "4242424242424242", ExpMonth: 1, ExpYear: 2046}, Visa, nil},

		{"422/digits/spaces", good("4242 4242 4242 4242"), "", ErrDigits},
		{"422/digits/dashes", good("4242-4242-4242-4242"), "", ErrDigits},
		{"422/digits/letter", good("424242424242424x"), "", ErrDigits},
		{"422/digits/fullwidth", good("４２４２４２４２４２４２４２４２"), "", ErrDigits},
		{"422/length/empty", good(""), "", ErrLength},
		{"422/length/11", good(pad("4", 11)), "", ErrLength},
		{"422/length/20", good(pad("4", 20)), "", ErrLength},
		{"422/length/visa-14", good(pad("4", 14)), "", ErrLength},
		{"422/length/visa-15", good(pad("4", 15)), "", ErrLength},
		{"422/length/mastercard-15", good(pad("52", 15)), "", ErrLength},
		{"422/length/amex-16", good(pad("37", 16)), "", ErrLength},
		{"422/length/discover-15", good(pad("6011", 15)), "", ErrLength},
		{"422/length/diners-13", good(pad("36", 13)), "", ErrLength},
		{"422/length/unionpay-15", good(pad("62", 15)), "", ErrLength},
		{"422/luhn/4242424242424241", good("4242424242424241"), "", ErrLuhn},
		{"422/luhn/amex", good("378282246310006"), "", ErrLuhn},
		{"422/luhn/unionpay", good("6200000000000006"), "", ErrLuhn},
		{"422/brand/1-prefix", good(pad("1", 16)), "", ErrBrand},
		{"422/brand/2721", good(pad("2721", 16)), "", ErrBrand},
		{"422/brand/9-prefix", good(pad("9", 16)), "", ErrBrand},
		{"422/expired/last-month", Card{PAN: "4242424242424242", ExpMonth: 2, ExpYear: 2026}, "", ErrExpired},
		{"422/expired/last-year", Card{PAN: "4242424242424242", ExpMonth: 12, ExpYear: 2025}, "", ErrExpired},
		{"422/expiry/month-0", Card{PAN: "4242424242424242", ExpMonth: 0, ExpYear: 2030}, "", ErrMalformed},
		{"422/expiry/month-13", Card{PAN: "4242424242424242", ExpMonth: 13, ExpYear: 2030}, "", ErrMalformed},
		{"422/expiry/21-years-ahead", Card{PAN: "4242424242424242", ExpMonth: 1, ExpYear: 2047}, "", ErrMalformed},
		{"422/name/too-long", Card{PAN: "4242424242424242", ExpMonth: 1, ExpYear: 2030, Name: strings.Repeat("a", MaxNameLength+1)}, "", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.card.Validate(testNow)
			if tt.err == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if got := tt.card.Brand(); got != tt.brand {
					t.Fatalf("brand = %q, want %q", got, tt.brand)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("Validate = %v, want %v", err, tt.err)
			}
			if tt.card.PAN != "" && strings.Contains(err.Error(), tt.card.PAN) {
				t.Fatalf("error contains the PAN: %v", err)
			}
		})
	}
}

func TestValidateExpiryBoundary(t *testing.T) {
	c := Card{PAN: "4242424242424242", ExpMonth: 12, ExpYear: 2030}
	tests := []struct {
		name string
		now  time.Time
		err  error
	}{
		{"200/last-day-of-month", time.Date(2030, 12, 31, 23, 59, 59, 0, time.UTC), nil},
		{"200/last-day-in-utc-12", time.Date(2031, 1, 1, 11, 59, 59, 0, time.UTC), nil},
		{"200/other-zone", time.Date(2030, 12, 31, 20, 0, 0, 0, time.FixedZone("x", 14*3600)), nil},
		{"422/expired/month-over-everywhere", time.Date(2031, 1, 1, 12, 0, 0, 0, time.UTC), ErrExpired},
		{"422/expired/next-month", time.Date(2031, 2, 1, 0, 0, 0, 0, time.UTC), ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Validate(tt.now); !errors.Is(err, tt.err) {
				t.Fatalf("Validate = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestLuhn(t *testing.T) {
	for pan, want := range map[string]bool{
		"4242424242424242": true, "79927398713": true, "0": true, "00": true,
		"4242424242424241": false, "": false, "42a2": false, " 4242424242424242": false,
	} {
		if got := Luhn(pan); got != want {
			t.Errorf("Luhn(%q) = %v, want %v", pan, got, want)
		}
	}
}

func TestMasking(t *testing.T) {
	tests := []struct {
		name, pan, bin, last4, mask string
		bin8, mask8                 string // under Masking{BIN8: true}
	}{
		{"bin6/12-digit", "500000000009", "500000", "0009", "500000**0009", "500000", "500000**0009"},
		{"bin6/14-digit", "36227206271667", "362272", "1667", "362272****1667", "362272", "362272****1667"},
		{"bin6/15-digit", "378282246310005", "378282", "0005", "378282*****0005", "378282", "378282*****0005"},
		{"bin6/16-digit", "4242424242424242", "424242", "4242", "424242******4242", "42424242", "42424242****4242"},
		{"bin6/19-digit", "6205500000000000004", "620550", "0004", "620550*********0004", "62055000", "62055000*******0004"},
		{"none/11-digit", "42424242424", "", "", "", "", ""},
		{"none/20-digit", "42424242424242424242", "", "", "", "", ""},
		{"none/non-digit", "4242 4242 4242 4242", "", "", "", "", ""},
		{"none/empty", "", "", "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BIN(tt.pan); got != tt.bin {
				t.Errorf("BIN = %q, want %q", got, tt.bin)
			}
			if got := Last4(tt.pan); got != tt.last4 {
				t.Errorf("Last4 = %q, want %q", got, tt.last4)
			}
			if got := Mask(tt.pan); got != tt.mask {
				t.Errorf("Mask = %q, want %q", got, tt.mask)
			}
			if got := (Masking{}).BIN(tt.pan); got != tt.bin {
				t.Errorf("Masking{}.BIN = %q, want %q", got, tt.bin)
			}
			m8 := Masking{BIN8: true}
			if got := m8.BIN(tt.pan); got != tt.bin8 {
				t.Errorf("bin8 BIN = %q, want %q", got, tt.bin8)
			}
			if got := m8.Mask(tt.pan); got != tt.mask8 {
				t.Errorf("bin8 Mask = %q, want %q", got, tt.mask8)
			}
		})
	}
}

// TestCardNeverPrintsPAN covers every way a Card could reach a log line or an
// error: fmt verbs (direct, by pointer, nested, in slices and maps), slog text
// and JSON handlers, and encoding/json.
func TestCardNeverPrintsPAN(t *testing.T) {
	const pan = "4000056655665556"
	const name = "Jane Q Cardholder"
	c := Card{PAN: pan, ExpMonth: 12, ExpYear: 2030, Name: name, IssuedAt: testNow}
	type wrapper struct {
		C   Card
		P   *Card
		Any any
	}
	w := wrapper{C: c, P: &c, Any: c}

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v", "%10.3s"} {
		outputs["fmt "+verb] = fmt.Sprintf(verb, c)
		outputs["fmt ptr "+verb] = fmt.Sprintf(verb, &c)
		outputs["fmt nested "+verb] = fmt.Sprintf(verb, w)
		outputs["fmt slice "+verb] = fmt.Sprintf(verb, []Card{c})
		outputs["fmt map "+verb] = fmt.Sprintf(verb, map[string]Card{"k": c})
	}
	outputs["Sprint"] = fmt.Sprint(c, &c)
	outputs["Sprintln"] = fmt.Sprintln(c)
	outputs["Errorf"] = fmt.Errorf("decline %v: %w", c, ErrLuhn).Error()

	for _, h := range []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"slog text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"slog json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	} {
		var buf bytes.Buffer
		log := slog.New(h.new(&buf))
		log.Info("card", "card", c, "ptr", &c, "wrapped", w)
		log.Info("card", slog.Any("card", c))
		log.With("card", c).Info("with")
		outputs[h.name] = buf.String()
		if !strings.Contains(buf.String(), "5556") {
			t.Errorf("%s: masked view lost last4: %s", h.name, buf.String())
		}
	}

	for _, v := range []any{c, &c, w, []Card{c}, map[string]Card{"k": c}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outputs[fmt.Sprintf("json %T", v)] = string(b)
	}

	for what, out := range outputs {
		if strings.Contains(out, pan) {
			t.Errorf("%s leaks the PAN: %s", what, out)
		}
		if strings.Contains(out, name) {
			t.Errorf("%s leaks the name: %s", what, out)
		}
		// Every view shows last4 only, not even the BIN.
		if strings.Contains(out, pan[:6]) {
			t.Errorf("%s shows the BIN: %s", what, out)
		}
	}
	if got := fmt.Sprint(c); got != "card{brand=visa last4=5556 exp=12/2030}" {
		t.Errorf("String = %q", got)
	}
	if got := fmt.Sprintf("%#v", c); !strings.HasPrefix(got, "card.Card(") {
		t.Errorf("GoString = %q", got)
	}
	b, _ := json.Marshal(c)
	if string(b) != `{"brand":"visa","last4":"5556","exp_month":12,"exp_year":2030}` {
		t.Errorf("JSON = %s", b)
	}
}

func TestCardStringOfGarbage(t *testing.T) {
	// A value that is not PAN-shaped must not be shown even partly.
	c := Card{PAN: "123456789", ExpMonth: 1, ExpYear: 2030}
	if got := c.String(); strings.Contains(got, "6789") || got != "card{brand=unknown last4=???? exp=1/2030}" {
		t.Fatalf("String = %q", got)
	}
}
