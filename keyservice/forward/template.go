package forward

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/blindgate/blindgate/keyservice/wire"
)

// Template errors. Messages name the placeholder or the position, never a
// card value (a template holds none; a filled body is never in an error).
var (
	// ErrTemplate: the template is malformed (an unknown or unterminated
	// placeholder, a placeholder where its value cannot be escaped, a body
	// that is not JSON or form data, a header that is not allowed).
	ErrTemplate = errors.New("forward: invalid template")
	// ErrCVCMissing: the template needs {{card.cvc}} and the request has no
	// CVC (never collected, or destroyed after its one use).
	ErrCVCMissing = errors.New("forward: template needs a cvc and none is available")
)

// Field is a card value a placeholder stands for.
type Field int

// The placeholders, one per field.
const (
	FieldNumber Field = iota
	FieldExpMonth
	FieldExpYear
	FieldName
	FieldCVC
	numFields
)

var placeholders = [numFields]string{"card.number", "card.exp_month", "card.exp_year", "card.name", "card.cvc"}

func (f Field) String() string { return "{{" + placeholders[f] + "}}" }

// Values are what a template is filled with. ExpMonth is rendered with two
// digits ("03") inside a JSON string and in form data, and as a plain
// number (3) where it stands for a JSON value; ExpYear always has 4 digits.
type Values struct {
	Number   string
	ExpMonth int
	ExpYear  int
	Name     string
	CVC      string
	HasCVC   bool
}

type part struct {
	lit   string
	field Field
	ph    bool // a placeholder, not a literal
	bare  bool // JSON only: stands for a whole value, outside any string
}

// Template is a parsed, checked merchant template. Parse it once, fill it
// per request.
type Template struct {
	contentType string
	path        string
	headers     map[string]string
	parts       []part
	needs       [numFields]bool
}

// Needs reports whether the template uses field f.
func (t *Template) Needs(f Field) bool { return t.needs[f] }

// ContentType is the body's content type.
func (t *Template) ContentType() string { return t.contentType }

// Path is the path suffix to append to the destination's prefix.
func (t *Template) Path() string { return t.path }

// Headers are the template's headers (canonical names). Header values never
// hold placeholders: card data stays out of headers, which proxies and
// processors log far more readily than bodies.
func (t *Template) Headers() map[string]string { return t.headers }

// Parse checks a template and splits it into literals and placeholders.
//
// The grammar: "{{" always opens a placeholder, which must be exactly one
// of {{card.number}}, {{card.exp_month}}, {{card.exp_year}}, {{card.name}},
// {{card.cvc}} (no spaces); anything else after "{{" is refused, so a body
// cannot carry a literal "{{". Then, by content type:
//
//   - application/json: the body with every placeholder filled must be one
//     valid JSON document. Placeholders sit inside JSON strings (the value
//     is JSON-string escaped) or, for {{card.exp_month}} and
//     {{card.exp_year}} only, as a whole JSON value (a number). A placeholder
//     in an object key is refused.
//   - application/x-www-form-urlencoded: placeholders only in values
//     (after "=", before "&"), filled form-encoded; the body must parse as
//     form data.
//
// Headers must be named in allowed (nil: any name wire accepts) and hold
// no placeholder; wire.ForwardTemplate.Validate has already refused CR, LF
// and other controls.
func Parse(t wire.ForwardTemplate, allowed func(name string) bool) (*Template, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	out := &Template{contentType: t.ContentType, path: t.Path, headers: map[string]string{}}
	for name, v := range t.Headers {
		if allowed != nil && !allowed(name) {
			return nil, fmt.Errorf("%w: header %q is not allowed for this destination", ErrTemplate, name)
		}
		if strings.Contains(v, "{{") {
			return nil, fmt.Errorf("%w: header %q: placeholders are allowed in the body only", ErrTemplate, name)
		}
		key := http.CanonicalHeaderKey(name)
		if _, dup := out.headers[key]; dup {
			return nil, fmt.Errorf("%w: header %q given twice", ErrTemplate, name)
		}
		out.headers[key] = v
	}
	if err := out.split(t.Body); err != nil {
		return nil, err
	}
	switch t.ContentType {
	case wire.ContentTypeJSON:
		if err := out.checkJSON(); err != nil {
			return nil, err
		}
	case wire.ContentTypeForm:
		if err := out.checkForm(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *Template) split(body string) error {
	for len(body) > 0 {
		i := strings.Index(body, "{{")
		if i < 0 {
			t.parts = append(t.parts, part{lit: body})
			return nil
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: body[:i]})
		}
		rest := body[i+2:]
		j := strings.Index(rest, "}}")
		// A placeholder name is short; a far "}}" is a missing one.
		if j < 0 || j > 32 {
			return fmt.Errorf("%w: unterminated placeholder at byte %d (want e.g. {{card.number}})", ErrTemplate, i)
		}
		name := rest[:j]
		f := Field(-1)
		for k, p := range placeholders {
			if name == p {
				f = Field(k)
			}
		}
		if f < 0 {
			if !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				name = "?"
			}
			return fmt.Errorf("%w: unknown placeholder {{%s}} at byte %d (known: {{card.number}}, {{card.exp_month}}, {{card.exp_year}}, {{card.name}}, {{card.cvc}})", ErrTemplate, name, i)
		}
		t.parts = append(t.parts, part{ph: true, field: f})
		t.needs[f] = true
		body = rest[j+2:]
	}
	return nil
}

