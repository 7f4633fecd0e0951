package panshape

import (
	"strings"
	"testing"
)

func TestContains(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"yes/plain-16", "4242424242424242", true},
		{"yes/spaced", "4242 4242 4242 4242", true},
		{"yes/dashed", "4242-4242-4242-4242", true},
		{"yes/in-text", "ticket 123: customer card 4111 1111 1111 1111 wrong", true},
		{"yes/after-short-number", "ref 12 5555 5555 5555 4444", true},
		{"yes/amex-15", "3782 822463 10005", true},
		{"yes/19-digits", "4000000000000000006", true}, // 19-digit Luhn-valid
		{"yes/12-digits", "500000000009", true},
		{"yes/mixed-separators", "4242 - 4242--4242 4242", true},
		{"yes/glued-to-letters", "x4242424242424242y", true},
		{"no/empty", "", false},
		{"no/luhn-fails", "1234 5678 9012 3457", false},
		{"no/too-short", "42424242424", false},
		{"no/date", "2024-01-15 ticket 42", false},
		{"no/20-digit-run", "42424242424242420000", false},
		{"no/letters", "customer asked for a refund", false},
		{"no/separated-by-other", "4242.4242.4242.4242", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Contains(tt.in); got != tt.want {
				t.Errorf("Contains(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestContainsManyGroups(t *testing.T) {
	// A PAN at the end of a run longer than the group buffer is still found.
	s := strings.Repeat("1 ", 200) + "4242 4242 4242 4242"
	if !Contains(s) {
		t.Fatal("PAN after 200 one-digit groups not found")
	}
	if Contains(strings.Repeat("7 ", 500)) {
		t.Fatal("single digits flagged")
	}
}

// reference is the obvious, slow definition Contains must agree with.
func reference(s string) bool {
	var groups [][]byte
	var cur []byte
	check := func() bool {
		for a := range groups {
			var digits []byte
			for b := a; b < len(groups); b++ {
				digits = append(digits, groups[b]...)
				if len(digits) > maxDigits {
					break
				}
				if len(digits) >= minDigits && refLuhn(digits) {
					return true
				}
			}
		}
		return false
	}
	endGroup := func() {
		if len(cur) > 0 {
			groups = append(groups, cur)
			cur = nil
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			cur = append(cur, c)
		case isSep(c):
			endGroup()
		default:
			endGroup()
			if check() {
				return true
			}
			groups = nil
		}
	}
	endGroup()
	return check()
}

func refLuhn(d []byte) bool {
	sum := 0
	for i := range d {
		v := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

func FuzzContains(f *testing.F) {
	for _, s := range []string{"", "4242 4242 4242 4242", "ref 12 5555-5555-5555-4444", "2024-01-15", strings.Repeat("1 ", 70)} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, s, suffix string) {
		if got, want := Contains(s), reference(s); got != want {
			t.Fatalf("Contains(%q) = %v, reference says %v", s, got, want)
		}
		// A known PAN set off by letters is always found, whatever surrounds it.
		if !Contains(s + " x 4242-4242-4242-4242 x " + suffix) {
			t.Fatalf("embedded PAN not found in %q", s)
		}
	})
}

func mask(s string, spans []Span) string {
	b := []byte(s)
	for _, sp := range spans {
		for k := sp.Start; k < sp.End; k++ {
			if isDigit(b[k]) {
				b[k] = '*'
			}
		}
	}
	return string(b)
}

func TestSpans(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"one/plain", "pan 4242424242424242 ok", "pan **************** ok"},
		{"one/spaced", "4242 4242 4242 4242", "**** **** **** ****"},
		{"one/json", `{"n":"5555-5555-5555-4444","a":12}`, `{"n":"****-****-****-****","a":12}`},
		{"two", "a 4242424242424242 b 4111 1111 1111 1111", "a **************** b **** **** **** ****"},
		{"none/date", "2024-01-15 ticket 42", "2024-01-15 ticket 42"},
		{"none/20-digit-run", "42424242424242420000", "42424242424242420000"},
		{"after-short-number", "ref 12 5555 5555 5555 4444", "ref ** **** **** **** ****"}, // "12 5555 5555 5555" is Luhn-valid too
		{"many-groups", strings.Repeat("7 ", 70) + "4242 4242 4242 4242", ""},              // more groups than the table: only the tail is checked
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mask(tc.in, Spans(tc.in))
			if tc.want == "" && !strings.HasSuffix(got, "**** **** **** ****") || tc.want != "" && got != tc.want {
				t.Fatalf("masked %q, want %q", got, tc.want)
			}
			if Contains(got) {
				t.Fatalf("masked text still PAN-shaped: %q", got)
			}
		})
	}
}

// FuzzSpans: Spans agrees with Contains, and masking its spans leaves
// nothing PAN-shaped.
func FuzzSpans(f *testing.F) {
	for _, s := range []string{"4242 4242 4242 4242", "ref 12 5555 5555 5555 4444", strings.Repeat("4 ", 80), "x4111111111111111y 378282246310005"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spans := Spans(s)
		if Contains(s) != (len(spans) > 0) {
			t.Fatalf("Contains=%v, %d spans", Contains(s), len(spans))
		}
		prev := 0
		for _, sp := range spans {
			if sp.Start < prev || sp.End <= sp.Start || sp.End > len(s) {
				t.Fatalf("bad span %+v after %d", sp, prev)
			}
			prev = sp.End
		}
		if m := mask(s, spans); Contains(m) {
			t.Fatalf("masked text still PAN-shaped")
		}
	})
}
