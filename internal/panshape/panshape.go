// Package panshape answers one question about free text: could it hold a
// payment card number? It is shared by the gateway, which must never store a
// card number outside a ciphertext and has no code that can extract one, and
// the key service, whose audit log must never hold one. So the package only
// says yes or no: it never returns, copies or keeps the digits it looked at.
package panshape

// Card numbers are 12 to 19 digits (ISO/IEC 7812); people type them in
// groups separated by spaces or dashes.
const (
	minDigits = 12
	maxDigits = 19
	// maxGroups bounds the groups remembered per digit run; a run with more
	// groups is checked in slices that overlap by maxDigits groups, so no
	// window of up to 19 digits is missed.
	maxGroups = 64
)

// Contains reports whether s holds a Luhn-valid run of 12 to 19 digits,
// possibly split into groups by spaces or dashes. A window starts and ends
// at group boundaries ("ref 12 4242 4242 4242 4242" is found, the digits
// inside one long unbroken number are not read as a card).
func Contains(s string) bool {
	// Group spans are byte offsets into s, not digits: nothing is copied.
	var starts, ends [maxGroups]int
	n := 0
	flush := func() bool {
		found := anyWindow(s, starts[:n], ends[:n])
		n = 0
		return found
	}
	i := 0
	for i < len(s) {
		if !isDigit(s[i]) {
			if !isSep(s[i]) || n == 0 {
				// Anything else ends the run (separators alone do not start one).
				if n > 0 && flush() {
					return true
				}
			}
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if n == maxGroups {
			// Keep the last groups, enough for any window ending later.
			if anyWindow(s, starts[:n], ends[:n]) {
				return true
			}
			copy(starts[:], starts[n-maxDigits:n])
			copy(ends[:], ends[n-maxDigits:n])
			n = maxDigits
		}
		starts[n], ends[n] = i, j
		n++
		i = j
	}
	return n > 0 && flush()
}

// anyWindow reports whether consecutive groups g[a..b] hold 12-19 digits
// in all and pass the Luhn check.
func anyWindow(s string, starts, ends []int) bool {
	for a := range starts {
		total := 0
		for b := a; b < len(starts); b++ {
			total += ends[b] - starts[b]
			if total > maxDigits {
				break
			}
			if total >= minDigits && luhn(s, starts[a:b+1], ends[a:b+1]) {
				return true
			}
		}
	}
	return false
}

// luhn runs the Luhn check over the digits of the given groups, right to left.
func luhn(s string, starts, ends []int) bool {
	sum, double := 0, false
	for g := len(starts) - 1; g >= 0; g-- {
		for k := ends[g] - 1; k >= starts[g]; k-- {
			d := int(s[k] - '0')
			if double {
				d *= 2
				if d > 9 {
					d -= 9
				}
			}
			sum += d
			double = !double
		}
	}
	return sum%10 == 0
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func isSep(b byte) bool { return b == ' ' || b == '-' }

// Span is a PAN-shaped window of a text as byte offsets: s[Start:End] runs
// from the first digit to the last, separators between groups included.
type Span struct{ Start, End int }

// Spans returns the PAN-shaped windows of s, by the same rule as Contains,
// as the union of every Luhn-valid window (overlapping windows merged), so
// a text Contains flags always has at least one span and masking every
// digit of every span leaves a text Contains no longer flags. Only offsets
// are returned: the digits stay where they are, for a caller (the key
// zone's redaction) that overwrites them in place.
func Spans(s string) []Span {
	var out []Span
	var starts, ends [maxGroups]int
	n := 0
	add := func(start, end int) {
		if k := len(out) - 1; k >= 0 && start <= out[k].End {
			out[k].End = max(out[k].End, end)
			return
		}
		out = append(out, Span{start, end})
	}
	// collect adds the windows starting at groups [0, lastStart).
	collect := func(lastStart int) {
		for a := 0; a < lastStart; a++ {
			total := 0
			for b := a; b < n; b++ {
				total += ends[b] - starts[b]
				if total > maxDigits {
					break
				}
				if total >= minDigits && luhn(s, starts[a:b+1], ends[a:b+1]) {
					add(starts[a], ends[b])
				}
			}
		}
	}
	flush := func() {
		collect(n)
		n = 0
	}
	i := 0
	for i < len(s) {
		if !isDigit(s[i]) {
			if !isSep(s[i]) || n == 0 {
				if n > 0 {
					flush()
				}
			}
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if n == maxGroups {
			// Windows starting in the older groups end within the table;
			// the last maxDigits groups are kept for windows ending later.
			collect(n - maxDigits)
			copy(starts[:], starts[n-maxDigits:n])
			copy(ends[:], ends[n-maxDigits:n])
			n = maxDigits
		}
		starts[n], ends[n] = i, j
		n++
		i = j
	}
	if n > 0 {
		flush()
	}
	return out
}
