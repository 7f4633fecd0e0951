package card

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/blindgate/blindgate/internal/jsonscan"
)

// Input bounds of the plaintexts.
const (
	// MaxPlaintextSize caps a card or CVC plaintext; a real one is ~100 bytes.
	MaxPlaintextSize = 4 << 10
	// MaxNameLength caps the cardholder name in bytes (ISO 7813 track 1 allows
	// 26 characters; web forms run longer, and UTF-8 needs up to 4 bytes each).
	MaxNameLength = 128
	// maxIAT is 9999-12-31T23:59:59Z: anything later is not a timestamp.
	maxIAT = 253402300799
)

// ParsePlaintext parses the decrypted card plaintext of Contract 1:
//
//	{"pan":"4242...","exp_month":12,"exp_year":2030,"name":"...","iat":1700000000}
//
// The JSON is parsed strictly: one object, at most MaxPlaintextSize bytes,
// exact (case-sensitive) field names, no unknown or duplicate fields (a
// duplicate "pan" could smuggle a second number past a check), no null for a
// required field. pan must be a JSON string of digits (no spaces: the
// checkout strips them); exp_month must be 1-12; exp_year must have 4 digits;
// iat (unix seconds) is required; name is optional (null = absent), at most
// MaxNameLength bytes, without control or format (Cf) characters.
//
// Length, Luhn, brand and expiry are Validate's job. Errors wrap ErrMalformed
// (a non-digit pan also matches ErrDigits) and never contain the PAN, the
// name or the raw input (encoding/json messages quote input, so they are never
// passed on).
func ParsePlaintext(b []byte) (Card, error) {
	var (
		c   Card
		iat int64
	)
	err := parseObject(b, []field{
		{name: "pan", required: true, decode: func(raw []byte) error { return decodeString(raw, &c.PAN) }},
		{name: "exp_month", required: true, decode: func(raw []byte) error { return decodeInt(raw, &c.ExpMonth) }},
		{name: "exp_year", required: true, decode: func(raw []byte) error { return decodeInt(raw, &c.ExpYear) }},
		{name: "name", nullable: true, decode: func(raw []byte) error { return decodeString(raw, &c.Name) }},
		{name: "iat", required: true, decode: func(raw []byte) error { return decodeInt(raw, &iat) }},
	})
	if err != nil {
		return Card{}, err
	}
	if c.PAN == "" || !allDigits(c.PAN) {
		return Card{}, fmt.Errorf("%w: %w: pan must be a string of digits", ErrMalformed, ErrDigits)
	}
	if c.ExpMonth < 1 || c.ExpMonth > 12 {
		return Card{}, fmt.Errorf("%w: exp_month must be 1-12", ErrMalformed)
	}
	if c.ExpYear < 1000 || c.ExpYear > 9999 {
		return Card{}, fmt.Errorf("%w: exp_year must have 4 digits", ErrMalformed)
	}
	if iat <= 0 || iat > maxIAT {
		return Card{}, fmt.Errorf("%w: iat must be a unix time in seconds", ErrMalformed)
	}
	if err := checkName(c.Name); err != nil {
		return Card{}, err
	}
	c.IssuedAt = time.Unix(iat, 0).UTC()
	return c, nil
}

func checkName(name string) error {
	if len(name) > MaxNameLength {
		return fmt.Errorf("%w: name is longer than %d bytes", ErrMalformed, MaxNameLength)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: name is not valid UTF-8", ErrMalformed)
	}
	for _, r := range name {
		// Control characters have no place in a name and could forge log lines
		// or headers wherever the name travels next.
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("%w: name contains a control character", ErrMalformed)
		}
		// Format characters (Cf: bidi overrides such as U+202E, zero-width
		// ones) make a name display as something else than it is, in the
		// back office or on a statement.
		if unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("%w: name contains a format character", ErrMalformed)
		}
	}
	return nil
}

// CVC is a card verification code, decrypted from its own JWE
// ({"cvc":"123","iat":...}). Its digits are unexported and it redacts itself
// in fmt, slog and JSON. PCI DSS 3.3.1: callers keep it only until first use.
type CVC struct {
	digits   string
	IssuedAt time.Time
}

// ParseCVC parses a CVC plaintext with the same strictness as ParsePlaintext.
// The cvc must be a JSON string of 3 or 4 digits; iat is required.
func ParseCVC(b []byte) (CVC, error) {
	var (
		c   CVC
		iat int64
	)
	err := parseObject(b, []field{
		{name: "cvc", required: true, decode: func(raw []byte) error { return decodeString(raw, &c.digits) }},
		{name: "iat", required: true, decode: func(raw []byte) error { return decodeInt(raw, &iat) }},
	})
	if err != nil {
		return CVC{}, err
	}
	if n := len(c.digits); n < 3 || n > 4 || !allDigits(c.digits) {
		return CVC{}, fmt.Errorf("%w: %w: cvc must be 3 or 4 digits", ErrCVC, ErrMalformed)
	}
	if iat <= 0 || iat > maxIAT {
		return CVC{}, fmt.Errorf("%w: iat must be a unix time in seconds", ErrMalformed)
	}
	c.IssuedAt = time.Unix(iat, 0).UTC()
	return c, nil
}

