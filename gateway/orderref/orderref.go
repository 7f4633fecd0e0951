// Package orderref is the one rule for what a merchant may attach to a
// checkout session, and so to the token it makes: a reference (its order
// number, which a support agent searches the back office by) and a small
// map of metadata. Both are the merchant's free text, stored beside the
// token and shown to operators, so both are bounded and both refuse
// anything shaped like a card number (internal/panshape): a card number
// typed into them would otherwise sit in the clear next to its ciphertext.
//
// The checkout-session store and the token store apply Check; neither
// stores what it refuses.
package orderref

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/blindgate/blindgate/internal/panshape"
)

// Limits (docs/contracts.md, POST /v1/checkout/sessions).
const (
	// MaxReference bounds a reference, in characters.
	MaxReference = 128
	// MaxKeys bounds the metadata's keys.
	MaxKeys = 20
	// MaxKey bounds a metadata key, in characters of KeyChars.
	MaxKey = 40
	// MaxValue bounds a metadata value, in characters.
	MaxValue = 200
	// KeyChars describes what a metadata key is made of.
	KeyChars = "A-Z a-z 0-9 _ . -"
)

// ErrPANInText matches an *Error whose value looks like a card number.
var ErrPANInText = errors.New("orderref: looks like a card number")

// ErrInvalid matches every *Error.
var ErrInvalid = errors.New("orderref: invalid")

// Error is a refused reference or metadata entry: the field as the merchant
// API names it and the rule it breaks, in words fit for the merchant. It
// never holds the value; a metadata key is named only once it is known to
// be well formed and not shaped like a card number.
type Error struct {
	Field      string // "reference", "metadata" or "metadata.<key>"
	Reason     string
	CardShaped bool // the value looks like a card number
}

func (e *Error) Error() string { return "orderref: " + e.PublicReason() }

// PublicReason is the field and the rule it breaks.
func (e *Error) PublicReason() string { return e.Field + " " + e.Reason }

// Is makes an Error match ErrInvalid, and ErrPANInText when CardShaped is set.
func (e *Error) Is(target error) bool {
	return target == ErrInvalid || target == ErrPANInText && e.CardShaped
}

// Normalize trims the white space around a reference (as it would be
// typed into a search box); "" means none.
func Normalize(ref string) string { return strings.TrimSpace(ref) }

// Fold is the form a reference is compared and indexed in: a search for
// "ord-1234" finds "ORD-1234".
func Fold(ref string) string { return strings.ToLower(Normalize(ref)) }

// Check applies the rule to a normalised reference and to metadata: each
// absent or empty is fine.
func Check(ref string, meta map[string]string) error {
	if err := CheckReference(ref); err != nil {
		return err
	}
	return CheckMetadata(meta)
}

// CheckReference: at most MaxReference characters of valid UTF-8, no
// control characters, no white space around it, nothing shaped like a card
// number.
func CheckReference(ref string) error {
	if ref == "" {
		return nil
	}
	if err := checkText("reference", ref, MaxReference); err != nil {
		return err
	}
	if ref != Normalize(ref) {
		return &Error{Field: "reference", Reason: "must not start or end with white space"}
	}
	return nil
}

// CheckMetadata: at most MaxKeys entries; each key 1 to MaxKey of
// KeyChars, each value at most MaxValue characters of valid UTF-8 without
// control characters; neither shaped like a card number.
func CheckMetadata(meta map[string]string) error {
	if len(meta) > MaxKeys {
		return &Error{Field: "metadata", Reason: fmt.Sprintf("must have at most %d keys", MaxKeys)}
	}
	// In key order, so the same metadata is always refused for the same key.
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		v := meta[k]
		if !validKey(k) {
			return &Error{Field: "metadata", Reason: fmt.Sprintf("keys must be 1 to %d of %s", MaxKey, KeyChars)}
		}
		if panshape.Contains(k) {
			return &Error{Field: "metadata", Reason: "keys must not look like a card number", CardShaped: true}
		}
		if err := checkText("metadata."+k, v, MaxValue); err != nil {
			return err
		}
	}
	return nil
}

func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return &Error{Field: field, Reason: "must be valid UTF-8"}
	}
	if utf8.RuneCountInString(s) > max {
		return &Error{Field: field, Reason: fmt.Sprintf("must be at most %d characters", max)}
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return &Error{Field: field, Reason: "must not hold control characters"}
	}
	if panshape.Contains(s) {
		return &Error{Field: field, Reason: "must not look like a card number", CardShaped: true}
	}
	return nil
}

func validKey(k string) bool {
	if k == "" || len(k) > MaxKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
