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

const testPAN = "4242424242424242"

func TestParsePlaintext(t *testing.T) {
	base := Card{PAN: testPAN, ExpMonth: 12, ExpYear: 2030, IssuedAt: time.Unix(1700000000, 0).UTC()}
	with := func(f func(*Card)) Card { c := base; f(&c); return c }
	tests := []struct {
		name string
		in   string
		want Card
		err  error
	}{
		{"200/full", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":"Jane Doe","iat":1700000000}`,
			with(func(c *Card) { c.Name = "Jane Doe" }), nil},
		{"200/no-name", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":1700000000}`, base, nil},
		{"200/name-null", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":null,"iat":1700000000}`, base, nil},
		{"200/any-order-whitespace", " {\n\"iat\" : 1700000000 , \"exp_year\":2030,\"exp_month\":12,\"pan\":\"4242424242424242\"}\n", base, nil},
		{"200/unicode-name", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":"Zoë Ångström","iat":1700000000}`,
			with(func(c *Card) { c.Name = "Zoë Ångström" }), nil},
		// Length, Luhn and brand are Validate's job.
		{"200/pan-length-unchecked", `{"pan":"4242","exp_month":12,"exp_year":2030,"iat":1700000000}`,
			with(func(c *Card) { c.PAN = "4242" }), nil},
		{"200/expired-unchecked", `{"pan":"4242424242424242","exp_month":1,"exp_year":2001,"iat":1700000000}`,
			with(func(c *Card) { c.ExpMonth, c.ExpYear = 1, 2001 }), nil},

		{"422/malformed/empty", ``, Card{}, ErrMalformed},
		{"422/malformed/not-json", `pan=4242424242424242`, Card{}, ErrMalformed},
		{"422/malformed/array", `[{"pan":"4242424242424242"}]`, Card{}, ErrMalformed},
		{"422/malformed/string", `"4242424242424242"`, Card{}, ErrMalformed},
		{"422/malformed/truncated", `{"pan":"4242424242424242","exp_month":12`, Card{}, ErrMalformed},
		{"422/malformed/trailing-object", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":1700000000}{}`, Card{}, ErrMalformed},
		{"422/malformed/trailing-garbage", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":1700000000} x`, Card{}, ErrMalformed},
		{"422/malformed/unknown-field", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":1700000000,"secret_4242424242424242":1}`, Card{}, ErrMalformed},
		{"422/malformed/cvc-in-card", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":1700000000,"cvc":"123"}`, Card{}, ErrMalformed},
		{"422/malformed/case-folded-name", `{"PAN":"4242424242424242","exp_month":12,"exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/duplicate-pan", `{"pan":"4111111111111111","pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/pan-number", `{"pan":4242424242424242,"exp_month":12,"exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/pan-null", `{"pan":null,"exp_month":12,"exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/pan-object", `{"pan":{"v":"4242424242424242"},"exp_month":12,"exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/digits/pan-spaces", `{"pan":"4242 4242 4242 4242","exp_month":12,"exp_year":2030,"iat":1700000000}`, Card{}, ErrDigits},
		{"422/digits/pan-empty", `{"pan":"","exp_month":12,"exp_year":2030,"iat":1700000000}`, Card{}, ErrDigits},
		{"422/malformed/pan-missing", `{"exp_month":12,"exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/month-string", `{"pan":"4242424242424242","exp_month":"12","exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/month-float", `{"pan":"4242424242424242","exp_month":12.0,"exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/month-exponent", `{"pan":"4242424242424242","exp_month":1e1,"exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/month-0", `{"pan":"4242424242424242","exp_month":0,"exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/month-13", `{"pan":"4242424242424242","exp_month":13,"exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/month-overflow", `{"pan":"4242424242424242","exp_month":99999999999999999999,"exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/year-2-digit", `{"pan":"4242424242424242","exp_month":12,"exp_year":30,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/year-5-digit", `{"pan":"4242424242424242","exp_month":12,"exp_year":20300,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/iat-missing", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030}`, Card{}, ErrMalformed},
		{"422/malformed/iat-zero", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":0}`, Card{}, ErrMalformed},
		{"422/malformed/iat-negative", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":-5}`, Card{}, ErrMalformed},
		{"422/malformed/iat-millis-far-future", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":1700000000000000}`, Card{}, ErrMalformed},
		{"422/malformed/iat-string", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":"1700000000"}`, Card{}, ErrMalformed},
		{"422/malformed/name-number", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":5,"iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/name-too-long", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":"` + strings.Repeat("a", MaxNameLength+1) + `","iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/name-control", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":"Jane\nINFO forged","iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/name-bidi-override", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":"Jane \u202eeoD","iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/name-bidi-isolate", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":"Jane \u2066Doe\u2069","iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/name-zero-width", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":"Ja\u200bne","iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/name-c1-control", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":"Jane\u0085Doe","iat":1700000000}`, Card{}, ErrMalformed},
		{"422/malformed/too-large", `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":1700000000,"x":"` + strings.Repeat("a", MaxPlaintextSize) + `"}`, Card{}, ErrMalformed},
		{"422/malformed/bom", "\ufeff" + `{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":1700000000}`, Card{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePlaintext([]byte(tt.in))
			if tt.err == nil {
				if err != nil {
					t.Fatalf("ParsePlaintext: %v", err)
				}
				if got != tt.want {
					t.Fatalf("got %+v (name %q), want %+v", got, got.Name, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.err) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want %v (and ErrMalformed)", err, tt.err)
			}
			if got != (Card{}) {
				t.Fatalf("a failed parse returned data")
			}
			msg := err.Error()
			for _, secret := range []string{testPAN, "4111111111111111", "secret_", "Jane", tt.in} {
				if strings.Contains(msg, secret) && len(tt.in) > 0 {
					t.Fatalf("error %q contains input %q", msg, secret)
				}
			}
		})
	}
}

func TestParsedCardValidates(t *testing.T) {
	c, err := ParsePlaintext([]byte(`{"pan":"378282246310005","exp_month":7,"exp_year":2029,"iat":1773568800}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(testNow); err != nil {
		t.Fatal(err)
	}
	if c.Brand() != Amex || c.BIN() != "378282" || c.Last4() != "0005" || !c.IssuedAt.Equal(time.Unix(1773568800, 0)) {
		t.Fatalf("card = %v bin %s", c, c.BIN())
	}
}

func TestParseCVC(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		digits string
		err    error
	}{
		{"200/3-digit", `{"cvc":"123","iat":1700000000}`, "123", nil},
		{"200/4-digit", `{"cvc":"1234","iat":1700000000}`, "1234", nil},
		{"200/leading-zero", `{"cvc":"007","iat":1700000000}`, "007", nil},
		{"422/cvc/2-digit", `{"cvc":"12","iat":1700000000}`, "", ErrCVC},
		{"422/cvc/5-digit", `{"cvc":"12345","iat":1700000000}`, "", ErrCVC},
		{"422/cvc/letters", `{"cvc":"12a","iat":1700000000}`, "", ErrCVC},
		{"422/malformed/number", `{"cvc":123,"iat":1700000000}`, "", ErrMalformed},
		{"422/malformed/missing-iat", `{"cvc":"123"}`, "", ErrMalformed},
		{"422/malformed/pan-in-cvc", `{"cvc":"123","iat":1700000000,"pan":"4242424242424242"}`, "", ErrMalformed},
		{"422/malformed/duplicate", `{"cvc":"999","cvc":"123","iat":1700000000}`, "", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCVC([]byte(tt.in))
			if tt.err == nil {
				if err != nil || c.Digits() != tt.digits {
					t.Fatalf("ParseCVC = %q, %v", c.Digits(), err)
				}
				return
			}
			if !errors.Is(err, tt.err) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want %v (and ErrMalformed)", err, tt.err)
			}
			if strings.Contains(err.Error(), "123") || strings.Contains(err.Error(), testPAN) {
				t.Fatalf("error leaks input: %v", err)
			}
		})
	}
}

func TestCVCCheckBrand(t *testing.T) {
	three, _ := ParseCVC([]byte(`{"cvc":"123","iat":1700000000}`))
	four, _ := ParseCVC([]byte(`{"cvc":"1234","iat":1700000000}`))
	if err := three.CheckBrand(Visa); err != nil {
		t.Errorf("visa 3: %v", err)
	}
	if err := four.CheckBrand(Amex); err != nil {
		t.Errorf("amex 4: %v", err)
	}
	if err := three.CheckBrand(Amex); !errors.Is(err, ErrCVC) {
		t.Errorf("amex 3: %v", err)
	}
	if err := four.CheckBrand(Mastercard); !errors.Is(err, ErrCVC) {
		t.Errorf("mastercard 4: %v", err)
	}
	if err := three.CheckBrand(""); !errors.Is(err, ErrBrand) {
		t.Errorf("unknown brand: %v", err)
	}
}

func TestCVCNeverPrints(t *testing.T) {
	c, err := ParseCVC([]byte(`{"cvc":"9876","iat":1700000000}`))
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c), fmt.Sprintf(verb, struct{ C CVC }{c}))
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "cvc", c, "ptr", &c)
	outs = append(outs, buf.String())
	b, _ := json.Marshal(struct{ C CVC }{c})
	outs = append(outs, string(b))
	for _, o := range outs {
		if strings.Contains(o, "9876") {
			t.Errorf("CVC leaked: %s", o)
		}
	}
}

// FuzzParsePlaintext: ParsePlaintext never panics, every error is one of the
// sentinels, and no error string contains the pan field of the input.
func FuzzParsePlaintext(f *testing.F) {
	for _, s := range []string{
		`{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":"Jane Doe","iat":1700000000}`,
		`{"pan":"378282246310005","exp_month":1,"exp_year":2029,"iat":1700000000}`,
		`{"pan":"4242424242424242","pan":"4111111111111111","exp_month":12,"exp_year":2030,"iat":1}`,
		`{"pan":4242424242424242,"exp_month":12,"exp_year":2030,"iat":1}`,
		`{"pan":"4242424242424242","exp_month":"12","exp_year":2030,"iat":1}`,
		`{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"iat":1,"x4242424242424242":1}`,
		`{"pan":"4242424242424242","exp_month":1e1,"exp_year":2030,"iat":1}`,
		`{"pan":"\u0034242424242424242","exp_month":12,"exp_year":2030,"iat":1}`,
		`[]`, `{`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := ParsePlaintext(in)
		if err == nil {
			if c.ExpMonth < 1 || c.ExpMonth > 12 || c.ExpYear < 1000 || c.ExpYear > 9999 || c.IssuedAt.IsZero() {
				t.Fatalf("accepted out-of-range card")
			}
			if len(c.PAN) >= 8 && strings.Contains(fmt.Sprintf("%v %+v %#v %s", c, c, c, c), c.PAN) {
				t.Fatalf("formatted card contains the PAN")
			}
			_ = c.Validate(time.Now())
			return
		}
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", err)
		}
		msg := err.Error()
		for _, pan := range panFields(in) {
			if strings.Contains(msg, pan) {
				t.Fatalf("error %q contains the pan field %q", msg, pan)
			}
		}
	})
}

// FuzzParseObjectOnePass: an object parseObject reads in one pass gives
// its fields the values, and the error, that the token walk gives.
func FuzzParseObjectOnePass(f *testing.F) {
	for _, s := range []string{
		`{"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":"Jane Doe","iat":1700000000}`,
		`{"pan":"4242424242424242","pan":"4111111111111111","exp_month":12}`, `{"pan":null,"name":null}`,
		`{"pan":4242,"exp_month":"12"}`, `{"x":1}`, `{"exp_month":1.5}`, `{"name":"\u00e9"}`, ` {"iat" : 1 } `,
	} {
		f.Add([]byte(s))
	}
	fields := func(log *[]string) []field {
		rec := func(name string, dec func([]byte) error) func([]byte) error {
			return func(raw []byte) error {
				*log = append(*log, name+"="+string(raw))
				return dec(raw)
			}
		}
		var str string
		var n int64
		return []field{
			{name: "pan", required: true, decode: rec("pan", func(raw []byte) error { return decodeString(raw, &str) })},
			{name: "exp_month", required: true, decode: rec("exp_month", func(raw []byte) error { return decodeInt(raw, &n) })},
			{name: "name", nullable: true, decode: rec("name", func(raw []byte) error { return decodeString(raw, &str) })},
			{name: "iat", decode: rec("iat", func(raw []byte) error { return decodeInt(raw, &n) })},
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var one, walk []string
		f1 := fields(&one)
		err1 := parseObject(in, f1)
		f2 := fields(&walk)
		seen := make([]bool, len(f2))
		err2 := walkObject(in, f2, seen)
		if err2 == nil {
			err2 = required(f2, seen)
		}
		if fmt.Sprint(err1) != fmt.Sprint(err2) || fmt.Sprint(one) != fmt.Sprint(walk) {
			t.Fatalf("%q: one pass %v %q, token walk %v %q", in, err1, one, err2, walk)
		}
	})
}

// panFields pulls every "pan" string out of possibly broken input: the value
// a lenient decoder sees and the raw bytes after any `"pan":"`. Values shorter
// than 6 characters are skipped: they can occur in any text by chance.
func panFields(in []byte) []string {
	var out []string
	var m map[string]any
	if json.Unmarshal(in, &m) == nil {
		if s, ok := m["pan"].(string); ok {
			out = append(out, s)
		}
	}
	rest := string(in)
	for {
		i := strings.Index(rest, `"pan":"`)
		if i < 0 {
			break
		}
		rest = rest[i+len(`"pan":"`):]
		v := rest
		if j := strings.IndexByte(v, '"'); j >= 0 {
			v = v[:j]
		}
		out = append(out, v)
	}
	var keep []string
	for _, s := range out {
		if len(strings.TrimSpace(s)) >= 6 {
			keep = append(keep, s)
		}
	}
	return keep
}
