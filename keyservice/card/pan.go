package card

import (
	"fmt"
	"strings"
)

// PAN length bounds of ISO/IEC 7812.
const (
	MinPANLength = 12
	MaxPANLength = 19
)

// Luhn reports whether pan is a non-empty string of digits whose Luhn (mod 10)
// check digit is right.
func Luhn(pan string) bool {
	if pan == "" {
		return false
	}
	sum := 0
	double := false
	for i := len(pan) - 1; i >= 0; i-- {
		c := pan[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// BIN returns the first 6 digits, the truncation PCI DSS 3.4.1 allows for
// every PAN length. It returns "" for anything that is not a PAN-shaped
// digit string (12-19 digits), so that a short or garbled value is never
// shown in full. See Masking for the opt-in first-8 form.
func BIN(pan string) string { return Masking{}.BIN(pan) }

// Masking says how many leading digits a deployment displays. The zero
// value is first 6 + last 4 for every length.
//
// BIN8 opts in to first 8 + last 4 for PANs of 16 or more digits: the PCI
// SSC FAQ on 8-digit BINs (issued with the move to 8-digit IINs, ISO/IEC
// 7812-1:2017) accepts it under 3.4.1 for entities with a business need for
// the issuer range, and only for PANs of 16+ digits; shorter PANs keep 6.
// It hides two fewer digits, so an entity that enables it owns the
// business-need justification.
type Masking struct{ BIN8 bool }

// BIN returns the displayable leading digits under m ("" when not PAN-shaped).
func (m Masking) BIN(pan string) string {
	if !panShaped(pan) {
		return ""
	}
	if m.BIN8 && len(pan) >= 16 {
		return pan[:8]
	}
	return pan[:6]
}

// Mask returns the PAN with all but m.BIN and the last four replaced by '*'.
func (m Masking) Mask(pan string) string {
	bin, last4 := m.BIN(pan), Last4(pan)
	if bin == "" {
		return ""
	}
	return bin + strings.Repeat("*", len(pan)-len(bin)-len(last4)) + last4
}

// Last4 returns the last four digits of a PAN, or "" for anything that is not
// a PAN-shaped digit string (12-19 digits).
func Last4(pan string) string {
	if !panShaped(pan) {
		return ""
	}
	return pan[len(pan)-4:]
}

// Mask returns the PAN with everything but the first 6 and last four
// replaced by '*', e.g. "424242******4242"; "" for anything that is not
// PAN-shaped.
//
// With the shortest PANs, BIN 6 and last 4 leave only 2-3 digits hidden (one
// of them fixed by Luhn): PCI allows it, but do not show the masked form of a
// 12-13 digit PAN next to other partial data.
func Mask(pan string) string { return Masking{}.Mask(pan) }

// ValidatePAN checks a PAN in this order: digits only, 12-19 digits, Luhn,
// known brand, length valid for that brand. It returns the brand on success.
// Errors never contain the PAN.
func ValidatePAN(pan string) (Brand, error) {
	if !allDigits(pan) {
		return "", fmt.Errorf("%w: card number must contain only digits", ErrDigits)
	}
	if len(pan) < MinPANLength || len(pan) > MaxPANLength {
		return "", fmt.Errorf("%w: card number must have %d-%d digits", ErrLength, MinPANLength, MaxPANLength)
	}
	if !Luhn(pan) {
		return "", fmt.Errorf("%w: card number check digit is wrong", ErrLuhn)
	}
	b := DetectBrand(pan)
	if b == "" {
		return "", fmt.Errorf("%w: card brand is not supported", ErrBrand)
	}
	if !b.ValidLength(len(pan)) {
		return b, fmt.Errorf("%w: %d digits is not a valid %s card number length", ErrLength, len(pan), b)
	}
	return b, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func panShaped(s string) bool {
	return len(s) >= MinPANLength && len(s) <= MaxPANLength && allDigits(s)
}
