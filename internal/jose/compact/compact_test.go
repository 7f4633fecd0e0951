package compact

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// TestAlphabetTable checks the lookup table against encoding/base64 for
// every byte value: a byte is in the alphabet exactly when base64url
// decodes it (CR and LF, which the decoder skips, are not), its value is
// the one the decoder gives it, and CheckJWE takes it in a part exactly
// then ('.' only as a separator).
func TestAlphabetTable(t *testing.T) {
	for i := range 256 {
		c := byte(i)
		in := []byte{c, 'A'} // two characters: one byte, c's 6 bits first
		out := make([]byte, 1)
		n, err := base64.RawURLEncoding.Decode(out, in)
		want := err == nil && n == 1 && c != '\r' && c != '\n'
		if got := IsBase64URL([]byte{c}); got != want {
			t.Fatalf("IsBase64URL(%#x) = %v, want %v", c, got, want)
		}
		if want && Base64URLValue(c) != out[0]>>2 {
			t.Fatalf("Base64URLValue(%#x) = %d, want %d", c, Base64URLValue(c), out[0]>>2)
		}
		jwe := "eyJhIjoxfQ.AA.AA.A" + string(c) + "A.AA"
		if err := CheckJWE(jwe); (err == nil) != want {
			t.Fatalf("CheckJWE with %#x in a part: %v, want accepted %v", c, err, want)
		}
	}
}

func TestCheckJWE(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"five parts", "a.b.c.d.e", nil},
		{"empty parts", "....", nil},
		{"empty", "", ErrMalformed},
		{"four parts", "a.b.c.d", ErrMalformed},
		{"six parts", "a.b.c.d.e.f", ErrMalformed},
		{"padding", "a.b.c.d.e=", ErrMalformed},
		{"standard alphabet", "a.b.c+.d.e", ErrMalformed},
		{"at the cap", "a.b.c.d." + strings.Repeat("A", MaxSize-8), nil},
		{"over the cap", "a.b.c.d." + strings.Repeat("A", MaxSize-7), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckJWE(tc.in); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("CheckJWE = %v, want %v", err, tc.want)
			}
		})
	}
}

// BenchmarkCheckJWE: a card JWE's size, random content (a repeated
// character would let a chain of comparisons predict every branch).
func BenchmarkCheckJWE(b *testing.B) {
	raw := make([]byte, 900)
	_, _ = rand.Read(raw)
	jwe := "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9." + base64.RawURLEncoding.EncodeToString(raw) + ".AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA"
	b.SetBytes(int64(len(jwe)))
	for b.Loop() {
		if err := CheckJWE(jwe); err != nil {
			b.Fatal(err)
		}
	}
}
