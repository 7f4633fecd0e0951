// Package card holds Blindgate's rules for payment card data: parsing the
// decrypted plaintext of Contract 1, PAN checks (digits, length, Luhn, brand),
// expiry, and the masked forms PCI DSS 3.4.1 allows to be shown (BIN, last 4).
//
// Only the key service may import this package; the gateway never holds a
// PAN. The Card and CVC types redact themselves in fmt, slog and JSON, and no
// error built here contains a PAN, a CVC or the raw plaintext, so a careless
// log line or a wrapped error cannot leak one.
package card

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"
)

// Sentinel errors. Callers map them with errors.Is; the wrapped message adds a
// reason that is safe to show (it never contains card data).
var (
	ErrMalformed = errors.New("card: malformed card data")
	ErrDigits    = errors.New("card: card number is not all digits")
	ErrLength    = errors.New("card: invalid card number length")
	ErrLuhn      = errors.New("card: card number fails the Luhn check")
	ErrBrand     = errors.New("card: unsupported card brand")
	ErrExpired   = errors.New("card: card has expired")
	// ErrCVC marks an invalid CVC; such errors also match ErrMalformed.
	ErrCVC = errors.New("card: invalid cvc")
)

// Card is a decrypted card. PAN holds digits only once Validate has passed.
//
// A Card formats as "card{brand=visa last4=4242 exp=12/2030}" under every fmt
// verb, logs as a group of the same fields and marshals to JSON as that masked
// view: never the PAN, never the name. Reflection reaches the raw fields only
// if a Card sits in an unexported struct field that is printed with %v; do not
// embed it in such structs.
type Card struct {
	PAN      string
	ExpMonth int
	ExpYear  int
	Name     string
	IssuedAt time.Time
}

// Brand returns the detected brand of the card's PAN ("" when unknown).
func (c Card) Brand() Brand { return DetectBrand(c.PAN) }

// BIN returns the displayable leading digits (see BIN).
func (c Card) BIN() string { return BIN(c.PAN) }

// Last4 returns the last four digits (see Last4).
func (c Card) Last4() string { return Last4(c.PAN) }

// Validate checks the PAN (digits, 12-19 digits, Luhn, known brand with a
// length valid for it) and the expiry against now. Errors never contain card
// data.
func (c Card) Validate(now time.Time) error {
	if _, err := ValidatePAN(c.PAN); err != nil {
		return err
	}
	if len(c.Name) > MaxNameLength {
		return fmt.Errorf("%w: name is longer than %d bytes", ErrMalformed, MaxNameLength)
	}
	return ValidateExpiry(c.ExpMonth, c.ExpYear, now)
}

// MaxExpiryYears is how far ahead an expiry year may be. Issuers use 3-5 years;
// 20 leaves room while rejecting typos such as 2203.
const MaxExpiryYears = 20

// ValidateExpiry checks that month is 1..12, that year is at most
// MaxExpiryYears ahead, and that the card has not expired.
//
// A card is valid through the last day of its expiry month. Which time zone
// that day ends in is the issuer's business, so the card is accepted until the
// month has ended everywhere (UTC-12); the issuer has the final word at
// authorization anyway.
func ValidateExpiry(month, year int, now time.Time) error {
	if month < 1 || month > 12 {
		return fmt.Errorf("%w: exp_month must be 1-12", ErrMalformed)
	}
	now = now.UTC()
	if year > now.Year()+MaxExpiryYears {
		return fmt.Errorf("%w: exp_year is more than %d years ahead", ErrMalformed, MaxExpiryYears)
	}
	// time.Date normalises month 13 to January of the next year.
	end := time.Date(year, time.Month(month)+1, 1, 12, 0, 0, 0, time.UTC)
	if !now.Before(end) {
		return ErrExpired
	}
	return nil
}

// String returns the masked form; it is what every fmt verb prints.
func (c Card) String() string {
	last4 := c.Last4()
	if last4 == "" {
		last4 = "????"
	}
	brand := string(c.Brand())
	if brand == "" {
		brand = "unknown"
	}
	return "card{brand=" + brand + " last4=" + last4 + " exp=" +
		strconv.Itoa(c.ExpMonth) + "/" + strconv.Itoa(c.ExpYear) + "}"
}

// GoString keeps %#v from printing the struct fields.
func (c Card) GoString() string { return "card.Card(" + c.String() + ")" }

// Format implements fmt.Formatter so that no verb (%v, %+v, %#v, %s, %q, %x,
// %d ...) falls back to printing the fields by reflection.
func (c Card) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, c.GoString())
		return
	}
	_, _ = io.WriteString(f, c.String())
}

// LogValue implements slog.LogValuer with the masked fields only.
func (c Card) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("brand", string(c.Brand())),
		slog.String("last4", c.Last4()),
		slog.Int("exp_month", c.ExpMonth),
		slog.Int("exp_year", c.ExpYear),
	)
}

// maskedJSON is the only JSON shape of a Card.
type maskedJSON struct {
	Brand    Brand  `json:"brand"`
	Last4    string `json:"last4"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
}

// MarshalJSON returns the same masked view as String and LogValue; code that
// must send the PAN (reveal) or the BIN (inspect) copies them into its own
// response type on purpose.
func (c Card) MarshalJSON() ([]byte, error) {
	return marshalJSON(maskedJSON{Brand: c.Brand(), Last4: c.Last4(), ExpMonth: c.ExpMonth, ExpYear: c.ExpYear})
}

var (
	_ fmt.Formatter  = Card{}
	_ fmt.Stringer   = Card{}
	_ fmt.GoStringer = Card{}
	_ slog.LogValuer = Card{}
)
