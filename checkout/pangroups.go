package checkout

import (
	"strconv"
	"strings"
)

// maskDot stands for a digit that is not shown.
const maskDot = "•"

// panGroups is how a card number of a brand and length is spaced, as
// printed on the card: American Express 4-6-5, a 14-digit Diners Club
// 4-6-4, every other in fours. It is card.js's groupsFor (the checkout field
// spaces numbers with it); the browser test compares the two.
func panGroups(brand string, length int) []int {
	switch {
	case brand == "amex":
		return []int{4, 6, 5}
	case brand == "diners" && length <= 14:
		return []int{4, 6, 4}
	}
	return []int{4, 4, 4, 4, 3}
}

// PANGroups is the brand's spacing at its shortest usual length, as
// "4,6,5": what a page that groups a number in the browser (the back
// office's reveal) is given, so the rule keeps one home. A number longer than
// the groups add up to is spaced in fours, which is panGroups for every
// length.
func PANGroups(brand string) string {
	g := panGroups(brand, 0)
	s := make([]string, len(g))
	for i, n := range g {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// group spaces runes per panGroups; runes past the last group form one more.
func group(brand string, r []rune) string {
	var out []string
	pos := 0
	for _, g := range panGroups(brand, len(r)) {
		if pos >= len(r) {
			break
		}
		end := min(pos+g, len(r))
		out = append(out, string(r[pos:end]))
		pos = end
	}
	if pos < len(r) {
		out = append(out, string(r[pos:]))
	}
	return strings.Join(out, " ")
}

// GroupPAN spaces a card number the way the checkout's field shows it while
// it is typed: "3782 822463 10005" for an American Express card (brand is
// the key service's brand id, keyservice/wire). This is the one rule for
// showing a number grouped; the back office's reveal shows a revealed number
// with it.
func GroupPAN(brand, digits string) string {
	return group(brand, []rune(digits))
}

// MaskPAN draws a masked card number: bin (the first 6 or 8 digits, or ""),
// then a dot for each hidden digit, then last4, spaced like GroupPAN, so an
// American Express number of length 15 masks as "3782 82•••• •0005". With
// length unknown (0) or not fitting bin and last4, no length is implied:
// "378282 •••• 0005".
func MaskPAN(brand, bin, last4 string, length int) string {
	hidden := length - len(bin) - len(last4)
	if length <= 0 || length > 19 || hidden < 0 {
		if bin == "" {
			return maskDot + maskDot + maskDot + maskDot + " " + last4
		}
		return bin + " " + maskDot + maskDot + maskDot + maskDot + " " + last4
	}
	r := make([]rune, 0, length)
	r = append(r, []rune(bin)...)
	for range hidden {
		r = append(r, []rune(maskDot)...)
	}
	r = append(r, []rune(last4)...)
	return group(brand, r)
}