// checkJSON walks the literals with a small JSON lexer state (in a string,
// escaped, expecting a key) to place each placeholder, then validates the
// document filled with sample values.
func (t *Template) checkJSON() error {
	inString, escaped := false, false
	// Object-key tracking: after '{' or ',' inside an object the next string
	// is a key. stack holds '{' or '['.
	var stack []byte
	expectKey, stringIsKey := false, false
	for i := range t.parts {
		p := &t.parts[i]
		if p.ph {
			switch {
			case inString && stringIsKey:
				return fmt.Errorf("%w: %s in an object key", ErrTemplate, p.field)
			case inString:
			case p.field == FieldExpMonth || p.field == FieldExpYear:
				p.bare = true
			default:
				return fmt.Errorf("%w: %s must be inside a JSON string (\"%s\")", ErrTemplate, p.field, p.field)
			}
			continue
		}
		for k := 0; k < len(p.lit); k++ {
			c := p.lit[k]
			if inString {
				switch {
				case escaped:
					escaped = false
				case c == '\\':
					escaped = true
				case c == '"':
					inString = false
				}
				continue
			}
			switch c {
			case '"':
				inString, stringIsKey = true, expectKey
				expectKey = false
			case '{':
				stack = append(stack, '{')
				expectKey = true
			case '[':
				stack = append(stack, '[')
			case '}', ']':
				if len(stack) > 0 {
					stack = stack[:len(stack)-1]
				}
			case ',':
				expectKey = len(stack) > 0 && stack[len(stack)-1] == '{'
			}
		}
	}
	sample := t.render(sampleValues(), nil)
	if !json.Valid(sample) {
		return fmt.Errorf("%w: the body is not one valid JSON document once filled", ErrTemplate)
	}
	return nil
}

func (t *Template) checkForm() error {
	inValue := false
	for _, p := range t.parts {
		if p.ph {
			if !inValue {
				return fmt.Errorf("%w: %s must be a form value (name=%s)", ErrTemplate, p.field, p.field)
			}
			continue
		}
		for k := 0; k < len(p.lit); k++ {
			switch p.lit[k] {
			case '=':
				inValue = true
			case '&':
				inValue = false
			}
		}
	}
	sample := string(t.render(sampleValues(), nil))
	if _, err := url.ParseQuery(sample); err != nil {
		return fmt.Errorf("%w: the body is not form data", ErrTemplate)
	}
	for _, pair := range strings.Split(sample, "&") {
		if k, _, ok := strings.Cut(pair, "="); !ok || k == "" {
			return fmt.Errorf("%w: every form field needs a name and =", ErrTemplate)
		}
	}
	return nil
}

func sampleValues() Values {
	return Values{Number: "4242424242424242", ExpMonth: 12, ExpYear: 2030, Name: "A", CVC: "123", HasCVC: true}
}

// Fill renders the body with v. The caller owns the result and wipes it
// after use. ErrCVCMissing if the template needs the CVC and v has none.
func (t *Template) Fill(v Values) ([]byte, error) {
	if t.needs[FieldCVC] && !v.HasCVC {
		return nil, ErrCVCMissing
	}
	size := 0
	for _, p := range t.parts {
		size += len(p.lit) + 32
	}
	return t.render(v, make([]byte, 0, size+2*len(v.Name))), nil
}

func (t *Template) render(v Values, buf []byte) []byte {
	for _, p := range t.parts {
		if !p.ph {
			buf = append(buf, p.lit...)
			continue
		}
		var s string
		switch p.field {
		case FieldNumber:
			s = v.Number
		case FieldExpMonth:
			if p.bare {
				buf = strconv.AppendInt(buf, int64(v.ExpMonth), 10)
				continue
			}
			if v.ExpMonth < 10 {
				buf = append(buf, '0')
			}
			buf = strconv.AppendInt(buf, int64(v.ExpMonth), 10)
			continue
		case FieldExpYear:
			buf = strconv.AppendInt(buf, int64(v.ExpYear), 10)
			continue
		case FieldName:
			s = v.Name
		case FieldCVC:
			s = v.CVC
		}
		if t.contentType == wire.ContentTypeForm {
			buf = appendForm(buf, s)
		} else {
			buf = appendJSONString(buf, s)
		}
	}
	return buf
}

// appendJSONString escapes s for the inside of a JSON string: quote,
// backslash, every control character, and U+2028/U+2029 (which end a line
// in JavaScript). Invalid UTF-8 becomes U+FFFD.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				buf = append(buf, '\\', c)
			case c < 0x20 || c == 0x7f:
				buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				buf = append(buf, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			buf = append(buf, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			buf = append(buf, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			buf = append(buf, s[i:i+n]...)
		}
		i += n
	}
	return buf
}

// appendForm percent-encodes s as application/x-www-form-urlencoded does
// (url.QueryEscape), without an intermediate string.
func appendForm(buf []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
			buf = append(buf, c)
		case c == ' ':
			buf = append(buf, '+')
		default:
			buf = append(buf, '%', hex[c>>4], hex[c&0xf])
		}
	}
	return buf
}
