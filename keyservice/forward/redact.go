package forward

import (
	"bytes"

	"github.com/blindgate/blindgate/internal/panshape"
)

// maskByte replaces each digit of a card number in an answer. Separators
// stay, so the answer keeps its length and shape; a PAN-shaped bare JSON
// number becomes invalid JSON, which is the price of never passing it on.
const maskByte = '*'

// Redact masks, in place, every occurrence of pan (the number just
// forwarded, whatever surrounds it) and everything PAN-shaped by
// internal/panshape's rule (Luhn-valid runs of 12-19 digits, grouped by
// spaces or dashes). It returns b.
func Redact(b []byte, pan string) []byte {
	if len(pan) >= 8 {
		// The forwarded number itself, even glued inside a longer digit run
		// where the shape rule would not see a card.
		p := []byte(pan)
		defer clear(p)
		for off := 0; ; {
			i := bytes.Index(b[off:], p)
			if i < 0 {
				break
			}
			for k := off + i; k < off+i+len(p); k++ {
				b[k] = maskByte
			}
			off += i + len(p)
		}
	}
	for _, sp := range panshape.Spans(string(b)) {
		for k := sp.Start; k < sp.End; k++ {
			if b[k] >= '0' && b[k] <= '9' {
				b[k] = maskByte
			}
		}
	}
	return b
}

// RedactString is Redact for a header value.
func RedactString(s, pan string) string { return string(Redact([]byte(s), pan)) }
