package card

import (
	"slices"
	"strings"

	"github.com/blindgate/blindgate/keyservice/wire"
)

// Brand is a card scheme, detected from the issuer identification number
// (IIN, the leading digits of the PAN).
type Brand string

// Supported brands. The string values are the wire contract's
// (keyservice/wire, which the gateway reads too; a test proves this table
// and wire.Brands agree), mirrored by the checkout JS, never renamed.
const (
	Visa       Brand = wire.BrandVisa
	Mastercard Brand = wire.BrandMastercard
	Amex       Brand = wire.BrandAmex
	Discover   Brand = wire.BrandDiscover
	JCB        Brand = wire.BrandJCB
	Diners     Brand = wire.BrandDiners
	UnionPay   Brand = wire.BrandUnionPay
	Maestro    Brand = wire.BrandMaestro
)

// IINRange is an inclusive range of PAN prefixes. From and To have the same
// number of digits; that number is the range's specificity. A PAN matches when
// its first len(From) digits lie between From and To (equal-length digit
// strings compare the same as text and as numbers).
type IINRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// BrandRule is one row of the brand table: the IIN ranges of a brand, the PAN
// lengths it issues and the length of its CVC. The checkout JS mirrors this
// table; testdata/brand_table.json is its golden JSON form.
type BrandRule struct {
	Brand     Brand      `json:"brand"`
	Ranges    []IINRange `json:"ranges"`
	Lengths   []int      `json:"lengths"`
	CVCLength int        `json:"cvc_length"`
}

// brandRules is read-only after package initialisation: it is never handed
// out (BrandTable returns a deep copy), so it is a constant in all but name.
//
// Overlaps are resolved by specificity: among all ranges that match, the one
// with the most digits wins. The overlaps in this table are
//   - Discover 622126-622925 (6 digits) inside UnionPay 62 (2 digits);
//   - Discover 6011, 644-649, 65 inside Maestro's catch-all 6 (1 digit);
//   - UnionPay 62 inside Maestro's catch-all 6.
//
// No two ranges of equal specificity overlap (a test proves it), so the order
// of rows never decides; ties would go to the earlier row.
//
// UnionPay issues some cards that do not pass Luhn; Blindgate requires Luhn
// for every brand anyway, because the check is the only typo detection we
// have before a card reaches an acquirer. Such UnionPay cards are rejected
// with ErrLuhn.
var brandRules = []BrandRule{
	{Brand: Visa, Ranges: []IINRange{{"4", "4"}}, Lengths: []int{13, 16, 19}, CVCLength: 3},
	{Brand: Mastercard, Ranges: []IINRange{{"51", "55"}, {"2221", "2720"}}, Lengths: []int{16}, CVCLength: 3},
	{Brand: Amex, Ranges: []IINRange{{"34", "34"}, {"37", "37"}}, Lengths: []int{15}, CVCLength: 4},
	{Brand: Discover, Ranges: []IINRange{{"6011", "6011"}, {"644", "649"}, {"65", "65"}, {"622126", "622925"}}, Lengths: []int{16, 17, 18, 19}, CVCLength: 3},
	{Brand: JCB, Ranges: []IINRange{{"3528", "3589"}}, Lengths: []int{16, 17, 18, 19}, CVCLength: 3},
	{Brand: Diners, Ranges: []IINRange{{"300", "305"}, {"3095", "3095"}, {"36", "36"}, {"38", "39"}}, Lengths: []int{14, 15, 16, 17, 18, 19}, CVCLength: 3},
	{Brand: UnionPay, Ranges: []IINRange{{"62", "62"}}, Lengths: []int{16, 17, 18, 19}, CVCLength: 3},
	{Brand: Maestro, Ranges: []IINRange{{"50", "50"}, {"56", "58"}, {"6", "6"}}, Lengths: []int{12, 13, 14, 15, 16, 17, 18, 19}, CVCLength: 3},
}

// BrandTable returns a copy of the brand table, in a shape that renders
// directly as JSON for the checkout page. Detection rule for consumers: take
// every range whose From is no longer than the input and whose prefix of the
// input lies in [From, To]; the longest From wins.
func BrandTable() []BrandRule {
	out := make([]BrandRule, len(brandRules))
	for i, r := range brandRules {
		out[i] = BrandRule{
			Brand:     r.Brand,
			Ranges:    slices.Clone(r.Ranges),
			Lengths:   slices.Clone(r.Lengths),
			CVCLength: r.CVCLength,
		}
	}
	return out
}

// DetectBrand returns the brand of a PAN (or of a PAN prefix, as typed so far),
// or "" when no range matches or the input is not all digits.
func DetectBrand(pan string) Brand {
	if pan == "" || !allDigits(pan) {
		return ""
	}
	best, bestLen := Brand(""), 0
	for _, r := range brandRules {
		for _, rg := range r.Ranges {
			n := len(rg.From)
			if n > len(pan) || n <= bestLen {
				continue
			}
			// Equal-length digit strings: lexical order is numeric order.
			if p := pan[:n]; strings.Compare(p, rg.From) >= 0 && strings.Compare(p, rg.To) <= 0 {
				best, bestLen = r.Brand, n
			}
		}
	}
	return best
}

func (b Brand) rule() (BrandRule, bool) {
	for _, r := range brandRules {
		if r.Brand == b {
			return r, true
		}
	}
	return BrandRule{}, false
}

// Known reports whether b is one of the supported brands.
func (b Brand) Known() bool {
	_, ok := b.rule()
	return ok
}

// Lengths returns the PAN lengths the brand issues (nil for an unknown brand).
func (b Brand) Lengths() []int {
	r, _ := b.rule()
	return slices.Clone(r.Lengths)
}

// ValidLength reports whether a PAN of n digits is valid for the brand.
func (b Brand) ValidLength(n int) bool {
	r, _ := b.rule()
	return slices.Contains(r.Lengths, n)
}

// CVCLength returns the CVC length of the brand: 4 for Amex, otherwise 3
// (0 for an unknown brand).
func (b Brand) CVCLength() int {
	r, _ := b.rule()
	return r.CVCLength
}