// Digits returns the CVC itself, for the one use it is collected for.
func (c CVC) Digits() string { return c.digits }

// CheckBrand verifies the CVC length for a brand (4 for Amex, else 3).
func (c CVC) CheckBrand(b Brand) error {
	want := b.CVCLength()
	if want == 0 {
		return fmt.Errorf("%w: card brand is not supported", ErrBrand)
	}
	if len(c.digits) != want {
		return fmt.Errorf("%w: %w: %s cards have a %d-digit cvc", ErrCVC, ErrMalformed, b, want)
	}
	return nil
}

const redactedCVC = "cvc{redacted}"

// String implements fmt.Stringer without the digits.
func (c CVC) String() string { return redactedCVC }

// GoString implements fmt.GoStringer without the digits.
func (c CVC) GoString() string { return "card.CVC{redacted}" }

// Format implements fmt.Formatter so no verb prints the digits.
func (c CVC) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, c.GoString())
		return
	}
	_, _ = io.WriteString(f, redactedCVC)
}

// LogValue implements slog.LogValuer without the digits.
func (c CVC) LogValue() slog.Value { return slog.StringValue(redactedCVC) }

// MarshalJSON writes "redacted": a CVC is never serialised.
func (c CVC) MarshalJSON() ([]byte, error) { return []byte(`"redacted"`), nil }

// field describes one member of a strict JSON object.
type field struct {
	name     string
	required bool
	nullable bool // null is accepted and treated as absent
	decode   func(raw []byte) error
}

// parseObject walks one JSON object token by token, so that duplicate and
// unknown members are caught (encoding/json silently keeps the last duplicate
// and matches names case-insensitively) and so that no encoding/json error
// text, which quotes the input, escapes.
func parseObject(b []byte, fields []field) error {
	if len(b) > MaxPlaintextSize {
		return fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxPlaintextSize)
	}
	seen := make([]bool, len(fields))
	// What the checkout page writes is a simple object (internal/jsonscan):
	// its members are read in one pass, and are the ones the token walk
	// below would read. Anything else takes the walk.
	var buf [8]jsonscan.Member
	if members, ok := jsonscan.Object(b, buf[:0]); ok && utf8.Valid(b) {
		for _, m := range members {
			// The name needs no unescaping in a simple object.
			if err := member(fields, seen, string(m.Name), m.Value); err != nil {
				return err
			}
		}
		return required(fields, seen)
	}
	return walkObject(b, fields, seen)
}

// walkObject is parseObject's token walk.
func walkObject(b []byte, fields []field, seen []bool) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: invalid JSON", ErrMalformed)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%w: invalid JSON", ErrMalformed)
		}
		if fieldIndex(fields, key) < 0 {
			// The unknown name is input: do not echo it.
			return fmt.Errorf("%w: unknown field", ErrMalformed)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%w: invalid JSON", ErrMalformed)
		}
		if err := member(fields, seen, key, raw); err != nil {
			return err
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return fmt.Errorf("%w: invalid JSON", ErrMalformed)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data after the object", ErrMalformed)
	}
	return required(fields, seen)
}

// member decodes one member of parseObject's object into its field.
func member(fields []field, seen []bool, key string, raw []byte) error {
	i := fieldIndex(fields, key)
	if i < 0 {
		// The unknown name is input: do not echo it.
		return fmt.Errorf("%w: unknown field", ErrMalformed)
	}
	f := fields[i]
	if seen[i] {
		return fmt.Errorf("%w: duplicate field %s", ErrMalformed, f.name)
	}
	seen[i] = true
	if bytes.Equal(raw, []byte("null")) {
		if f.nullable {
			return nil
		}
		return fmt.Errorf("%w: %s must not be null", ErrMalformed, f.name)
	}
	if err := f.decode(raw); err != nil {
		return fmt.Errorf("%w: %s has the wrong type", ErrMalformed, f.name)
	}
	return nil
}

// required refuses an object that lacks a required field.
func required(fields []field, seen []bool) error {
	for i, f := range fields {
		if f.required && !seen[i] {
			return fmt.Errorf("%w: %s is required", ErrMalformed, f.name)
		}
	}
	return nil
}

func fieldIndex(fields []field, name string) int {
	for i, f := range fields {
		if f.name == name {
			return i
		}
	}
	return -1
}

func decodeString(raw []byte, dst *string) error {
	if len(raw) == 0 || raw[0] != '"' {
		return errors.New("not a string")
	}
	return json.Unmarshal(raw, dst)
}

// decodeInt accepts only an integer literal: no string, no fraction, no
// exponent, nothing out of range for T.
func decodeInt[T int | int64](raw []byte, dst *T) error {
	for _, c := range raw {
		if (c < '0' || c > '9') && c != '-' {
			return errors.New("not an integer")
		}
	}
	return json.Unmarshal(raw, dst)
}

func marshalJSON(v any) ([]byte, error) { return json.Marshal(v) }
